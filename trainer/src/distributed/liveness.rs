//! Heartbeats through the store, so that a failed collective can name the ranks that are gone.
//!
//! Each Rust rank bumps `nls/heartbeat/<rank>` every [`BEAT`] on its own store connection. After a
//! failure, counters that stop moving belong to dead or hung ranks. Ranks that never beat (a Python
//! peer) are not reported.
//!
//! Rank 0 hosts the store, and a survivor blocked in a collective with rank 0 only fails when rank
//! 0 exits, taking the store with it. So rank 0 publishes what it saw, and every heartbeat thread
//! keeps the last verdict it read: a survivor that finds the store gone still names the dead rank.

use super::error::Missing;
use super::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const BEAT: Duration = Duration::from_millis(300);
/// The store's host waits at most this long for the other survivors to finish their diagnosis.
const LINGER: Duration = Duration::from_secs(8);
const DIAGNOSED: &str = "nls/diagnosed";
/// Rank 0's list of stalled ranks, comma-separated.
const VERDICT: &str = "nls/verdict";

pub struct Heartbeat {
    stop: Arc<AtomicBool>,
    verdict: Arc<Mutex<Option<Vec<usize>>>>,
    thread: Option<JoinHandle<()>>,
}

fn key(rank: usize) -> String {
    format!("nls/heartbeat/{rank}")
}

impl Heartbeat {
    pub fn start(store: Store, rank: usize) -> Heartbeat {
        let stop = Arc::new(AtomicBool::new(false));
        let verdict = Arc::new(Mutex::new(None));
        let (flag, seen) = (stop.clone(), verdict.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) && store.add(&key(rank), 1).is_ok() {
                // One verdict per failure: once read, the beats go on without looking again.
                if seen.lock().unwrap().is_none() {
                    if let Some(v) = read_verdict(&store) {
                        *seen.lock().unwrap() = Some(v);
                    }
                }
                std::thread::park_timeout(BEAT);
            }
        });
        Heartbeat {
            stop,
            verdict,
            thread: Some(thread),
        }
    }

    /// The stalled ranks rank 0 published, if this thread read them before the store went away.
    fn verdict(&self) -> Option<Vec<usize>> {
        self.verdict.lock().unwrap().clone()
    }
}

fn read_verdict(store: &Store) -> Option<Vec<usize>> {
    if !store.check(VERDICT).ok()? {
        return None;
    }
    // The key exists and never holds "?", so this reads it without changing it.
    let text = store.compare_set(VERDICT, "?", "?").ok()?;
    text.split(',').map(|r| r.parse().ok()).collect()
}

fn publish_verdict(store: &Store, stalled: &[usize]) {
    let text: Vec<String> = stalled.iter().map(usize::to_string).collect();
    let _ = store.set(VERDICT, &text.join(","));
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
/// Rank 0 hosts the store, so it publishes its verdict and stays until the other survivors have
/// read the store: otherwise its exit would turn their diagnosis into `StoreGone`.
pub fn missing_ranks(store: &Store, heartbeat: &Heartbeat, rank: usize, world: usize) -> Missing {
    let missing = match observe(store, world) {
        Missing::StoreGone => heartbeat
            .verdict()
            .map_or(Missing::StoreGone, Missing::Ranks),
        seen => seen,
    };
    if let Missing::Ranks(stalled) = &missing {
        if rank == 0 {
            if !stalled.is_empty() {
                publish_verdict(store, stalled);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Through a real TCPStore (a group of one on a free port): a published verdict is read back
    /// as published, and the heartbeat thread keeps what it read for after the store is gone.
    #[test]
    fn a_published_verdict_outlives_the_store() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = Store::connect("127.0.0.1", port, true, 1, Duration::from_secs(10)).unwrap();
        store.wait_workers().unwrap();
        assert_eq!(read_verdict(&store), None);
        let heartbeat = Heartbeat::start(store.try_clone().unwrap(), 0);
        publish_verdict(&store, &[1, 3]);
        assert_eq!(read_verdict(&store), Some(vec![1, 3]));
        std::thread::sleep(BEAT * 3);
        assert_eq!(heartbeat.verdict(), Some(vec![1, 3]));
    }
}
