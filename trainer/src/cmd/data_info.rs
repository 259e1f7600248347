//! `trainer data-info`: which dataset and format a folder holds, and what it contains.

use crate::data::{Source, Split};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct DataInfoArgs {
    /// Dataset folder (or its parent).
    #[arg(long)]
    pub data_dir: PathBuf,
}

pub fn run(args: DataInfoArgs) -> Result<()> {
    let source = Source::detect(&args.data_dir)?;
    println!("found {}", source.describe());
    for split in [Split::Train, Split::Test] {
        let data = source.load(split)?;
        let counts = crate::noise::class_counts(
            &crate::data::to_classes(&data.labels, source.num_classes)?,
            source.num_classes,
        );
        println!(
            "{split:?}: {} images of shape {:?}, per class {counts:?}",
            data.labels.len(),
            &data.images.size()[1..]
        );
    }
    Ok(())
}
