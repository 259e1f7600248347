//! Datasets as researchers have them on disk, held in memory as one uint8 N×C×H×W tensor plus
//! labels plus stable sample ids (the index in the official order).
//!
//! Formats: CIFAR-10/100 binary and python pickle, Fashion-MNIST IDX (gzipped or not), and the
//! ImageFolder layout `<root>/{train,test}/<class>/<image>.png`. [`Source::detect`] finds which
//! one a folder holds; readers check headers and sizes and name the file in every error.

pub mod cifar;
pub mod idx;
pub mod imagefolder;
pub mod pickle;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use tch::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    Cifar10,
    Cifar100,
    FashionMnist,
    ImageFolder,
}

impl DatasetName {
    pub const ALL: [DatasetName; 4] = [
        Self::Cifar10,
        Self::Cifar100,
        Self::FashionMnist,
        Self::ImageFolder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::FashionMnist => "fashion-mnist",
            Self::ImageFolder => "imagefolder",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let norm = s.to_ascii_lowercase().replace(['_', '-'], "");
        Ok(match norm.as_str() {
            "cifar10" => Self::Cifar10,
            "cifar100" => Self::Cifar100,
            "fashionmnist" | "fmnist" => Self::FashionMnist,
            "imagefolder" => Self::ImageFolder,
            _ => bail!(
                "unknown dataset '{s}'; expected one of {}",
                Self::ALL.map(Self::as_str).join(", ")
            ),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    CifarBinary,
    CifarPython,
    Idx,
    ImageFolder,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::CifarBinary => "CIFAR binary",
            Format::CifarPython => "CIFAR python pickle",
            Format::Idx => "IDX",
            Format::ImageFolder => "ImageFolder (PNG)",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// A dataset found on disk.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: DatasetName,
    pub format: Format,
    /// The folder that holds the files.
    pub root: PathBuf,
    pub num_classes: usize,
    pub class_names: Vec<String>,
}

/// One split in memory.
pub struct SplitData {
    /// Kind::Uint8, shape [N, C, H, W].
    pub images: Tensor,
    pub labels: Vec<i64>,
    /// Stable sample ids: the index in the official order.
    pub ids: Vec<u64>,
    /// ImageFolder only: each image's path relative to the dataset root (`train/cat/0001.png`).
    pub paths: Option<Vec<String>>,
}

/// What a reader produces before it becomes a tensor.
pub struct RawSplit {
    pub pixels: Vec<u8>,
    pub shape: [usize; 3],
    pub labels: Vec<i64>,
    pub paths: Option<Vec<String>>,
}

impl RawSplit {
    fn into_split(self, num_classes: usize, what: &Path) -> Result<SplitData> {
        let n = self.labels.len();
        let [c, h, w] = self.shape;
        anyhow::ensure!(
            self.pixels.len() == n * c * h * w,
            "{}: {n} labels but {} pixel bytes",
            what.display(),
            self.pixels.len()
        );
        if let Some(i) = self
            .labels
            .iter()
            .position(|&l| l < 0 || l as usize >= num_classes)
        {
            bail!(
                "{}: label {} of sample {i} is outside 0..{num_classes}",
                what.display(),
                self.labels[i]
            );
        }
        let dims = [n as i64, c as i64, h as i64, w as i64];
        Ok(SplitData {
            images: Tensor::from_slice(&self.pixels).view(dims),
            ids: (0..n as u64).collect(),
            labels: self.labels,
            paths: self.paths,
        })
    }
}

impl Source {
    /// Find the dataset in `data_dir` or in one of its sub-folders.
    pub fn detect(data_dir: &Path) -> Result<Source> {
        anyhow::ensure!(
            data_dir.is_dir(),
            "--data-dir {} is not a folder",
            data_dir.display()
        );
        let mut found: Vec<Source> = detect_in(data_dir)?.into_iter().collect();
        if found.is_empty() {
            for entry in std::fs::read_dir(data_dir)
                .with_context(|| format!("listing {}", data_dir.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    found.extend(detect_in(&path)?);
                }
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => bail!(
                "no dataset found in {}: looked for cifar-10-batches-bin, cifar-10-batches-py, cifar-100-binary, \
                 cifar-100-python, Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz]), and train/ + test/ \
                 class folders of PNG images",
                data_dir.display()
            ),
            _ => bail!(
                "several datasets in {}: {}; point --data-dir at one of them",
                data_dir.display(),
                found.iter().map(|s| s.root.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} in {} format at {} ({} classes)",
            self.name.as_str(),
            self.format,
            self.root.display(),
            self.num_classes
        )
    }

    pub fn load(&self, split: Split) -> Result<SplitData> {
        let raw = match self.format {
            Format::CifarBinary => cifar::read_binary(self, split)?,
            Format::CifarPython => cifar::read_python(self, split)?,
            Format::Idx => idx::read_split(&self.root, split)?,
            Format::ImageFolder => imagefolder::read_split(&self.root, split, &self.class_names)?,
        };
        raw.into_split(self.num_classes, &self.root)
    }

    /// Labels only; cheaper where the format keeps them apart (IDX).
    pub fn load_labels(&self, split: Split) -> Result<Vec<i64>> {
        match self.format {
            Format::Idx => idx::read_labels(&self.root, split),
            _ => Ok(self.load(split)?.labels),
        }
    }
}

/// The dataset held directly in `dir`, if any.
fn detect_in(dir: &Path) -> Result<Option<Source>> {
    if let Some(s) = cifar::detect(dir)? {
        return Ok(Some(s));
    }
    if idx::detect(dir) {
        return Ok(Some(idx::source(dir)));
    }
    imagefolder::detect(dir)
}

/// Read a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Dataset labels as class indices, checked against the class count.
pub fn to_classes(labels: &[i64], k: usize) -> Result<Vec<usize>> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| match usize::try_from(l) {
            Ok(c) if c < k => Ok(c),
            _ => bail!("label {l} of sample {i} is not below the class count {k}"),
        })
        .collect()
}
