//! `trainer pack`: a dataset's image files into one pack file ([`crate::data::pack`]).

use crate::cluster::signals;
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
    /// The pack to write (`*.nlspack`), alone in its folder, which runs then take as
    /// --data-dir. Interrupted, the same command goes on from `<out>.partial`.
    #[arg(long)]
    pub out: PathBuf,
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
    let source = Source::detect(&args.data_dir)?;
    log::info!("packing {}", source.describe());
    let packed = write::pack(&source, &args.out)?;
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
