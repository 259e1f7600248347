//! The noisy training labels of an evaluation: read from a `trainer noise` file (checked
//! against the dataset) or generated on the fly from the same specification, so every rank
//! derives identical labels from the seed without any communication.

use super::config::EvalConfig;
use super::holdout::HeldOut;
use crate::data::{to_classes, Source, SplitData};
use crate::noise::decimal::Decimal;
use crate::noise::file::NoiseFile;
use crate::noise::{self, CleanSet, Kind, Spec};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};

pub struct NoisyLabels {
    pub clean: Vec<usize>,
    pub noisy: Vec<usize>,
    /// What the labels are, for results.json.
    pub description: Value,
    /// The trusted images held out of training (`--holdout-trusted`), with their true labels.
    pub held_out: Option<HeldOut>,
}

impl NoisyLabels {
    /// Keeps only the samples at `indices`, in that order.
    pub fn keep(&mut self, indices: &[usize]) {
        self.clean = indices.iter().map(|&i| self.clean[i]).collect();
        self.noisy = indices.iter().map(|&i| self.noisy[i]).collect();
    }

    /// Fraction of training samples whose label was flipped.
    pub fn flip_rate(&self) -> f64 {
        let flipped = self
            .clean
            .iter()
            .zip(&self.noisy)
            .filter(|(c, n)| c != n)
            .count();
        flipped as f64 / self.clean.len().max(1) as f64
    }
}

/// The labels of the first `cfg.train_samples` training samples (all when 0). `train` is the
/// whole training split: a `--labels` file covers all of it and is checked against all of it,
/// then cut like the images; generated noise is drawn over the kept samples only.
pub fn noisy_labels(cfg: &EvalConfig, source: &Source, train: &SplitData) -> Result<NoisyLabels> {
    let clean = to_classes(&train.labels, source.num_classes)
        .with_context(|| format!("labels of {}", source.root.display()))?;
    let kept = match cfg.train_samples {
        0 => clean.len(),
        n => n.min(clean.len()),
    };
    let file = match &cfg.labels {
        Some(path) => {
            let file = NoiseFile::read(path)?;
            file.check_matches(source.name, source.num_classes, &clean)
                .with_context(|| format!("--labels {} does not fit --data-dir", path.display()))?;
            file
        }
        None => generate(cfg, source, train, &clean[..kept])?,
    };
    let description = json!({
        "file": cfg.labels,
        "kind": file.kind,
        "noise": file.noise,
        "sparsity": file.sparsity,
        "seed": file.seed,
        "convention": file.convention,
        "flips": file.flips,
        "asym_classes": file.asym_classes,
        "instance_model": file.instance_model,
        "realized_flip_rate": file.realized_flip_rate,
    });
    let mut noisy = file.labels;
    noisy.truncate(kept);
    Ok(NoisyLabels {
        clean: clean[..kept].to_vec(),
        noisy,
        description,
        held_out: None,
    })
}

fn generate(
    cfg: &EvalConfig,
    source: &Source,
    train: &SplitData,
    clean: &[usize],
) -> Result<NoiseFile> {
    ensure!(
        cfg.kind != Kind::Imported,
        "--kind imported needs --labels <file>"
    );
    let spec = Spec {
        kind: cfg.kind,
        noise: Decimal::parse(&cfg.noise).context("--noise")?,
        sparsity: Decimal::parse(&cfg.sparsity).context("--sparsity")?,
        seed: cfg.noise_seed(),
        convention: cfg.convention,
        valid_check: false,
        variants: cfg.variants(),
    };
    let pixels = (cfg.kind == Kind::Instance)
        .then(|| first_pixels(train, clean.len()))
        .transpose()?;
    let set = CleanSet {
        dataset: source.name,
        num_classes: source.num_classes,
        labels: clean,
        pixels: pixels.as_deref(),
    };
    let generated = noise::generate(&spec, &set)?;
    Ok(NoiseFile::new(
        source.name,
        source.num_classes,
        clean,
        generated.labels,
        generated.requested_matrix,
        noise::file::Origin {
            spec: Some(&spec),
            source: None,
        },
    ))
}

/// The bytes of the first `n` training images (instance noise reads the kept images only).
fn first_pixels(train: &SplitData, n: usize) -> Result<Vec<u8>> {
    let images = train.images.narrow(0, 0, n as i64).flatten(0, -1);
    Vec::<u8>::try_from(images).context("reading image bytes")
}
