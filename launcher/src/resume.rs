//! `resume EXP`: launch an ended experiment again from its `job.toml`. The trainer continues
//! from the checkpoints in its exp-dir (with fresh time-limit counters, since the job id is
//! new); a sweep runs only the configurations without `results.json`.

use crate::config::{Experiment, JobArgs};
use crate::launch::{self, RESOLVED};
use crate::{guard, monitor};
use anyhow::{ensure, Result};
use std::path::Path;

/// Checks that nothing of the experiment still runs and that there is something to continue,
/// then launches it (flags override `job.toml`, e.g. a longer `--time`). Returns the exit code.
pub fn resume(exp_dir: &Path, flags: &JobArgs, dry_run: bool, local: bool) -> Result<u8> {
    let file = exp_dir.join(RESOLVED);
    ensure!(
        file.is_file(),
        "{} has no {RESOLVED}: resume takes an experiment folder written by nls-launch",
        exp_dir.display()
    );
    guard::ensure_idle(exp_dir)?;
    let mut flags = flags.clone();
    flags.exp_dir = Some(exp_dir.to_path_buf());
    let exp = Experiment::load(Some(&file), &flags, &[])?;
    if exp.grid.is_none() {
        ensure_resumable(exp_dir)?;
    }
    launch::launch(&exp, dry_run, local)
}

/// A single job must have stopped early and left a checkpoint.
fn ensure_resumable(exp_dir: &Path) -> Result<()> {
    ensure!(
        !exp_dir.join("results.json").is_file(),
        "{} has its results.json: the run finished; nothing to resume",
        exp_dir.display()
    );
    if let Some(stop) = monitor::read_stop(exp_dir)? {
        ensure!(
            stop.reason != "finished",
            "the run in {} finished{}; nothing to resume",
            exp_dir.display(),
            stop.step
                .map(|s| format!(" at step {s}"))
                .unwrap_or_default()
        );
    }
    let checkpoints = exp_dir.join("checkpoints");
    let any = std::fs::read_dir(&checkpoints)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    ensure!(
        any,
        "{} left no checkpoint in {}: nothing to continue from; start it again with \
         `nls-launch run {}`",
        exp_dir.display(),
        checkpoints.display(),
        exp_dir.join(RESOLVED).display()
    );
    Ok(())
}
