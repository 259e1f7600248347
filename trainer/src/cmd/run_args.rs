//! Options every resumable run (`pretrain`, `evaluate`) shares. Like the rest of a command's
//! options they serialize into the flags layer over `--config` (see
//! [`crate::method::layers`]); `--config` and the distributed options stay out of it.

use super::dist_args::DistArgs;
use crate::data::resident::BadImages;
use crate::data::stream::DecodeScale;
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
    /// Dataset folder (CIFAR-10/100, Fashion-MNIST IDX, ImageNet32/64, ImageFolder, ANIMAL-10N,
    /// Clothing1M, WebVision, Food-101N).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Expected dataset, checked against what --data-dir holds; on a WebVision release,
    /// `webvision` trains on WebVision 1.0 whole (1000 classes, Google and Flickr images, tested
    /// on its val and on ImageNet val) where by default it trains as mini-WebVision.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Image files (ImageFolder, real-world releases): resize the shorter side to this and
    /// centre-crop a square of it; unset, all images of a split must share one size.
    #[arg(long)]
    pub image_size: Option<usize>,
    /// A file that does not decode: stop, naming it (fail), or leave it out, logged once and
    /// counted (skip).
    #[arg(long, value_enum)]
    pub bad_images: Option<BadImages>,
    /// Read the training images from their files batch by batch (resized crops + flips at
    /// --image-size on worker threads), never holding the split in memory. ImageFolders and
    /// real-world releases; `--stream` alone means true.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub stream: Option<bool>,
    /// Streamed JPEGs: decode at full scale (the pixels torchvision crops from), or at the
    /// coarsest DCT scale (1/2, 1/4, 1/8) that leaves each crop at least its output size, or,
    /// for views that resize first (--train-resize), the shorter side at least the resize
    /// (faster on large photographs; resamples differently by a few grey levels).
    #[arg(long, value_enum)]
    pub decode_scale: Option<DecodeScale>,
    /// Node-local folder where resident splits (CIFAR, ImageNet32, decoded image folders) are
    /// written once and memory-mapped by every process of the node, so ranks share one copy
    /// (e.g. /dev/shm/nls or $TMPDIR); unset, each process loads its own.
    #[arg(long)]
    pub shared_dir: Option<PathBuf>,
    /// Run folder: config.toml, checkpoints/, metrics.jsonl, stop.json and the run's product.
    #[arg(long)]
    pub exp_dir: Option<PathBuf>,
    /// Time-limit requeues allowed before the job stops for good (SLURM).
    #[arg(long)]
    pub max_timeouts: Option<u32>,
}
