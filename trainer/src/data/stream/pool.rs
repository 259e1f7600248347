//! The worker threads that cut streamed batches, sample by sample: a worker that finishes a
//! sample takes the next one queued, of this batch or of the next, so no core waits at a
//! batch's end for the slowest, and several batches can be in flight at once. Each batch is cut
//! straight into the tensors it is handed out as (pinned, for a CUDA device, so that the copy
//! to the GPU need not block).

use super::cut::{Cutter, Scratch};
use crate::augment::ViewKey;
use anyhow::{anyhow, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use tch::{Device, Kind, Tensor};

/// What a batch is: its samples, its step's key, its offset in the global batch.
pub(super) type Request = (Vec<i64>, ViewKey, u64);

/// A batch being cut: one uint8 `N×3×S×S` tensor per view, filled slot by slot.
pub(super) struct Job {
    pub request: Request,
    /// Handed out once every slot is done; kept here until then.
    tensors: Mutex<Option<Vec<Tensor>>>,
    /// Per view, the address of its tensor's first byte and one sample's bytes.
    buffers: Vec<(usize, usize)>,
    state: Mutex<JobState>,
    finished: Condvar,
    /// Set when the batch is no longer wanted: its remaining slots are skipped.
    cancelled: AtomicBool,
    /// Slots cut grey (a file that does not decode, `--bad-images skip`).
    grey: AtomicUsize,
}

struct JobState {
    remaining: usize,
    error: Option<anyhow::Error>,
}

impl Job {
    /// Empty tensors for `request`'s samples, one per view of `cutter`; pinned for `pin`.
    fn new(request: Request, cutter: &Cutter, pin: Option<Device>) -> Arc<Self> {
        let n = request.0.len() as i64;
        let tensors: Vec<Tensor> = (cutter.views.iter())
            .map(|cut| {
                let side = cut.size as i64;
                let t = Tensor::empty([n, 3, side, side], (Kind::Uint8, Device::Cpu));
                match pin {
                    Some(device) => t.pin_memory(device),
                    None => t,
                }
            })
            .collect();
        let buffers = (tensors.iter().zip(&cutter.views))
            .map(|(t, cut)| (t.data_ptr() as usize, cut.sample()))
            .collect();
        Arc::new(Job {
            tensors: Mutex::new(Some(tensors)),
            buffers,
            state: Mutex::new(JobState {
                remaining: request.0.len(),
                error: None,
            }),
            finished: Condvar::new(),
            cancelled: AtomicBool::new(false),
            grey: AtomicUsize::new(0),
            request,
        })
    }

    /// Slot `slot` of every view's tensor.
    ///
    /// SAFETY: the tensors live as long as the job (they leave it only in `wait`, after every
    /// slot is done), each slot is handed to one worker only, and slots do not overlap.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, slot: usize) -> Vec<&mut [u8]> {
        (self.buffers.iter())
            .map(|&(base, sample)| {
                std::slice::from_raw_parts_mut((base + slot * sample) as *mut u8, sample)
            })
            .collect()
    }

    /// One slot done, with its outcome (grey or not); the first error is the batch's.
    fn finish_slot(&self, outcome: Result<bool>) {
        let mut state = lock(&self.state);
        match outcome {
            Ok(grey) => {
                self.grey.fetch_add(grey as usize, Ordering::Relaxed);
            }
            Err(e) => {
                state.error.get_or_insert(e);
                self.cancelled.store(true, Ordering::Relaxed);
            }
        }
        state.remaining -= 1;
        if state.remaining == 0 {
            self.finished.notify_all();
        }
    }

    /// Slots cut grey so far (all of them once [`wait`](Self::wait) returned).
    pub fn grey_samples(&self) -> usize {
        self.grey.load(Ordering::Relaxed)
    }

    /// The batch's tensors once every slot is done, or the first error.
    pub fn wait(&self) -> Result<Vec<Tensor>> {
        let mut state = lock(&self.state);
        while state.remaining > 0 {
            state = self.finished.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        lock(&self.tensors)
            .take()
            .ok_or_else(|| anyhow!("a streamed batch was taken twice"))
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// The queue of slots to cut, shared by the workers.
struct Queue {
    slots: VecDeque<(Arc<Job>, usize)>,
    closed: bool,
}

struct Shared {
    cutter: Arc<Cutter>,
    queue: Mutex<Queue>,
    work: Condvar,
}

/// Worker threads cutting the slots of submitted batches in submission order.
pub(super) struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    pin: Option<Device>,
}

impl Pool {
    pub fn start(cutter: Arc<Cutter>, workers: usize, pin: Option<Device>) -> Self {
        let shared = Arc::new(Shared {
            cutter,
            queue: Mutex::new(Queue {
                slots: VecDeque::new(),
                closed: false,
            }),
            work: Condvar::new(),
        });
        let threads = (0..workers.max(1))
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("nls-decode-{i}"))
                    .spawn(move || work(&shared))
                    .expect("cannot start an image worker thread")
            })
            .collect();
        Self {
            shared,
            threads,
            pin,
        }
    }

    /// Queues every slot of `request`'s batch behind those already queued.
    pub fn submit(&self, request: Request) -> Arc<Job> {
        let job = Job::new(request, &self.shared.cutter, self.pin);
        let mut queue = lock(&self.shared.queue);
        queue
            .slots
            .extend((0..job.request.0.len()).map(|slot| (job.clone(), slot)));
        self.shared.work.notify_all();
        job
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A worker: takes slots until the pool closes, skipping those of cancelled batches.
fn work(shared: &Shared) {
    let mut scratch = Scratch::default();
    while let Some((job, slot)) = next_slot(shared) {
        let outcome = if job.cancelled.load(Ordering::Relaxed) {
            Ok(false)
        } else {
            let (indices, key, start) = &job.request;
            // SAFETY: see `Job::rows`; this worker alone holds `slot`.
            let mut rows = unsafe { job.rows(slot) };
            let cut = || {
                let position = start + slot as u64;
                let index = indices[slot] as usize;
                (shared.cutter).cut_sample(index, *key, position, &mut scratch, &mut rows)
            };
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(cut))
                .unwrap_or_else(|_| Err(anyhow!("an image worker panicked")))
        };
        job.finish_slot(outcome);
    }
}

fn next_slot(shared: &Shared) -> Option<(Arc<Job>, usize)> {
    let mut queue = lock(&shared.queue);
    loop {
        if let Some(next) = queue.slots.pop_front() {
            return Some(next);
        }
        if queue.closed {
            return None;
        }
        queue = shared.work.wait(queue).unwrap_or_else(|e| e.into_inner());
    }
}

/// A poisoned lock only means a worker panicked while holding it; its data is still whole.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
