//! `trainer pretrain`: SimCLR / VICReg pretraining, single-process or distributed, resumable.
//!
//! Exit codes: 0 when the run finished (or was requeued by SLURM, or stopped for good after
//! `max_timeouts` time limits); [`EXIT_RESTART`] (75) when a signal stopped it outside SLURM
//! (the local executor restarts it); 2 on errors. `<exp-dir>/stop.json` says how the last
//! attempt ended.

use super::dist_args::DistArgs;
use crate::atomic::write_atomic;
use crate::cluster::requeue::{self, StopKind};
use crate::cluster::signals::{self, StopSignal};
use crate::cluster::{ClusterEnv, Launcher};
use crate::method::ssl::config::PretrainConfig;
use crate::method::ssl::pretrain::{Outcome, Pretrainer};
use crate::method::ssl::state::TrainState;
use crate::method::ssl::Method;
use crate::model::{Arch, Stem};
use crate::optim::OptimizerKind;
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// "Restart me": EX_TEMPFAIL, what the local executor (and `RequeueExit=75`) understand.
pub const EXIT_RESTART: u8 = 75;
/// Set by executors that restart the trainer themselves on [`EXIT_RESTART`] rather than
/// letting it call `scontrol requeue`.
pub const RESTART_BY_EXIT_CODE: &str = "NLS_RESTART_BY_EXIT_CODE";

/// Every option may also come from `--config run.toml` (same names, `_` for `-`); flags win.
#[derive(Args, Debug, Serialize)]
pub struct PretrainArgs {
    /// TOML file with any of the options below (and an `[augment]` table).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(skip)]
    pub dist: DistArgs,
    /// Dataset folder (CIFAR-10/100, Fashion-MNIST IDX, ImageFolder).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Run folder: config.toml, checkpoints/, metrics.jsonl, backbone.safetensors, stop.json.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp_dir: Option<PathBuf>,
    /// Expected dataset (checked against what --data-dir holds).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stem: Option<Stem>,
    /// Channels after the stem (64: torchvision's ResNet).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    /// Projector widths, e.g. 1024-1024-1024.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlp: Option<String>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Global batch size over all ranks.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Learning rate for a batch of 256 (scaled linearly with --batch-size).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_lr: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wd: Option<f64>,
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<OptimizerKind>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_epochs: Option<usize>,
    /// NT-Xent temperature (SimCLR).
    #[arg(short = 'T', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// VICReg invariance coefficient.
    #[arg(short = 'I', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim_coeff: Option<f64>,
    /// VICReg variance coefficient.
    #[arg(short = 'V', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_coeff: Option<f64>,
    /// VICReg covariance coefficient.
    #[arg(short = 'C', long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cov_coeff: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Use only the first N training images (0: all).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_samples: Option<usize>,
    /// Also checkpoint every N steps (0: at epoch ends and on signals).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<usize>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_checkpoints: Option<usize>,
    /// Metrics line every N steps.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_every: Option<usize>,
    /// kNN accuracy every N epochs (0: never).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn_every: Option<usize>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn_k: Option<usize>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn_train_samples: Option<usize>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knn_test_samples: Option<usize>,
    /// Finish after N steps (0: the whole schedule).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Time-limit requeues allowed before the job stops for good (SLURM).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_timeouts: Option<u32>,
}

pub fn run(args: PretrainArgs) -> Result<u8> {
    let started = Instant::now();
    signals::install()?;
    let flags = toml::Table::try_from(&args).context("reading the flags")?;
    let cfg = PretrainConfig::resolve(args.config.as_deref(), flags)?;
    let source = cfg.source()?;
    let (env, group) = args.dist.join()?;
    let trainer = Pretrainer::new(&cfg, &source, &group)?;
    if group.rank() == 0 {
        write_atomic(&cfg.exp_dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    }
    let limit = time_limit(&env);
    let mut kind = StopKind::Preemption;
    let outcome = trainer.run(|signal, state| {
        kind = count_stop(signal, state, &env, started.elapsed(), limit);
    })?;
    let (code, report) = conclude(&cfg, &env, outcome, kind)?;
    if group.rank() == 0 {
        write_atomic(
            &cfg.exp_dir.join("stop.json"),
            serde_json::to_string_pretty(&report)?.as_bytes(),
        )?;
    }
    Ok(code)
}

/// SLURM's time limit for this job, to tell timeouts from preemptions (rank 0 asks once).
fn time_limit(env: &ClusterEnv) -> Option<Duration> {
    let job = env
        .job_id
        .as_deref()
        .filter(|_| env.launcher == Launcher::Slurm)?;
    match requeue::job_time_limit(job) {
        Ok(limit) => limit,
        Err(e) => {
            log::warn!("could not read the job's time limit ({e:#}); signals count as preemptions");
            None
        }
    }
}

/// Classifies the stop as submitit does and counts it. Timeouts count per submission: a job
/// resubmitted by `nls-launch resume` (a new job id) starts again from zero.
fn count_stop(
    signal: StopSignal,
    state: &mut TrainState,
    env: &ClusterEnv,
    elapsed: Duration,
    limit: Option<Duration>,
) -> StopKind {
    if state.job_id != env.job_id {
        state.job_id = env.job_id.clone();
        state.timeouts = 0;
    }
    let kind = requeue::classify(signal, elapsed, limit);
    match kind {
        StopKind::Timeout => state.timeouts += 1,
        StopKind::Preemption => state.preemptions += 1,
    }
    log::warn!(
        "{} received: stopping at step {} ({} timeouts, {} preemptions so far)",
        signal.name(),
        state.step,
        state.timeouts,
        state.preemptions
    );
    kind
}

/// The exit code and the `stop.json` report; requeues the job when that is what's wanted.
fn conclude(
    cfg: &PretrainConfig,
    env: &ClusterEnv,
    outcome: Outcome,
    kind: StopKind,
) -> Result<(u8, serde_json::Value)> {
    let (signal, state, checkpoint) = match outcome {
        Outcome::Finished(state) => {
            return Ok((
                0,
                report(
                    "finished",
                    &state,
                    None,
                    cfg.exp_dir.join("backbone.safetensors"),
                ),
            ));
        }
        Outcome::Stopped {
            signal,
            state,
            checkpoint,
        } => (signal, state, checkpoint),
    };
    let timeouts_left = state.timeouts <= cfg.max_timeouts;
    let slurm_requeue =
        env.launcher == Launcher::Slurm && std::env::var_os(RESTART_BY_EXIT_CODE).is_none();
    if !timeouts_left {
        let hint = format!("stopped after {} time limits (--max-timeouts {}); the checkpoint {} is kept: resume with `nls-launch resume {}`", state.timeouts, cfg.max_timeouts, checkpoint.display(), cfg.exp_dir.display());
        log::warn!("{hint}");
        let mut r = report("max-timeouts", &state, Some(signal), checkpoint);
        r["hint"] = hint.into();
        return Ok((0, r));
    }
    let reason = match kind {
        StopKind::Timeout => "timeout",
        StopKind::Preemption => "preemption",
    };
    let mut r = report(reason, &state, Some(signal), checkpoint.clone());
    if !slurm_requeue {
        log::info!(
            "checkpoint {} saved; exiting with {EXIT_RESTART} so the executor restarts this run",
            checkpoint.display()
        );
        return Ok((EXIT_RESTART, r));
    }
    if env.rank != 0 {
        return Ok((0, r));
    }
    let id = requeue::requeue_id(env).context("no SLURM job id to requeue")?;
    match requeue::requeue(&id) {
        Ok(()) => {
            log::info!(
                "requeued job {id}; it will resume from {}",
                checkpoint.display()
            );
            r["requeued"] = id.into();
            Ok((0, r))
        }
        Err(e) => {
            log::error!(
                "{e:#}; the checkpoint {} is saved: resubmit to resume",
                checkpoint.display()
            );
            Ok((EXIT_RESTART, r))
        }
    }
}

fn report(
    reason: &str,
    state: &TrainState,
    signal: Option<StopSignal>,
    file: PathBuf,
) -> serde_json::Value {
    json!({
        "reason": reason,
        "signal": signal.map(StopSignal::name),
        "step": state.step,
        "epoch": state.epoch,
        "timeouts": state.timeouts,
        "preemptions": state.preemptions,
        "file": file,
        "time": chrono::Utc::now().to_rfc3339(),
    })
}
