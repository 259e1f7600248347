//! A training split read from its image files batch by batch (`--stream`), so that it never sits
//! in memory: each batch's files are decoded on worker threads and cut by torchvision's
//! `RandomResizedCrop` + `RandomHorizontalFlip` into uint8 `N×3×S×S` batches, one per view (the
//! two SSL views are cut from one decode); the colour augmentations and normalization stay
//! batched on the device. Every sample's crop and flip come from its own keyed stream
//! ([`ViewKey::sample_rng`] by its position in the global batch; view `v` under the key's view
//! plus `v`), so batches do not depend on the number of workers or ranks, and a resumed run
//! sees the same.
//!
//! [`Streamed::prefetch`] queues a later batch for the workers ([`pool`]); a batch asked for is
//! taken from the queue when it was prefetched. [`cut`] is what happens to one sample.

mod cut;
mod pool;

pub use cut::{Cut, CutShape, DecodeScale};

use super::files::Files;
use super::resident::BadImages;
use crate::augment::{AugmentConfig, ViewKey};
use anyhow::Result;
use cut::Cutter;
use pool::{lock, Job, Pool, Request};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tch::{Device, Tensor};

/// How many batches ahead the training loops queue: enough that a worker finishing the last
/// sample of one batch always finds the next batch's samples waiting.
pub const BATCHES_AHEAD: usize = 2;

/// A streamed split: its files, the workers cutting them, and the batches queued ahead.
pub struct Streamed {
    cutter: Arc<Cutter>,
    workers: usize,
    /// The device batches are copied to: pinned host memory when it is a GPU.
    pin: Option<Device>,
    pool: OnceLock<Pool>,
    /// Batches prefetched, in the order they will be asked for.
    ahead: Mutex<VecDeque<Arc<Job>>>,
    /// Batches served from a prefetch.
    hits: AtomicUsize,
    /// Grey samples in the batches served since [`take_grey_samples`](Self::take_grey_samples).
    grey: AtomicUsize,
}

impl Streamed {
    /// The split's files (`paths` in `files`: a folder or a pack) cut as `view` says (its size,
    /// crop scale and ratio, flip probability), on one worker per core. With
    /// `BadImages::Skip`, `bad_count` counts the samples whose file does not decode.
    pub fn new(
        files: impl Into<Files>,
        paths: impl Into<Arc<[String]>>,
        view: &AugmentConfig,
        bad: BadImages,
        bad_count: Arc<AtomicUsize>,
    ) -> Self {
        Self::with_views(files, paths, &[Cut::resized_crop(view)], bad, bad_count)
    }

    /// As [`new`](Self::new), each file cut once per view of `views` ([`views`](Self::views)).
    /// `paths` may be shared with other streams of the split (a million paths are ~60 MB).
    pub fn with_views(
        files: impl Into<Files>,
        paths: impl Into<Arc<[String]>>,
        views: &[Cut],
        bad: BadImages,
        bad_count: Arc<AtomicUsize>,
    ) -> Self {
        assert!(!views.is_empty(), "a stream cuts at least one view");
        let cutter = Cutter {
            files: files.into(),
            paths: paths.into(),
            views: views.to_vec(),
            bad,
            scale: DecodeScale::Full,
            bad_seen: Default::default(),
            bad_count,
        };
        Self {
            cutter: Arc::new(cutter),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            pin: None,
            pool: OnceLock::new(),
            ahead: Mutex::new(VecDeque::new()),
            hits: AtomicUsize::new(0),
            grey: AtomicUsize::new(0),
        }
    }

    /// With `workers` decoding threads (before any batch is asked for).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// With JPEG files decoded at `scale` (before any batch is asked for).
    pub fn with_decode_scale(mut self, scale: DecodeScale) -> Self {
        Arc::get_mut(&mut self.cutter)
            .expect("no batch in flight yet")
            .scale = scale;
        self
    }

    /// Counting bad files with `other` (before any batch is asked for): a file both read is
    /// counted once.
    pub fn sharing_bad_files(mut self, other: &Streamed) -> Self {
        let cutter = Arc::get_mut(&mut self.cutter).expect("no batch in flight yet");
        cutter.bad_seen = other.cutter.bad_seen.clone();
        cutter.bad_count = other.cutter.bad_count.clone();
        self
    }

    /// Batches in page-locked memory when they go to a CUDA `device`, so that
    /// [`to_device`] copies them without blocking; nothing changes for the CPU.
    pub fn for_device(mut self, device: Device) -> Self {
        self.pin = device.is_cuda().then_some(device);
        self
    }

    /// The samples `indices`, at positions `start..` of the global batch of step `key`:
    /// uint8 `[n, 3, S, S]` (the first view); the prefetched batch when it is this one.
    pub fn batch(&self, indices: &[i64], key: ViewKey, start: u64) -> Result<Tensor> {
        Ok(self.views(indices, key, start)?.swap_remove(0))
    }

    /// Every view of the samples `indices` (see [`batch`](Self::batch)), each file decoded once.
    pub fn views(&self, indices: &[i64], key: ViewKey, start: u64) -> Result<Vec<Tensor>> {
        self.views_then(indices, key, start, None)
    }

    /// As [`views`](Self::views), queueing the batch `next` (indices, key and start) behind
    /// this one before waiting for it: a pass in order reads ahead so.
    pub fn views_then(
        &self,
        indices: &[i64],
        key: ViewKey,
        start: u64,
        next: Option<(&[i64], ViewKey, u64)>,
    ) -> Result<Vec<Tensor>> {
        let request = (indices.to_vec(), key, start);
        let job = match self.take_prefetched(&request) {
            Some(job) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                job
            }
            None => self.pool().submit(request),
        };
        if let Some((indices, key, start)) = next {
            self.prefetch(indices, key, start);
        }
        let views = job.wait()?;
        self.grey.fetch_add(job.grey_samples(), Ordering::Relaxed);
        Ok(views)
    }

    /// Grey samples (files that do not decode, `--bad-images skip`) in the batches served since
    /// the last call: a figure for each logging interval, the same in a resumed run.
    pub fn take_grey_samples(&self) -> usize {
        self.grey.swap(0, Ordering::Relaxed)
    }

    /// Queues a batch a later [`views`](Self::views) call will ask for, unless it is queued
    /// already; batches are expected to be asked for in the order they were prefetched.
    pub fn prefetch(&self, indices: &[i64], key: ViewKey, start: u64) {
        let request = (indices.to_vec(), key, start);
        let mut ahead = lock(&self.ahead);
        if !ahead.iter().any(|job| job.request == request) {
            ahead.push_back(self.pool().submit(request));
        }
    }

    /// How many batches came from a prefetch.
    pub fn prefetch_hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// The prefetched job for `request`; those queued before it will never be asked for (a
    /// resume, an epoch's end) and are cancelled, as all are when none matches.
    fn take_prefetched(&self, request: &Request) -> Option<Arc<Job>> {
        let mut ahead = lock(&self.ahead);
        while let Some(job) = ahead.pop_front() {
            if job.request == *request {
                return Some(job);
            }
            job.cancel();
        }
        None
    }

    fn pool(&self) -> &Pool {
        self.pool
            .get_or_init(|| Pool::start(self.cutter.clone(), self.workers, self.pin))
    }
}

impl Drop for Streamed {
    /// Says how much of the decoding overlapped training (when there was any).
    fn drop(&mut self) {
        lock(&self.ahead).iter().for_each(|job| job.cancel());
        if self.pool.get().is_none() {
            return;
        }
        log::info!(
            "streamed training batches: {} decoded ahead of their step",
            self.prefetch_hits()
        );
    }
}
