//! The realized noise matrix of a labels file as a PNG heatmap (`trainer noise --plot`).

use super::file::NoiseFile;
use super::symmetric::Convention;
use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};

/// Classes are named on the axes up to this many; beyond, they are numbered.
const NAMED_CLASSES: usize = 20;

/// The plot's path: the labels file's, with `.png` for `.json`.
pub fn plot_path(labels_path: &Path) -> PathBuf {
    labels_path.with_extension("png")
}

/// Title: what was asked for and what the labels realize.
pub fn title(file: &NoiseFile) -> String {
    let mut parts = vec![
        file.dataset.as_str().to_string(),
        file.kind.as_str().to_string(),
    ];
    if let Some(c) = file.convention {
        let c = match c {
            Convention::Any => "any",
            Convention::Other => "other",
        };
        parts.push(format!("({c})"));
    }
    if let Some(n) = file.noise {
        parts.push(format!("noise {n}"));
    }
    if let Some(s) = file.sparsity {
        parts.push(format!("sparsity {s}"));
    }
    if let Some(seed) = file.seed {
        parts.push(format!("seed {seed}"));
    }
    if let Some(source) = &file.source {
        parts.push(format!("from {source}"));
    }
    format!(
        "{}, realized flip rate {:.4}",
        parts.join(" "),
        file.realized_flip_rate
    )
}

/// Write the realized matrix P(noisy = s | true = y) of `file` as a heatmap: rows are the noisy
/// label s, columns the true label y, so each column sums to 1.
pub fn write_plot(file: &NoiseFile, class_names: &[String], path: &Path) -> Result<()> {
    let k = file.num_classes;
    ensure!(
        file.realized_matrix.len() == k,
        "the realized matrix has {} rows for {k} classes",
        file.realized_matrix.len()
    );
    let labels: Vec<String> = if class_names.len() == k && k <= NAMED_CLASSES {
        class_names.to_vec()
    } else {
        (0..k).map(|i| i.to_string()).collect()
    };
    ::plot::heatmap(
        path,
        &title(file),
        &file.realized_matrix,
        &labels,
        &labels,
        "true label y    (cell: P(noisy = s | true = y); columns sum to 1)",
        "noisy label s",
    )
    .with_context(|| format!("plotting the noise matrix to {}", path.display()))
}
