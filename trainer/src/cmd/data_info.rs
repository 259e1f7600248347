//! `trainer data-info`: which dataset and format a folder holds, and what it contains.

use crate::data::catalog::Catalog;
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
    if let Some(catalog) = crate::data::catalog::detect(&args.data_dir)? {
        print_catalog(catalog);
        return Ok(());
    }
    let source = Source::detect(&args.data_dir)?;
    println!("found {}", source.describe());
    if let Some(pack) = &source.pack {
        for (split, [start, end]) in &pack.header.splits {
            println!("{split}: {} images", end - start);
        }
        println!("packed from {}", pack.header.packed_from);
        return Ok(());
    }
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

/// A real-world release: its classes, and per split the images, the labels per class and how
/// many labels are known right or wrong.
fn print_catalog(c: Catalog) {
    println!(
        "found {} at {} ({} classes: {}{})",
        c.name,
        c.root.display(),
        c.classes.len(),
        c.classes[..c.classes.len().min(5)].join(", "),
        if c.classes.len() > 5 { ", ..." } else { "" }
    );
    for (split, ids) in &c.splits {
        println!("{split}: {} images", ids.len());
        for (what, clean) in [("noisy", false), ("clean", true)] {
            let counts = c.class_counts(ids, clean);
            if counts.iter().any(|&n| n > 0) {
                println!("  {what} labels per class {counts:?}");
            }
        }
        let (known, right) = c.agreement(ids);
        if known > 0 {
            println!(
                "  noisy label known right for {right} of {known} ({:.2}%)",
                100.0 * right as f64 / known as f64
            );
        }
    }
    match crate::data::catalog::source(c) {
        Ok(source) => println!(
            "runs read it as {} (images decoded into memory; --image-size when sizes vary)",
            source.describe()
        ),
        Err(e) => println!("runs cannot train on it yet: {e}"),
    }
}
