//! How a resumable run ends after a stop signal, shared by `pretrain` and `evaluate`: count the
//! stop as a time limit or a preemption (submitit's rule), then requeue under SLURM after
//! SIGUSR1, stop for good after too many time limits, or exit with [`EXIT_RESTART`] for an
//! executor that restarts the command itself. SIGTERM never requeues: it exits with
//! [`EXIT_RESTART`] after the checkpoint and leaves the decision to SLURM or the executor.
//! Rank 0 writes `<exp-dir>/stop.json` in every case, finished runs included.

use crate::atomic::write_atomic;
use crate::cluster::requeue::{self, StopCounters, StopKind};
use crate::cluster::signals::StopSignal;
use crate::cluster::{ClusterEnv, Launcher};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// "Restart me": EX_TEMPFAIL, what the local executor (and `RequeueExit=75`) understand.
pub const EXIT_RESTART: u8 = 75;
/// Set by executors that restart the trainer themselves on [`EXIT_RESTART`] rather than
/// letting it call `scontrol requeue`.
pub const RESTART_BY_EXIT_CODE: &str = "NLS_RESTART_BY_EXIT_CODE";
/// Set by executors that run the trainer without SLURM (`nls-launch --local`): the time limit
/// in seconds, or `unlimited`, in place of asking `scontrol`.
pub const TIME_LIMIT_S: &str = "NLS_TIME_LIMIT_S";

/// Tells time limits from preemptions for this process.
pub struct StopPolicy {
    env: ClusterEnv,
    started: Instant,
    limit: Option<Duration>,
}

/// Where a run stands when it ends.
pub struct Ending {
    /// None: the run finished.
    pub stop: Option<(StopSignal, StopKind)>,
    pub step: u64,
    pub epoch: u64,
    pub counters: StopCounters,
    /// The checkpoint to resume from, or the run's product when finished.
    pub file: PathBuf,
}

impl StopPolicy {
    /// Call at start-up: the clock for the time-limit rule starts here.
    pub fn new(env: &ClusterEnv) -> StopPolicy {
        StopPolicy {
            env: env.clone(),
            started: Instant::now(),
            limit: time_limit(env),
        }
    }

    /// Classifies a stop and counts it in `counters` (timeouts count per SLURM job: a job
    /// resubmitted by `nls-launch resume` starts again from zero).
    pub fn count(&self, signal: StopSignal, counters: &mut StopCounters) -> StopKind {
        if counters.job_id != self.env.job_id {
            counters.job_id = self.env.job_id.clone();
            counters.timeouts = 0;
        }
        let kind = requeue::classify(signal, self.started.elapsed(), self.limit);
        match kind {
            StopKind::Timeout => counters.timeouts += 1,
            StopKind::Preemption => counters.preemptions += 1,
        }
        log::warn!(
            "{} received: stopping ({kind:?}; {} timeouts, {} preemptions so far)",
            signal.name(),
            counters.timeouts,
            counters.preemptions
        );
        kind
    }

    /// Requeues or not, writes `stop.json` (rank 0), and returns the exit code.
    pub fn conclude(&self, exp_dir: &Path, max_timeouts: u32, ending: Ending) -> Result<u8> {
        let (code, report) = self.decide(exp_dir, max_timeouts, &ending)?;
        if self.env.rank == 0 {
            write_atomic(
                &exp_dir.join("stop.json"),
                serde_json::to_string_pretty(&report)?.as_bytes(),
            )?;
        }
        Ok(code)
    }

    fn decide(&self, exp_dir: &Path, max_timeouts: u32, e: &Ending) -> Result<(u8, Value)> {
        let Some((signal, kind)) = e.stop else {
            return Ok((0, report("finished", e, None)));
        };
        if e.counters.timeouts > max_timeouts {
            let hint = format!(
                "stopped after {} time limits (max-timeouts {max_timeouts}); the checkpoint {} is \
                 kept: resume with `nls-launch resume {}`",
                e.counters.timeouts,
                e.file.display(),
                exp_dir.display()
            );
            log::warn!("{hint}");
            let mut r = report("max-timeouts", e, Some(signal));
            r["hint"] = hint.into();
            return Ok((0, r));
        }
        let reason = match (signal, kind) {
            (StopSignal::Term, _) => "terminated",
            (_, StopKind::Timeout) => "timeout",
            (_, StopKind::Preemption) => "preemption",
        };
        let mut r = report(reason, e, Some(signal));
        if signal == StopSignal::Term {
            // scancel and SLURM's own preemption both send SIGTERM: SLURM requeues a preempted
            // job itself (PreemptMode=REQUEUE) and a cancelled one must stay cancelled, so only
            // SIGUSR1, the pre-timeout warning, ever leads to `scontrol requeue` (submitit's rule).
            log::info!(
                "checkpoint {} saved; SIGTERM ends this attempt without a requeue (exit \
                 {EXIT_RESTART}): a preempted job is requeued by SLURM, a cancelled one stays \
                 cancelled",
                e.file.display()
            );
            return Ok((EXIT_RESTART, r));
        }
        let slurm = self.env.launcher == Launcher::Slurm
            && std::env::var_os(RESTART_BY_EXIT_CODE).is_none();
        if !slurm {
            log::info!(
                "checkpoint {} saved; exiting with {EXIT_RESTART} so the executor restarts this run",
                e.file.display()
            );
            return Ok((EXIT_RESTART, r));
        }
        if self.env.rank != 0 {
            return Ok((0, r));
        }
        let id = requeue::requeue_id(&self.env).context("no SLURM job id to requeue")?;
        match requeue::requeue(&id) {
            Ok(()) => {
                log::info!(
                    "requeued job {id}; it will resume from {}",
                    e.file.display()
                );
                r["requeued"] = id.into();
                Ok((0, r))
            }
            Err(err) => {
                log::error!(
                    "{err:#}; the checkpoint {} is saved: resubmit to resume",
                    e.file.display()
                );
                Ok((EXIT_RESTART, r))
            }
        }
    }
}

/// The job's time limit: [`TIME_LIMIT_S`] when an executor set it, else SLURM's. Only rank 0
/// asks (its counters are the ones checkpointed), so a large job does not flood slurmctld.
fn time_limit(env: &ClusterEnv) -> Option<Duration> {
    if let Ok(secs) = std::env::var(TIME_LIMIT_S) {
        return secs.parse().ok().map(Duration::from_secs);
    }
    let job = env
        .job_id
        .as_deref()
        .filter(|_| env.launcher == Launcher::Slurm && env.rank == 0)?;
    match requeue::job_time_limit(job) {
        Ok(limit) => limit,
        Err(e) => {
            log::warn!("could not read the job's time limit ({e:#}); signals count as preemptions");
            None
        }
    }
}

fn report(reason: &str, e: &Ending, signal: Option<StopSignal>) -> Value {
    json!({
        "reason": reason,
        "signal": signal.map(StopSignal::name),
        "step": e.step,
        "epoch": e.epoch,
        "timeouts": e.counters.timeouts,
        "preemptions": e.counters.preemptions,
        "file": e.file,
        "time": chrono::Utc::now().to_rfc3339(),
    })
}
