//! `trainer pack`: a dataset's image files into one pack file ([`crate::data::pack`]).

use crate::cluster::signals;
use crate::data::pack::encode::{Encoding, Storage, DEFAULT_QUALITY};
use crate::data::pack::{write, EXTENSION};
use crate::data::Source;
use anyhow::{ensure, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct PackArgs {
    /// Dataset folder: an ImageFolder or a real-world release in its official layout.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The dataset to pack the splits of, checked against --data-dir: `webvision` packs a
    /// WebVision release whole (its training, val and ImageNet val images) rather than
    /// mini-WebVision's.
    #[arg(long)]
    pub dataset: Option<String>,
    /// The pack to write (`*.nlspack`), alone in its folder, which runs then take as
    /// --data-dir. Interrupted, the same command goes on from `<out>.partial`.
    #[arg(long)]
    pub out: PathBuf,
    /// How each image is stored: its file as it is; its JPEG rewritten losslessly as tiles
    /// (the same pixels, a crop decoded from the tiles it covers only: the fastest to stream);
    /// decoded and encoded again as JPEG at --quality; or decoded pixels (reading them is a
    /// copy, no decode).
    #[arg(long, value_enum, default_value_t = Encoding::File)]
    pub encoding: Encoding,
    /// Re-encoded images (jpeg, raw) larger than this on their longer side are shrunk to it
    /// first (antialiased bilinear).
    #[arg(long)]
    pub max_side: Option<usize>,
    /// JPEG quality of --encoding jpeg.
    #[arg(long, default_value_t = DEFAULT_QUALITY)]
    pub quality: u8,
}

pub fn run(args: PackArgs) -> Result<()> {
    signals::install()?;
    ensure!(
        args.out.extension().is_some_and(|x| x == EXTENSION),
        "--out {}: a pack's name ends in .{EXTENSION}",
        args.out.display()
    );
    ensure!(
        !args.out.exists(),
        "--out {} exists; delete it to pack again",
        args.out.display()
    );
    let source =
        Source::detect(&args.data_dir)?.as_dataset(args.dataset.as_deref(), &args.data_dir)?;
    log::info!("packing {}", source.describe());
    let storage = Storage {
        encoding: args.encoding,
        max_side: args.max_side,
        quality: args.quality,
    };
    let packed = write::pack(&source, &args.out, storage)?;
    println!(
        "packed {} images ({} kept from an earlier run) into {}: {} bytes, every sample read \
         back and checked",
        packed.rows,
        packed.kept,
        args.out.display(),
        packed.bytes
    );
    Ok(())
}
