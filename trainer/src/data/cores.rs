//! Work over a list split into one contiguous part per core, the results in the list's order.

use anyhow::{Context, Result};

/// `f` over `items` on one thread per core, each thread with its own state from `init` (a
/// resampler, say); the results in `items`' order. `panicked` is the error when a thread panics.
pub fn map_in_order<T: Sync, S, R: Send>(
    items: &[T],
    panicked: &str,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Result<Vec<R>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = items.len().div_ceil(threads).max(1);
    let (init, f) = (&init, &f);
    std::thread::scope(|s| {
        let jobs: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut state = init();
                    part.iter().map(|x| f(&mut state, x)).collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for job in jobs {
            out.extend(job.join().ok().context(panicked.to_string())?);
        }
        Ok(out)
    })
}
