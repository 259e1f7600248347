//! `trainer pretrain`: SimCLR / VICReg pretraining, single-process or distributed, resumable.
//!
//! Exit codes: 0 when the run finished (or was requeued by SLURM, or stopped for good after
//! `max_timeouts` time limits); [`EXIT_RESTART`](super::stop::EXIT_RESTART) (75) when a signal
//! stopped it outside SLURM (the local executor restarts it); 2 on errors.
//! `<exp-dir>/stop.json` says how the last attempt ended (see [`super::stop`]).

use super::run_args::RunArgs;
use super::stop::{Ending, StopPolicy};
use crate::atomic::write_atomic;
use crate::cluster::requeue::StopKind;
use crate::cluster::signals;
use crate::method::ssl::config::PretrainConfig;
use crate::method::ssl::pretrain::{Outcome, Pretrainer};
use crate::method::ssl::Method;
use crate::model::{Arch, MemoryFormat, Stem};
use crate::optim::OptimizerKind;
use crate::run_lock;
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

/// Every option may also come from `--config run.toml` (same names, `_` for `-`); flags win.
#[serde_with::skip_serializing_none]
#[derive(Args, Debug, Serialize)]
pub struct PretrainArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunArgs,
    /// SSL method: simclr (NT-Xent, -T) or vicreg (-I, -V, -C).
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Backbone: torchvision's ResNets, SSR's PreAct ResNet-18, Wide ResNet, MWN's ResNet-32.
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// resnet18/34/50 only. cifar: 3×3 stride-1 conv, no max-pool (32 px images); imagenet: 7×7
    /// stride 2 + max-pool. [default: cifar]
    #[arg(long, value_enum)]
    pub stem: Option<Stem>,
    /// Base width (64: the ResNets and PreAct; 16: resnet32), or wrn's widen factor (10).
    #[arg(long)]
    pub width: Option<i64>,
    /// wrn only: depth 6n + 4. [default: 28]
    #[arg(long)]
    pub depth: Option<i64>,
    /// Projector widths, e.g. 1024-1024-1024.
    #[arg(long)]
    pub mlp: Option<String>,
    /// Layout of image batches and conv weights: channels-last on CUDA and contiguous on the
    /// CPU (auto), or either everywhere (channels-last on the CPU runs a GPU's layouts through
    /// the collectives, as the tests do). [default: auto]
    #[arg(long, value_enum)]
    pub memory_format: Option<MemoryFormat>,
    /// On CUDA, keep cuDNN's benchmark mode off so that a resumed run continues bit for bit
    /// (benchmark mode times the convolution algorithms and may pick others after a restart).
    /// The CPU is deterministic either way. `--deterministic` alone means true.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub deterministic: Option<bool>,
    /// Epochs of the schedule (warm-up and cosine span them).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Global batch size over all ranks.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate for a batch of 256 (scaled linearly with --batch-size).
    #[arg(long)]
    pub base_lr: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    pub wd: Option<f64>,
    /// lars (the reference), or sgd / adamw / adam for small runs.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Epochs of linear learning-rate warm-up from 0.
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    /// NT-Xent temperature (SimCLR).
    #[arg(short = 'T', long)]
    pub temperature: Option<f64>,
    /// VICReg invariance coefficient.
    #[arg(short = 'I', long)]
    pub sim_coeff: Option<f64>,
    /// VICReg variance coefficient.
    #[arg(short = 'V', long)]
    pub std_coeff: Option<f64>,
    /// VICReg covariance coefficient.
    #[arg(short = 'C', long)]
    pub cov_coeff: Option<f64>,
    /// Seed of the initialization, the data order and the augmentations.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Use only the first N training images (0: all).
    #[arg(long)]
    pub train_samples: Option<usize>,
    /// Also checkpoint every N steps (0: at epoch ends and on signals).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Newest checkpoints kept in checkpoints/.
    #[arg(long)]
    pub keep_checkpoints: Option<usize>,
    /// Metrics line every N steps.
    #[arg(long)]
    pub log_every: Option<usize>,
    /// kNN accuracy every N epochs (0: never).
    #[arg(long)]
    pub knn_every: Option<usize>,
    /// Neighbours of the kNN monitor.
    #[arg(long)]
    pub knn_k: Option<usize>,
    /// Training images in the kNN bank (0: all).
    #[arg(long)]
    pub knn_train_samples: Option<usize>,
    /// Test images the kNN monitor classifies (0: all).
    #[arg(long)]
    pub knn_test_samples: Option<usize>,
    /// Finish after N steps (0: the whole schedule).
    #[arg(long)]
    pub max_steps: Option<usize>,
}

/// The run's configuration (defaults ← `--config` ← flags), checked without data or devices;
/// `trainer check-args` stops here.
pub fn config(args: &PretrainArgs) -> Result<PretrainConfig> {
    let flags = toml::Table::try_from(args).context("reading the flags")?;
    PretrainConfig::resolve(args.run.config.as_deref(), flags)
}

pub fn run(args: PretrainArgs) -> Result<u8> {
    signals::install()?;
    let cfg = config(&args)?;
    cfg.warnings().iter().for_each(|w| log::warn!("{w}"));
    let source = cfg.source()?;
    let (env, group) = args.run.dist.join()?;
    let policy = StopPolicy::new(&env);
    let mut trainer = Pretrainer::new(&cfg, &source, &group)?;
    // Held until the run ends; nothing is written into the exp-dir before it.
    let _lock = run_lock::acquire_for_group(&cfg.exp_dir, &env, &group)?;
    trainer.resume()?;
    if group.rank() == 0 {
        write_atomic(&cfg.exp_dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    }
    let mut kind = StopKind::Preemption;
    let outcome = trainer.run(|signal, state| kind = policy.count(signal, &mut state.stops))?;
    let ending = match outcome {
        Outcome::Finished(state) => Ending {
            stop: None,
            step: state.step,
            epoch: state.epoch,
            counters: state.stops,
            file: cfg.exp_dir.join("backbone.safetensors"),
        },
        Outcome::Stopped {
            signal,
            state,
            checkpoint,
        } => Ending {
            stop: Some((signal, kind)),
            step: state.step,
            epoch: state.epoch,
            counters: state.stops,
            file: checkpoint,
        },
    };
    policy.conclude(&cfg.exp_dir, cfg.max_timeouts, ending)
}
