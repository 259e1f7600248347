//! `trainer augment-preview`: a PNG grid of training images and their augmented views, built
//! with the same recipe resolution as pretraining (method, dataset normalization, `[augment]`).

use crate::atomic::write_atomic;
use crate::augment::preview::{compose, encode_png, preview_cells, upscale, GUTTER};
use crate::augment::{AugmentConfig, ViewKey};
use crate::data::{DatasetName, Source, Split};
use crate::method::ssl::config::PretrainConfig;
use crate::method::ssl::Method;
use anyhow::{ensure, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(Args)]
pub struct AugmentPreviewArgs {
    /// Dataset folder (or its parent); the first images of the training split are shown.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Where to write the PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Whose augmentation recipe to show.
    #[arg(long, value_enum, default_value_t = Method::Simclr)]
    pub method: Method,
    /// Images (grid rows).
    #[arg(long, default_value_t = 8)]
    pub images: usize,
    /// Augmented views per image (columns after the original).
    #[arg(long, default_value_t = 4)]
    pub views: u64,
    /// Seed of the augmentation draws (as `pretrain --seed`).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Epoch of the view keys: a different epoch shows different views.
    #[arg(long, default_value_t = 0)]
    pub epoch: u64,
    /// Nearest-neighbour upscaling factor, so that 28–32 px images are visible.
    #[arg(long, default_value_t = 4)]
    pub scale: i64,
    /// A run.toml; only its `[augment]` table is read (unknown keys there are errors).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub fn run(args: AugmentPreviewArgs) -> Result<()> {
    // Argument checks first: they must not wait for a 60k-image dataset to load.
    ensure!(args.images >= 1, "--images must be at least 1");
    ensure!(args.views >= 1, "--views must be at least 1");
    ensure!(
        (1..=64).contains(&args.scale),
        "--scale must be between 1 and 64, not {}",
        args.scale
    );
    let overrides = match &args.config {
        Some(path) => augment_table(path)?,
        None => toml::Table::new(),
    };

    let source = Source::detect(&args.data_dir)?;
    let data = source.load(Split::Train)?;
    ensure!(
        args.images <= data.len(),
        "--images {} is more than the {} images of {}'s training split",
        args.images,
        data.len(),
        source.name
    );
    let images = data.images.narrow(0, 0, args.images as i64);
    let (_, _, h, w) = images.size4()?;
    let cfg = recipe(args.method, overrides, h.min(w), source.name).with_context(|| match &args
        .config
    {
        Some(path) => format!("the [augment] table of --config {}", path.display()),
        None => "the augmentation recipe".into(),
    })?;

    let grid = render(&crate::model::to_rgb(&images)?, &cfg, &args)?;
    let png = encode_png(&grid)?;
    write_atomic(&args.out, &png).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "wrote {}: {} images × (original + {} views) of {}, {}×{} pixels",
        args.out.display(),
        args.images,
        args.views,
        source.name,
        grid.width,
        grid.height
    );
    Ok(())
}

/// The `[augment]` table of a run.toml (empty when it has none); the rest of the file is ignored.
fn augment_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --config {}", path.display()))?;
    let mut table: toml::Table = text
        .parse()
        .with_context(|| format!("--config {} is not valid TOML", path.display()))?;
    match table.remove("augment") {
        None => Ok(toml::Table::new()),
        Some(toml::Value::Table(t)) => Ok(t),
        Some(other) => anyhow::bail!(
            "--config {}: `augment` must be a table, not a {}",
            path.display(),
            other.type_str()
        ),
    }
}

/// The method's recipe at the dataset's side and normalization, then the overrides: the same
/// resolution pretraining uses, so the preview shows what training will see.
fn recipe(
    method: Method,
    augment: toml::Table,
    side: i64,
    dataset: DatasetName,
) -> Result<AugmentConfig> {
    let config = PretrainConfig {
        method,
        augment,
        ..PretrainConfig::default()
    };
    config.augment_for(side, dataset)
}

/// RGB uint8 images → the composed grid: one row per image, cells upscaled by `--scale`.
fn render(
    images: &Tensor,
    cfg: &AugmentConfig,
    args: &AugmentPreviewArgs,
) -> Result<crate::augment::preview::RgbImage> {
    let key = ViewKey {
        seed: args.seed,
        epoch: args.epoch,
        step: 0,
        rank: 0,
        view: 0,
    };
    let cells = preview_cells(images, cfg, args.views, key);
    compose(&upscale(&cells, args.scale), GUTTER)
}
