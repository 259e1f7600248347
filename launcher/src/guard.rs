//! One job at a time per exp-dir. A launch takes `<exp>/launch.lock` (an advisory lock the
//! kernel drops when the process ends, so a killed `nls-launch` never blocks the next one) and
//! refuses while an earlier job of the exp-dir is still queued or running: a local executor
//! that `local.json` says is running and whose pid is alive, or a recorded SLURM job still in
//! squeue. The local executor holds the lock for its whole run; a SLURM launch until the
//! submission is recorded.

use crate::{local, monitor, submit};
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// The lock file in the exp-dir.
pub const LOCK: &str = "launch.lock";

/// Held while this process launches (or runs) the exp-dir's job.
pub struct ExpLock {
    _file: File,
}

/// Takes the exp-dir's lock (creating the folder) after checking that no earlier job of it is
/// still queued or running.
pub fn acquire(exp_dir: &Path) -> Result<ExpLock> {
    std::fs::create_dir_all(exp_dir).with_context(|| format!("creating {}", exp_dir.display()))?;
    let path = exp_dir.join(LOCK);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    if file.try_lock().is_err() {
        ensure_idle(exp_dir)?;
        bail!(
            "another nls-launch is starting a job in {} right now (it holds {}): wait for it, \
             or use another --exp-dir",
            exp_dir.display(),
            path.display()
        );
    }
    ensure_idle(exp_dir)?;
    Ok(ExpLock { _file: file })
}

/// Refuses while a local executor of the exp-dir is alive or a recorded SLURM job of it is
/// still queued or running, naming the holder and what to do.
pub fn ensure_idle(exp_dir: &Path) -> Result<()> {
    let what_to_do = format!(
        "wait for it to end, stop it with `nls-launch cancel {}`, or use another --exp-dir",
        exp_dir.display()
    );
    if let Some(state) = local::read_state(exp_dir)?.filter(local::is_running) {
        bail!(
            "local job {} of {} is still running (nls-launch pid {}): {what_to_do}",
            state.job_id,
            exp_dir.display(),
            state.pid
        );
    }
    if !exp_dir.join(submit::SUBMISSIONS).is_file() {
        return Ok(());
    }
    let ids: Vec<String> = submit::read_submissions(exp_dir)?
        .into_iter()
        .filter(|s| s.executor.is_none())
        .map(|s| s.job_id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(row) = monitor::squeue(&ids)?.first() {
        bail!(
            "job {} of {} is still {} (SLURM): {what_to_do}",
            row.id,
            exp_dir.display(),
            row.state
        );
    }
    Ok(())
}
