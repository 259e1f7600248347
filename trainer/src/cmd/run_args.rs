//! Options every resumable run (`pretrain`, `evaluate`) shares. Like the rest of a command's
//! options they serialize into the flags layer over `--config` (see
//! [`crate::method::layers`]); `--config` and the distributed options stay out of it.

use super::dist_args::DistArgs;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

#[serde_with::skip_serializing_none]
#[derive(Args, Debug, Serialize)]
pub struct RunArgs {
    /// TOML file with any of this command's options (names with `_` for `-`).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    #[serde(skip)]
    pub dist: DistArgs,
    /// Dataset folder (CIFAR-10/100, Fashion-MNIST IDX, ImageFolder).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Run folder: config.toml, checkpoints/, metrics.jsonl, stop.json and the run's product.
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// Time-limit requeues allowed before the job stops for good (SLURM).
    #[arg(long)]
    pub max_timeouts: Option<u32>,
}
