//! IDX files (MNIST, Fashion-MNIST), gzipped or not: big-endian magic 0x00000803 for images
//! (dims N, rows, cols) and 0x00000801 for labels (dim N).

use super::{read_file, DatasetName, Format, RawSplit, Source, Split};
use anyhow::{ensure, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
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

fn prefix(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Test => "t10k",
    }
}

/// `name` or `name.gz`, whichever exists.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

fn images_path(dir: &Path, split: Split) -> Option<PathBuf> {
    find(dir, &format!("{}-images-idx3-ubyte", prefix(split)))
}

fn labels_path(dir: &Path, split: Split) -> Option<PathBuf> {
    find(dir, &format!("{}-labels-idx1-ubyte", prefix(split)))
}

pub fn detect(dir: &Path) -> bool {
    images_path(dir, Split::Train).is_some()
}

pub fn source(dir: &Path) -> Source {
    Source {
        name: DatasetName::FashionMnist,
        format: Format::Idx,
        root: dir.to_path_buf(),
        num_classes: CLASSES.len(),
        class_names: CLASSES.map(String::from).to_vec(),
    }
}

/// File contents, decompressed when they start with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_file(path)?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    GzDecoder::new(bytes.as_slice())
        .read_to_end(&mut out)
        .with_context(|| format!("{}: corrupt gzip data", path.display()))?;
    Ok(out)
}

/// Check the magic and sizes; returns the dimensions and the payload.
fn parse(path: &Path, bytes: &[u8], magic: u32, ndims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let header = 4 + 4 * ndims;
    ensure!(
        bytes.len() >= header,
        "{}: {} bytes is shorter than the IDX header ({header})",
        path.display(),
        bytes.len()
    );
    let word = |i: usize| u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
    ensure!(
        word(0) == magic,
        "{}: IDX magic is 0x{:08x}, expected 0x{magic:08x} ({})",
        path.display(),
        word(0),
        if ndims == 3 {
            "uint8 images"
        } else {
            "uint8 labels"
        }
    );
    let dims: Vec<usize> = (1..=ndims).map(|i| word(i) as usize).collect();
    let expected = header + dims.iter().product::<usize>();
    ensure!(
        bytes.len() == expected,
        "{}: expected {expected} bytes for dimensions {dims:?}, found {} (truncated?)",
        path.display(),
        bytes.len()
    );
    Ok((dims, bytes[header..].to_vec()))
}

fn missing(dir: &Path, what: &str) -> String {
    format!("{}: no {what} file (with or without .gz)", dir.display())
}

pub fn read_labels(dir: &Path, split: Split) -> Result<Vec<i64>> {
    let path = labels_path(dir, split)
        .with_context(|| missing(dir, &format!("{}-labels-idx1-ubyte", prefix(split))))?;
    let (_, labels) = parse(&path, &read_maybe_gz(&path)?, 0x0000_0801, 1)?;
    Ok(labels.into_iter().map(i64::from).collect())
}

pub fn read_split(dir: &Path, split: Split) -> Result<RawSplit> {
    let path = images_path(dir, split)
        .with_context(|| missing(dir, &format!("{}-images-idx3-ubyte", prefix(split))))?;
    let (dims, pixels) = parse(&path, &read_maybe_gz(&path)?, 0x0000_0803, 3)?;
    let labels = read_labels(dir, split)?;
    ensure!(
        labels.len() == dims[0],
        "{}: {} images but the label file has {} labels",
        path.display(),
        dims[0],
        labels.len()
    );
    Ok(RawSplit {
        pixels,
        shape: [1, dims[1], dims[2]],
        labels,
        paths: None,
    })
}
