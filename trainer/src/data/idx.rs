//! IDX files (MNIST, Fashion-MNIST), gzipped or not: big-endian magic 0x00000803 for images
//! (dims N, rows, cols) and 0x00000801 for labels (dim N), then the uint8 payload.

use super::{check_labels, DatasetName, Format, RawSplit, Source, Split};
use anyhow::{ensure, Context, Result};
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

const CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// What an IDX file holds: its magic number and number of dimensions.
#[derive(Clone, Copy)]
struct Kind {
    stem: &'static str,
    magic: u32,
    ndims: usize,
}

const IMAGES: Kind = Kind {
    stem: "images-idx3-ubyte",
    magic: 0x0000_0803,
    ndims: 3,
};
const LABELS: Kind = Kind {
    stem: "labels-idx1-ubyte",
    magic: 0x0000_0801,
    ndims: 1,
};

impl Kind {
    fn header_len(self) -> usize {
        4 + 4 * self.ndims
    }
}

fn file_name(split: Split, kind: Kind) -> String {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    format!("{prefix}-{}", kind.stem)
}

/// `name` or `name.gz`, whichever exists.
fn find(dir: &Path, split: Split, kind: Kind) -> Option<PathBuf> {
    let name = file_name(split, kind);
    [dir.join(&name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

fn path_of(dir: &Path, split: Split, kind: Kind) -> Result<PathBuf> {
    find(dir, split, kind).with_context(|| {
        format!(
            "{}: no {} file (with or without .gz)",
            dir.display(),
            file_name(split, kind)
        )
    })
}

pub fn detect(dir: &Path) -> Option<Source> {
    find(dir, Split::Train, IMAGES)?;
    Some(Source {
        name: DatasetName::FashionMnist,
        format: Format::Idx,
        root: dir.to_path_buf(),
        num_classes: CLASSES.len(),
        class_names: CLASSES.map(String::from).to_vec(),
        images: Default::default(),
        catalog: None,
        pack: None,
        shared_dir: None,
    })
}

/// Up to `limit` bytes of the file's contents, gunzipped when it starts with the gzip magic
/// (the official downloads are gzipped; many people unpack them).
fn read_contents(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let cannot = || format!("cannot read {}", path.display());
    let mut reader = BufReader::new(File::open(path).with_context(cannot)?);
    let gz = reader
        .fill_buf()
        .with_context(cannot)?
        .starts_with(&[0x1f, 0x8b]);
    let mut out = Vec::new();
    if gz {
        GzDecoder::new(reader)
            .take(limit)
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt gzip data", path.display()))?;
    } else {
        reader
            .take(limit)
            .read_to_end(&mut out)
            .with_context(cannot)?;
    }
    Ok(out)
}

/// The dimensions from the header, after checking the magic number.
fn dims(path: &Path, bytes: &[u8], kind: Kind) -> Result<Vec<usize>> {
    ensure!(
        bytes.len() >= kind.header_len(),
        "{}: {} bytes is shorter than the IDX header ({} bytes)",
        path.display(),
        bytes.len(),
        kind.header_len()
    );
    let word = |i: usize| u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
    ensure!(
        word(0) == kind.magic,
        "{}: IDX magic is 0x{:08x}, expected 0x{:08x} (uint8 data in {} dimension(s)); is this an IDX {} file?",
        path.display(),
        word(0),
        kind.magic,
        kind.ndims,
        kind.stem
    );
    Ok((1..=kind.ndims).map(|i| word(i) as usize).collect())
}

/// The whole file, checked against its header; returns the dimensions and the payload.
fn read_idx(path: &Path, kind: Kind) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut bytes = read_contents(path, u64::MAX)?;
    let dims = dims(path, &bytes, kind)?;
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|payload| payload.checked_add(kind.header_len()))
        .with_context(|| format!("{}: impossible dimensions {dims:?}", path.display()))?;
    ensure!(
        bytes.len() == expected,
        "{}: expected {expected} bytes for dimensions {dims:?}, found {} (truncated?)",
        path.display(),
        bytes.len()
    );
    bytes.drain(..kind.header_len());
    Ok((dims, bytes))
}

fn read_label_file(dir: &Path, split: Split) -> Result<(PathBuf, Vec<i64>)> {
    let path = path_of(dir, split, LABELS)?;
    let (_, labels) = read_idx(&path, LABELS)?;
    let labels: Vec<i64> = labels.into_iter().map(i64::from).collect();
    check_labels(&path, &labels, CLASSES.len())?;
    Ok((path, labels))
}

fn check_counts(images: &Path, n: usize, labels_path: &Path, labels: usize) -> Result<()> {
    ensure!(
        n == labels,
        "{}: {n} images, but {} has {labels} labels",
        images.display(),
        labels_path.display()
    );
    Ok(())
}

/// The labels, checked against the image count in the images file's header (only the header
/// is read, so this stays cheap).
pub(crate) fn read_labels(dir: &Path, split: Split) -> Result<Vec<i64>> {
    let (labels_path, labels) = read_label_file(dir, split)?;
    let images = path_of(dir, split, IMAGES)?;
    let header = read_contents(&images, IMAGES.header_len() as u64)?;
    let n = dims(&images, &header, IMAGES)?[0];
    check_counts(&images, n, &labels_path, labels.len())?;
    Ok(labels)
}

pub(crate) fn read_split(dir: &Path, split: Split) -> Result<RawSplit> {
    let images = path_of(dir, split, IMAGES)?;
    let (dims, pixels) = read_idx(&images, IMAGES)?;
    let (labels_path, labels) = read_label_file(dir, split)?;
    check_counts(&images, dims[0], &labels_path, labels.len())?;
    Ok(RawSplit {
        pixels,
        shape: [1, dims[1], dims[2]],
        labels,
        ..Default::default()
    })
}
