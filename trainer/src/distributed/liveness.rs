//! Heartbeats through the store, so that a failed collective can name the ranks that are gone.
//!
//! Each Rust rank bumps `nls/heartbeat/<rank>` every [`BEAT`] on its own store connection. After a
//! failure, counters that stop moving belong to dead or hung ranks. Ranks that never beat (a Python
//! peer) are not reported.

use super::error::Missing;
use super::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const BEAT: Duration = Duration::from_millis(300);
/// The store's host waits at most this long for the other survivors to finish their diagnosis.
const LINGER: Duration = Duration::from_secs(8);
const DIAGNOSED: &str = "nls/diagnosed";

pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn key(rank: usize) -> String {
    format!("nls/heartbeat/{rank}")
}

impl Heartbeat {
    pub fn start(store: Store, rank: usize) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) && store.add(&key(rank), 1).is_ok() {
                std::thread::park_timeout(BEAT);
            }
        });
        Heartbeat {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Ranks whose heartbeat does not move over a few beats; `StoreGone` if the store is unreachable.
///
/// Rank 0 hosts the store, so it stays until the other survivors have read it: otherwise its exit
/// would turn their diagnosis into `StoreGone`.
pub fn missing_ranks(store: &Store, rank: usize, world: usize) -> Missing {
    let missing = observe(store, world);
    if let Missing::Ranks(stalled) = &missing {
        if rank == 0 {
            let survivors = (world - 1).saturating_sub(stalled.len());
            wait_for_diagnoses(store, survivors as i64);
        } else {
            let _ = store.add(DIAGNOSED, 1);
        }
    }
    missing
}

fn wait_for_diagnoses(store: &Store, survivors: i64) {
    let deadline = std::time::Instant::now() + LINGER;
    while std::time::Instant::now() < deadline {
        match store.add(DIAGNOSED, 0) {
            Ok(done) if done < survivors => std::thread::sleep(BEAT / 3),
            _ => return,
        }
    }
}

fn observe(store: &Store, world: usize) -> Missing {
    let read = |r: usize| -> Result<Option<i64>, String> {
        if store.check(&key(r))? {
            store.add(&key(r), 0).map(Some)
        } else {
            Ok(None)
        }
    };
    let snapshot = || (0..world).map(read).collect::<Result<Vec<_>, _>>();
    let Ok(before) = snapshot() else {
        return Missing::StoreGone;
    };
    std::thread::sleep(BEAT * 5);
    let Ok(after) = snapshot() else {
        return Missing::StoreGone;
    };
    let stalled = (0..world)
        .filter(|&r| matches!((before[r], after[r]), (Some(a), Some(b)) if a == b))
        .collect();
    Missing::Ranks(stalled)
}
