//! Reading label files made elsewhere, so existing noisy labels can be evaluated:
//! our own files, the original tools' JSON form (image path → label), and the CIFAR-10N/100N
//! human label sets (`CIFAR-10_human.pt` / `.npy`).

use super::file::{self, NoiseFile};
use crate::data::to_classes;
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

/// The clean training split that imported labels must fit.
pub struct Target<'a> {
    /// Sample names as the original JSON form keys them (see `cmd::noise::train_keys`).
    pub keys: &'a [String],
    pub clean: &'a [usize],
    pub num_classes: usize,
}

/// Noisy labels by sample id from any supported file.
pub fn read_labels(path: &Path, label_set: Option<&str>, target: &Target) -> Result<Vec<usize>> {
    let (keys, k) = (target.keys, target.num_classes);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "json" => {
            ensure!(label_set.is_none(), "--label-set applies to CIFAR-N files, not to {}", path.display());
            read_json(path, keys, k)
        }
        "pt" | "npy" => {
            let labels = super::cifarn::read(path, label_set, target.clean)?;
            to_classes(&labels, k).with_context(|| format!("in {}", path.display()))
        }
        _ => bail!(
            "{}: unknown label file type '.{ext}'; expected .json (nls or original form) or .pt/.npy (CIFAR-N)",
            path.display()
        ),
    }
}

fn read_json(path: &Path, keys: &[String], k: usize) -> Result<Vec<usize>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    if value.get("format").is_none() {
        return file::read_legacy(path, keys, k);
    }
    let f = NoiseFile::read(path)?;
    ensure!(
        f.num_classes == k,
        "{} has {} classes, but the data has {k}",
        path.display(),
        f.num_classes
    );
    Ok(f.labels)
}
