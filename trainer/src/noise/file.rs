//! The noisy-label file, version 1 (one JSON object per configuration, written atomically):
//!
//! | field | meaning |
//! |---|---|
//! | `format`, `version` | `"nls-noisy-labels"`, `1` |
//! | `dataset`, `num_classes`, `num_samples`, `class_counts` | the clean training split |
//! | `kind`, `noise`, `sparsity`, `seed`, `convention`, `valid_check` | the request (`null` where not applicable) |
//! | `flips`, `asym_classes`, `instance_model` | the seed papers' variants; present only when not the default (`exact`, `superclasses`, `xia`) |
//! | `source` | for imported labels: the file (and label set) they came from |
//! | `requested_matrix` | `nm[s][y] = P(noisy = s | true = y)` asked for; `null` for instance noise and imports |
//! | `realized_matrix`, `realized_flip_rate` | what the labels actually realize, same convention |
//! | `clean_labels`, `labels` | clean and noisy label of each sample, indexed by sample id |
//!
//! The original tools' form, `noisy_labels_{seed}/noisylabels_noise{n}_sparsity{s}.json`, maps each
//! training image path to its label; it is written beside ours on request and read back by path.

use super::matrix::Matrix;
use super::symmetric::Convention;
use super::variants::{unless_default, AsymClasses, Flips, InstanceModel};
use super::{stats, Kind, Spec};
use crate::atomic::write_atomic;
use crate::data::DatasetName;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "nls-noisy-labels";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoiseFile {
    pub format: String,
    pub version: u32,
    pub dataset: DatasetName,
    pub num_classes: usize,
    pub num_samples: usize,
    pub class_counts: Vec<usize>,
    pub kind: Kind,
    pub noise: Option<f64>,
    pub sparsity: Option<f64>,
    pub seed: Option<u64>,
    pub convention: Option<Convention>,
    /// Absent (the default, `exact`) in files written before the variants existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flips: Option<Flips>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asym_classes: Option<AsymClasses>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_model: Option<InstanceModel>,
    pub valid_check: bool,
    pub source: Option<String>,
    pub requested_matrix: Option<Matrix>,
    pub realized_matrix: Matrix,
    pub realized_flip_rate: f64,
    pub created_by: String,
    pub clean_labels: Vec<usize>,
    pub labels: Vec<usize>,
}

/// The request part of a file; `None` for imported labels.
pub struct Origin<'a> {
    pub spec: Option<&'a Spec>,
    pub source: Option<String>,
}

impl NoiseFile {
    pub fn new(
        dataset: DatasetName,
        num_classes: usize,
        clean: &[usize],
        noisy: Vec<usize>,
        requested_matrix: Option<Matrix>,
        origin: Origin,
    ) -> NoiseFile {
        let spec = origin.spec;
        NoiseFile {
            format: FORMAT.into(),
            version: VERSION,
            dataset,
            num_classes,
            num_samples: clean.len(),
            class_counts: super::class_counts(clean, num_classes),
            kind: spec.map_or(Kind::Imported, |s| s.kind),
            noise: spec.map(|s| s.noise.to_f64()),
            sparsity: spec
                .filter(|s| s.kind == Kind::Matrix)
                .map(|s| s.sparsity.to_f64()),
            seed: spec.map(|s| s.seed),
            convention: spec
                .filter(|s| s.kind == Kind::Symmetric)
                .map(|s| s.convention),
            flips: spec.and_then(|s| unless_default(s.variants.flips)),
            asym_classes: spec.and_then(|s| unless_default(s.variants.asym_classes)),
            instance_model: spec.and_then(|s| unless_default(s.variants.instance_model)),
            valid_check: spec.is_some_and(|s| s.kind == Kind::Matrix && s.valid_check),
            source: origin.source,
            requested_matrix,
            realized_matrix: stats::realized_matrix(clean, &noisy, num_classes),
            realized_flip_rate: stats::flip_rate(clean, &noisy),
            created_by: format!("nls trainer {}", env!("CARGO_PKG_VERSION")),
            clean_labels: clean.to_vec(),
            labels: noisy,
        }
    }

    /// The file's bytes as [`write`](Self::write) writes them.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec(self)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
            .with_context(|| format!("writing noisy labels to {}", path.display()))
    }

    /// Read and check a file of ours.
    pub fn read(path: &Path) -> Result<NoiseFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading noisy labels {}", path.display()))?;
        let file: NoiseFile = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid {FORMAT} file", path.display()))?;
        file.check()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(file)
    }

    fn check(&self) -> Result<()> {
        ensure!(
            self.format == FORMAT,
            "format is '{}', expected '{FORMAT}'",
            self.format
        );
        ensure!(
            self.version == VERSION,
            "version {} is not supported (this trainer reads {VERSION})",
            self.version
        );
        ensure!(
            self.labels.len() == self.num_samples && self.clean_labels.len() == self.num_samples,
            "num_samples is {} but there are {} labels and {} clean labels",
            self.num_samples,
            self.labels.len(),
            self.clean_labels.len()
        );
        check_label_range(&self.labels, self.num_classes)
    }

    /// Check that these labels belong to the given clean training split.
    pub fn check_matches(
        &self,
        dataset: DatasetName,
        num_classes: usize,
        clean: &[usize],
    ) -> Result<()> {
        ensure!(
            self.dataset == dataset,
            "the labels were made for {}, but the data is {}",
            self.dataset.as_str(),
            dataset.as_str()
        );
        ensure!(
            self.num_classes == num_classes,
            "the labels have {} classes, but the data has {num_classes}",
            self.num_classes
        );
        ensure!(
            self.num_samples == clean.len(),
            "the labels cover {} samples, but the training split has {}",
            self.num_samples,
            clean.len()
        );
        ensure!(
            self.clean_labels == clean,
            "the clean labels in the file differ from the dataset's"
        );
        Ok(())
    }
}

pub fn check_label_range(labels: &[usize], k: usize) -> Result<()> {
    match labels.iter().position(|&l| l >= k) {
        Some(i) => bail!(
            "label {} of sample {i} is not below the class count {k}",
            labels[i]
        ),
        None => Ok(()),
    }
}

/// `{dataset}-{kind}[-{convention}][-{variants}]-noise{n}[-sparsity{s}]-seed{seed}.json`.
pub fn file_name(dataset: DatasetName, spec: &Spec) -> String {
    let kind = kind_name(spec);
    let sparsity = if spec.kind == Kind::Matrix {
        format!("-sparsity{}", spec.sparsity)
    } else {
        String::new()
    };
    format!(
        "{}-{kind}-noise{}{sparsity}-seed{}.json",
        dataset.as_str(),
        spec.noise,
        spec.seed
    )
}

/// The kind as file names spell it: `symmetric-any`, `symmetric-other`, `matrix`, with the
/// non-default variants after it (`asymmetric-blocks-bernoulli`, `instance-cheng`, ...).
fn kind_name(spec: &Spec) -> String {
    let kind = match spec.kind {
        Kind::Symmetric => format!("symmetric-{}", convention_name(spec.convention)),
        other => other.as_str().to_string(),
    };
    kind + &spec.variants.name_suffix()
}

fn convention_name(c: Convention) -> &'static str {
    match c {
        Convention::Any => "any",
        Convention::Other => "other",
    }
}

/// Where the original tools keep a configuration: `noisy_labels_{seed}/noisylabels_noise{n}_sparsity{s}.json`.
/// That grid only had matrix noise; other kinds get their kind in the name
/// (`noisylabels_symmetric-any_noise{n}.json`), so that a symmetric file and a matrix file of
/// the same rate never share a name.
pub fn legacy_path(dir: &Path, spec: &Spec) -> PathBuf {
    let (noise, seed) = (spec.noise, spec.seed);
    let name = match spec.kind {
        Kind::Matrix => format!("noisylabels_noise{noise}_sparsity{}.json", spec.sparsity),
        _ => format!("noisylabels_{}_noise{noise}.json", kind_name(spec)),
    };
    dir.join(format!("noisy_labels_{seed}")).join(name)
}

/// The original form: image path → label. `keys[i]` names sample id i.
pub fn legacy_bytes(keys: &[String], labels: &[usize]) -> Result<Vec<u8>> {
    let map: BTreeMap<&str, usize> = keys
        .iter()
        .map(String::as_str)
        .zip(labels.iter().copied())
        .collect();
    Ok(serde_json::to_vec(&map)?)
}

pub fn write_legacy(path: &Path, keys: &[String], labels: &[usize]) -> Result<()> {
    write_atomic(path, &legacy_bytes(keys, labels)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Read the original form back: every sample must appear exactly once. Keys are matched to
/// `keys` exactly or by their trailing `split/class/file` part, since the original tools store
/// paths relative to wherever their script ran.
pub fn read_legacy(path: &Path, keys: &[String], k: usize) -> Result<Vec<usize>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let map: HashMap<String, usize> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON object of image path → label",
            path.display()
        )
    })?;
    let by_tail: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (tail(key), i))
        .collect();
    let mut labels = vec![usize::MAX; keys.len()];
    for (key, &label) in &map {
        let id = by_tail.get(tail(key)).with_context(|| {
            format!(
                "{}: '{key}' is not an image of this training split",
                path.display()
            )
        })?;
        labels[*id] = label;
    }
    if let Some(missing) = labels.iter().position(|&l| l == usize::MAX) {
        bail!(
            "{}: has no label for '{}' ({} of {} samples labelled)",
            path.display(),
            keys[missing],
            map.len(),
            keys.len()
        );
    }
    check_label_range(&labels, k).with_context(|| format!("in {}", path.display()))?;
    Ok(labels)
}

/// The last three path components (`train/cat/0001.png`), or the whole key when shorter.
fn tail(key: &str) -> &str {
    let mut cut = key.len();
    for _ in 0..3 {
        match key[..cut].rfind('/') {
            Some(i) => cut = i,
            None => return key,
        }
    }
    &key[cut + 1..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_split_class_file() {
        assert_eq!(
            tail("cifar10_dataset/base_dataset/train/cat/1.png"),
            "train/cat/1.png"
        );
        assert_eq!(tail("/abs/train/cat/1.png"), "train/cat/1.png");
        assert_eq!(tail("train/cat/1.png"), "train/cat/1.png");
        assert_eq!(tail("17"), "17");
    }
}
