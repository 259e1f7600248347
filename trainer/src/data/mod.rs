//! Datasets as researchers have them on disk, held in memory as one uint8 N×C×H×W tensor plus
//! labels plus stable sample ids (the index in the official order), or, for image files with
//! `--stream`, read batch by batch ([`stream`]).
//!
//! Formats: CIFAR-10/100 binary and python pickle, Fashion-MNIST IDX (gzipped or not), the
//! ImageFolder layout `<root>/{train,test}/<class>/<image>` (JPEG, PNG, WebP), and the
//! real-world releases' own layouts ([`catalog`]). [`Source::detect`] finds which one a folder
//! holds; readers check headers and sizes and name the file in every error.

pub mod catalog;
pub mod cifar;
mod cores;
pub mod downsampled;
pub mod files;
pub mod idx;
pub mod image;
pub mod imagefolder;
pub mod normalization;
pub mod order;
pub mod pack;
pub mod pickle;
pub mod resident;
pub mod shared;
pub mod stream;

use anyhow::{bail, ensure, Context, Result};
use catalog::Catalog;
use resident::ImageOptions;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    Cifar10,
    Cifar100,
    FashionMnist,
    ImageFolder,
    #[serde(rename = "animal-10n")]
    Animal10n,
    Clothing1m,
    MiniWebvision,
    /// WebVision 1.0 whole: 1000 classes, Google and Flickr images (`--dataset webvision`).
    Webvision,
    #[serde(rename = "food-101n")]
    Food101n,
    Imagenet32,
    Imagenet64,
}

impl DatasetName {
    pub const ALL: [DatasetName; 11] = [
        Self::Cifar10,
        Self::Cifar100,
        Self::FashionMnist,
        Self::ImageFolder,
        Self::Animal10n,
        Self::Clothing1m,
        Self::MiniWebvision,
        Self::Webvision,
        Self::Food101n,
        Self::Imagenet32,
        Self::Imagenet64,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::FashionMnist => "fashion-mnist",
            Self::ImageFolder => "imagefolder",
            Self::Animal10n => "animal-10n",
            Self::Clothing1m => "clothing1m",
            Self::MiniWebvision => "mini-webvision",
            Self::Webvision => "webvision",
            Self::Food101n => "food-101n",
            Self::Imagenet32 => "imagenet32",
            Self::Imagenet64 => "imagenet64",
        }
    }

    /// Also accepts the spellings people type: `CIFAR-10`, `fmnist`, `fashion_mnist`, `image-folder`.
    pub fn parse(s: &str) -> Result<Self> {
        let norm = s.to_ascii_lowercase().replace(['_', '-'], "");
        Ok(match norm.as_str() {
            "cifar10" => Self::Cifar10,
            "cifar100" => Self::Cifar100,
            "fashionmnist" | "fmnist" => Self::FashionMnist,
            "imagefolder" => Self::ImageFolder,
            "animal10n" => Self::Animal10n,
            "clothing1m" => Self::Clothing1m,
            "miniwebvision" => Self::MiniWebvision,
            "webvision" => Self::Webvision,
            "food101n" => Self::Food101n,
            "imagenet32" => Self::Imagenet32,
            "imagenet64" => Self::Imagenet64,
            _ => bail!(
                "unknown dataset '{s}'; expected one of {}",
                Self::ALL.map(Self::as_str).join(", ")
            ),
        })
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    CifarBinary,
    CifarPython,
    Idx,
    ImageFolder,
    /// A real-world release read through its catalog ([`catalog`]).
    Catalog,
    /// ImageNet32/64's pickled batches ([`downsampled`]).
    DownsampledImagenet,
    /// Image files packed into one file ([`pack`]).
    Pack,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::CifarBinary => "CIFAR binary",
            Format::CifarPython => "CIFAR python pickle",
            Format::Idx => "IDX",
            Format::ImageFolder => "ImageFolder",
            Format::Catalog => "its official release",
            Format::DownsampledImagenet => "downsampled-ImageNet pickle",
            Format::Pack => "pack",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// "train" / "test", as the ImageFolder sub-folders are named.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
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
    /// How image files become the in-memory tensor (`--image-size`, `--bad-images`).
    pub images: ImageOptions,
    /// A real-world release's parsed label files, read once (`Format::Catalog` only).
    pub catalog: Option<Arc<Catalog>>,
    /// The open pack (`Format::Pack` only).
    pub pack: Option<Arc<pack::Pack>>,
    /// Where resident splits are written once and mapped by every process of the node
    /// (`--shared-dir`, [`shared`]); unset, each process loads its own copy.
    pub shared_dir: Option<PathBuf>,
}

/// One split in memory.
pub struct SplitData {
    /// Kind::Uint8, shape [N, C, H, W].
    pub images: Tensor,
    pub labels: Vec<i64>,
    /// Stable sample ids: the index in the official order.
    pub ids: Vec<u64>,
    /// Image files only: each image's path relative to the dataset root (`train/cat/0001.png`).
    pub paths: Option<Vec<String>>,
    /// Image files left out because they do not decode (`--bad-images skip`).
    pub skipped: usize,
    /// Read from its files batch by batch ([`Source::load_streamed`]): `images` holds no rows.
    pub streamed: bool,
}

impl SplitData {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All pixels as bytes, sample after sample (what instance noise projects).
    pub fn pixel_bytes(&self) -> Result<Vec<u8>> {
        Vec::<u8>::try_from(self.images.flatten(0, -1)).context("reading image bytes")
    }

    /// The images at `indices`.
    pub fn images_at(&self, indices: &[usize]) -> Result<Tensor> {
        let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        Ok(self.images.f_index_select(0, &Tensor::from_slice(&index))?)
    }

    /// Keeps only the samples at `indices`, in that order.
    pub fn keep(&mut self, indices: &[usize]) -> Result<()> {
        if !self.streamed {
            self.images = self.images_at(indices)?;
        }
        self.labels = indices.iter().map(|&i| self.labels[i]).collect();
        self.ids = indices.iter().map(|&i| self.ids[i]).collect();
        if let Some(paths) = &mut self.paths {
            *paths = indices.iter().map(|&i| paths[i].clone()).collect();
        }
        Ok(())
    }

    /// Keeps the first `n` samples (all when `n` is 0 or not smaller than the split).
    pub fn truncate(&mut self, n: usize) {
        if n == 0 || n >= self.len() {
            return;
        }
        if !self.streamed {
            self.images = self.images.narrow(0, 0, n as i64);
        }
        self.labels.truncate(n);
        self.ids.truncate(n);
        if let Some(paths) = &mut self.paths {
            paths.truncate(n);
        }
    }
}

/// What a reader produces: pixels already in N×C×H×W order, so one copy makes the tensor.
#[derive(Default)]
pub(crate) struct RawSplit {
    pub pixels: Vec<u8>,
    /// C, H, W.
    pub shape: [usize; 3],
    pub labels: Vec<i64>,
    /// Where samples were left out (bad image files), the ids of those kept; else 0..N.
    pub ids: Option<Vec<u64>>,
    pub paths: Option<Vec<String>>,
    /// Image files left out because they do not decode.
    pub skipped: usize,
}

impl RawSplit {
    fn into_split(self, root: &Path) -> Result<SplitData> {
        let n = self.labels.len();
        let [c, h, w] = self.shape;
        ensure!(
            self.pixels.len() == n * c * h * w,
            "{}: {n} labels but {} pixel bytes for images of {c}x{h}x{w}",
            root.display(),
            self.pixels.len()
        );
        let dims = [n, c, h, w].map(|d| d as i64);
        Ok(SplitData {
            images: Tensor::from_slice(&self.pixels).view(dims),
            ids: self.ids.unwrap_or_else(|| (0..n as u64).collect()),
            labels: self.labels,
            paths: self.paths,
            skipped: self.skipped,
            streamed: false,
        })
    }
}

impl Source {
    /// Find the dataset in `data_dir` itself or, failing that, in one of its sub-folders.
    pub fn detect(data_dir: &Path) -> Result<Source> {
        ensure!(
            data_dir.is_dir(),
            "--data-dir {} is not a folder",
            data_dir.display()
        );
        if let Some(path) = pack::find_in(data_dir)? {
            return pack::source(&path);
        }
        let mut found = detect_in(data_dir)?;
        if found.is_empty() {
            for dir in sub_folders(data_dir)? {
                found.extend(detect_in(&dir)?);
            }
        }
        if found.is_empty() {
            if let Some(c) = catalog::detect(data_dir)? {
                return catalog::source(c);
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => bail!(
                "no dataset found in {} or its sub-folders: looked for cifar-10-batches-bin/ \
                 (data_batch_1.bin …), cifar-10-batches-py/ (data_batch_1 …), cifar-100-binary/ \
                 (train.bin, test.bin), cifar-100-python/ (train, test), Fashion-MNIST IDX files \
                 (train-images-idx3-ubyte[.gz] …), ImageNet32/64 (train_data_batch_1 … and \
                 val_data, together or in Imagenet32_train/ and Imagenet32_val/), train/ + test/ \
                 folders of class folders of JPEG/PNG/WebP images, the real-world releases' \
                 label files, and a *.nlspack pack{}",
                data_dir.display(),
                archives_hint(data_dir)
            ),
            _ => bail!(
                "several datasets in {}: {}; point --data-dir at one of them",
                data_dir.display(),
                found
                    .iter()
                    .map(Source::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        }
    }

    /// With image files decoded and resized as `images` says.
    pub fn with_images(self, images: ImageOptions) -> Source {
        Source { images, ..self }
    }

    /// One line, e.g. "cifar10 in CIFAR binary format at /x/cifar-10-batches-bin (10 classes)".
    pub fn describe(&self) -> String {
        let at = match &self.pack {
            Some(pack) => pack.path.display(),
            None => self.root.display(),
        };
        format!(
            "{} in {} format at {at} ({} classes)",
            self.name.as_str(),
            self.format,
            self.num_classes
        )
    }

    /// Where the image files of an ImageFolder, release or pack are read from.
    pub fn files(&self) -> files::Files {
        match &self.pack {
            Some(pack) => files::Files::Pack(pack.clone()),
            None => files::Files::Folder(self.root.clone()),
        }
    }

    /// A split in memory: loaded by this process, or mapped from `--shared-dir`.
    pub fn load(&self, split: Split) -> Result<SplitData> {
        match &self.shared_dir {
            Some(dir) => shared::load(self, split, dir, || self.load_here(split)),
            None => self.load_here(split),
        }
    }

    /// The dataset `expected` (`--dataset`) of what `self` holds: itself when it is that one;
    /// WebVision 1.0 whole (`webvision`) where a WebVision release would train as
    /// mini-WebVision; otherwise an error naming both.
    pub fn as_dataset(self, expected: Option<&str>, data_dir: &Path) -> Result<Source> {
        let Some(expected) = expected else {
            return Ok(self);
        };
        let expected = DatasetName::parse(expected).context("--dataset")?;
        if expected == self.name {
            return Ok(self);
        }
        if expected == DatasetName::Webvision && self.catalog.is_some() {
            return catalog::whole_webvision(self);
        }
        bail!(
            "--dataset says {expected} but {} holds {}{}",
            data_dir.display(),
            self.describe(),
            if self.name == DatasetName::MiniWebvision {
                " (a pack holds the splits it was packed with: pack with --dataset webvision)"
            } else {
                ""
            }
        )
    }

    /// With resident splits shared through `dir` by the node's processes.
    pub fn with_shared_dir(self, dir: Option<PathBuf>) -> Source {
        Source {
            shared_dir: dir,
            ..self
        }
    }

    fn load_here(&self, split: Split) -> Result<SplitData> {
        let raw = match self.format {
            Format::CifarBinary | Format::CifarPython => cifar::read_split(self, split)?,
            Format::Idx => idx::read_split(&self.root, split)?,
            Format::DownsampledImagenet => downsampled::read_split(self, split)?,
            Format::ImageFolder | Format::Catalog | Format::Pack => {
                resident::load(&self.files(), &self.image_files(split)?, self.images, split)?
            }
        };
        raw.into_split(&self.root)
    }

    /// An image-file split's files, labels and ids, without decoding a pixel.
    pub(crate) fn image_files(&self, split: Split) -> Result<Vec<resident::Entry>> {
        match (&self.pack, self.format) {
            (Some(pack), _) => pack.entries(split.as_str()),
            (_, Format::ImageFolder) => imagefolder::entries(&self.root, split, &self.class_names),
            (_, Format::Catalog) => catalog::entries(self, split),
            _ => bail!(
                "{} is not made of image files: --stream reads ImageFolders and real-world \
                 releases (CIFAR and Fashion-MNIST load into memory as they are)",
                self.describe()
            ),
        }
    }

    /// A split to stream from its files ([`stream`]): its labels, ids and paths, and no pixels
    /// (`images` is an empty `[0, 3, size, size]` tensor, giving the shape batches will have).
    pub fn load_streamed(&self, split: Split, size: usize) -> Result<SplitData> {
        let entries = self.image_files(split)?;
        let side = size as i64;
        Ok(SplitData {
            images: Tensor::zeros([0, 3, side, side], (tch::Kind::Uint8, tch::Device::Cpu)),
            labels: entries.iter().map(|e| e.label).collect(),
            ids: entries.iter().map(|e| e.id).collect(),
            paths: Some(
                entries
                    .iter()
                    .map(|e| e.path.to_string_lossy().into_owned())
                    .collect(),
            ),
            skipped: 0,
            streamed: true,
        })
    }

    /// The second test set the references report, named, with its files, where the release or
    /// its pack has one (mini-WebVision's ImageNet val).
    pub(crate) fn also_test_files(&self) -> Result<Option<(String, Vec<resident::Entry>)>> {
        match &self.pack {
            Some(pack) => (pack.also_test())
                .map(|name| Ok((name.to_string(), pack.entries(name)?)))
                .transpose(),
            None => catalog::also_test_entries(self),
        }
    }

    /// The first `n` images of an image-file split, decoded into memory (what a streamed run
    /// keeps resident, as the kNN monitor's bank).
    pub fn load_first(&self, split: Split, n: usize) -> Result<SplitData> {
        let mut entries = self.image_files(split)?;
        entries.truncate(n);
        resident::load(&self.files(), &entries, self.images, split)?.into_split(&self.root)
    }

    /// The second test set the references report for this dataset, decoded as the test split
    /// is, with its name (mini-WebVision: `mini_imagenet_val`), where the release has it.
    pub fn load_also_test(&self) -> Result<Option<(String, SplitData)>> {
        let Some((name, entries)) = self.also_test_files()? else {
            return Ok(None);
        };
        let raw = resident::load(&self.files(), &entries, self.images, Split::Test)?;
        Ok(Some((name, raw.into_split(&self.root)?)))
    }

    /// Labels only; cheaper where labels can be read without the pixels (IDX, CIFAR binary).
    pub fn load_labels(&self, split: Split) -> Result<Vec<i64>> {
        match self.format {
            Format::Idx => idx::read_labels(&self.root, split),
            Format::CifarBinary => cifar::read_binary_labels(self, split),
            Format::ImageFolder | Format::Catalog | Format::Pack => {
                Ok(self.image_files(split)?.iter().map(|e| e.label).collect())
            }
            _ => Ok(self.load(split)?.labels),
        }
    }
}

/// Every dataset held directly in `dir` (more than one is an error for the caller to explain).
fn detect_in(dir: &Path) -> Result<Vec<Source>> {
    let mut found: Vec<Source> = cifar::detect(dir)?.into_iter().collect();
    found.extend(idx::detect(dir));
    found.extend(downsampled::detect(dir)?);
    found.extend(imagefolder::detect(dir)?);
    Ok(found)
}

/// Sorted, so that messages listing several datasets are stable.
pub(crate) fn sub_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    sorted_entries(dir, Path::is_dir)
}

/// The entries of `dir` that `keep` accepts, sorted.
pub(crate) fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if keep(&path) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The downloads are archives; say so when someone points at an unextracted one.
fn archives_hint(dir: &Path) -> String {
    let archives: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            [".tar.gz", ".tgz", ".tar", ".zip"]
                .iter()
                .any(|x| n.ends_with(x))
        })
        .collect();
    if archives.is_empty() {
        String::new()
    } else {
        format!(
            " (found archive(s) {}: extract them first)",
            archives.join(", ")
        )
    }
}

/// Read a whole file, naming it in the error.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Every label of `path` must be a class index below `num_classes`.
pub(crate) fn check_labels(path: &Path, labels: &[i64], num_classes: usize) -> Result<()> {
    if let Some(i) = labels
        .iter()
        .position(|&l| usize::try_from(l).map_or(true, |l| l >= num_classes))
    {
        bail!(
            "{}: label {} of record {i} is outside 0..{num_classes} (the class count)",
            path.display(),
            labels[i]
        );
    }
    Ok(())
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
