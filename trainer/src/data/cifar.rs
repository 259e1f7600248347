//! CIFAR-10 and CIFAR-100 in both official formats.
//! - binary: records of [label byte(s), 1024 R, 1024 G, 1024 B]; CIFAR-100 has coarse then fine.
//! - python: pickled dicts with b'data' (uint8 N×3072 numpy array, rows already in R, G, B plane
//!   order) and b'labels' (CIFAR-10) or b'fine_labels' (CIFAR-100).
//!
//! Both store each image as three 32×32 planes, i.e. already C×H×W: rows are copied as they are.

use super::pickle::{self, ArrayData, Value};
use super::{check_labels, read_file, DatasetName, Format, RawSplit, Source, Split};
use anyhow::{bail, ensure, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

const PIXELS: usize = 3 * 32 * 32;
const SHAPE: [usize; 3] = [3, 32, 32];

const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// The CIFAR dataset held directly in `dir`, if any.
pub fn detect(dir: &Path) -> Result<Option<Source>> {
    let has = |name: &str| dir.join(name).is_file();
    let (name, format) = if has("data_batch_1.bin") {
        (DatasetName::Cifar10, Format::CifarBinary)
    } else if has("train.bin") && has("test.bin") {
        (DatasetName::Cifar100, Format::CifarBinary)
    } else if has("data_batch_1") {
        (DatasetName::Cifar10, Format::CifarPython)
    } else if is_pickle(&dir.join("train")) && is_pickle(&dir.join("test")) {
        // Files named just `train` and `test` are common; the pickle header makes them CIFAR-100's.
        (DatasetName::Cifar100, Format::CifarPython)
    } else {
        return Ok(None);
    };
    let class_names = class_names(dir, name, format)?;
    Ok(Some(Source {
        name,
        format,
        root: dir.to_path_buf(),
        num_classes: class_names.len(),
        class_names,
        images: Default::default(),
        catalog: None,
        pack: None,
        shared_dir: None,
    }))
}

fn is_pickle(path: &Path) -> bool {
    let mut head = [0u8; 1];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
        && head[0] == 0x80
}

fn num_classes(name: DatasetName) -> usize {
    if name == DatasetName::Cifar10 {
        10
    } else {
        100
    }
}

/// From the meta file when present (it is in the official archives), else the standard names.
fn class_names(dir: &Path, name: DatasetName, format: Format) -> Result<Vec<String>> {
    let k = num_classes(name);
    let (file, key) = match (name, format) {
        (DatasetName::Cifar10, Format::CifarBinary) => ("batches.meta.txt", None),
        (DatasetName::Cifar10, _) => ("batches.meta", Some("label_names")),
        (_, Format::CifarBinary) => ("fine_label_names.txt", None),
        _ => ("meta", Some("fine_label_names")),
    };
    let path = dir.join(file);
    if !path.is_file() {
        return Ok(if k == 10 {
            CIFAR10_CLASSES.map(String::from).to_vec()
        } else {
            (0..k).map(|i| i.to_string()).collect()
        });
    }
    let names = match key {
        None => names_from_text(&path)?,
        Some(key) => names_from_pickle(&path, key)?,
    };
    ensure!(
        names.len() == k,
        "{}: expected {k} class names, found {}",
        path.display(),
        names.len()
    );
    Ok(names)
}

/// One name a line; the official files end with blank lines.
fn names_from_text(path: &Path) -> Result<Vec<String>> {
    let text = String::from_utf8_lossy(&read_file(path)?).into_owned();
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

fn names_from_pickle(path: &Path, key: &str) -> Result<Vec<String>> {
    let what = path.display().to_string();
    let meta = pickle::parse(&read_file(path)?, &what)?;
    let Some(Value::List(items)) = meta.get(key) else {
        bail!(
            "{what}: no list b'{key}' in the pickle (it has {})",
            meta.keys().join(", ")
        );
    };
    items
        .iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s.clone()),
            Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => bail!("{what}: a class name is {}", other.kind()),
        })
        .collect()
}

/// The files of a split in the official order, which defines the sample ids.
fn split_files(source: &Source, split: Split) -> Vec<PathBuf> {
    let ext = if source.format == Format::CifarBinary {
        ".bin"
    } else {
        ""
    };
    let stems: Vec<String> = match (source.name, split) {
        (DatasetName::Cifar10, Split::Train) => {
            (1..=5).map(|i| format!("data_batch_{i}")).collect()
        }
        (DatasetName::Cifar10, Split::Test) => vec!["test_batch".into()],
        (_, split) => vec![split.as_str().into()],
    };
    stems
        .into_iter()
        .map(|s| source.root.join(s + ext))
        .collect()
}

pub(crate) fn read_split(source: &Source, split: Split) -> Result<RawSplit> {
    read_files(source, split, true)
}

/// Labels without copying the pixels.
pub(crate) fn read_binary_labels(source: &Source, split: Split) -> Result<Vec<i64>> {
    Ok(read_files(source, split, false)?.labels)
}

fn read_files(source: &Source, split: Split, with_pixels: bool) -> Result<RawSplit> {
    let files = split_files(source, split);
    let mut raw = RawSplit {
        pixels: Vec::new(),
        shape: SHAPE,
        labels: Vec::new(),
        ..Default::default()
    };
    let mut counts = Vec::new();
    for path in &files {
        let before = raw.labels.len();
        match source.format {
            Format::CifarBinary => read_binary_file(path, source.name, with_pixels, &mut raw)?,
            _ => read_python_file(path, source.name, &mut raw)?,
        }
        check_labels(path, &raw.labels[before..], source.num_classes)?;
        counts.push(raw.labels.len() - before);
        if counts.len() == 1 {
            // The batches are equal in size: one allocation for all, no regrowth copies.
            raw.pixels.reserve(raw.pixels.len() * (files.len() - 1));
        }
    }
    check_equal_batches(&files, &counts)?;
    Ok(raw)
}

/// The five CIFAR-10 training batches are the same size; a shorter one was cut at a record boundary.
fn check_equal_batches(files: &[PathBuf], counts: &[usize]) -> Result<()> {
    for (path, &n) in files.iter().zip(counts) {
        ensure!(
            n == counts[0],
            "{}: expected {} records like {}, found {n} (truncated?)",
            path.display(),
            counts[0],
            files[0].display()
        );
    }
    Ok(())
}

fn read_binary_file(
    path: &Path,
    name: DatasetName,
    with_pixels: bool,
    out: &mut RawSplit,
) -> Result<()> {
    // CIFAR-100 records start with the coarse label, then the fine one, which is what we use.
    let label_bytes = if name == DatasetName::Cifar10 { 1 } else { 2 };
    let bytes = read_file(path)?;
    let record = label_bytes + PIXELS;
    check_record_size(path, bytes.len(), record)?;
    if with_pixels {
        out.pixels.reserve(bytes.len() / record * PIXELS);
    }
    for rec in bytes.chunks_exact(record) {
        out.labels.push(i64::from(rec[label_bytes - 1]));
        if with_pixels {
            out.pixels.extend_from_slice(&rec[label_bytes..]);
        }
    }
    Ok(())
}

/// A partial last record means a truncated file; say how big the whole file would be.
fn check_record_size(path: &Path, len: usize, record: usize) -> Result<()> {
    ensure!(
        len > 0,
        "{}: empty file; expected records of {record} bytes ({} label byte(s) + {PIXELS} pixels)",
        path.display(),
        record - PIXELS
    );
    let whole = len.div_ceil(record);
    ensure!(
        len.is_multiple_of(record),
        "{}: expected {} bytes ({whole} records of {record}), found {len}; the last record is cut short \
         (truncated file?)",
        path.display(),
        whole * record
    );
    Ok(())
}

fn read_python_file(path: &Path, name: DatasetName, out: &mut RawSplit) -> Result<()> {
    let key = if name == DatasetName::Cifar10 {
        "labels"
    } else {
        "fine_labels"
    };
    let PickledBatch { what, labels, data } = PickledBatch::read(path, key, true)?;
    let mut pixels = pixel_rows(&what, data, labels.len(), PIXELS)?;
    if out.pixels.is_empty() {
        out.pixels = pixels; // the first batch moves in without a copy
    } else {
        out.pixels.append(&mut pixels);
    }
    out.labels.extend(labels);
    Ok(())
}

/// A pickled dict of `data` rows and a list of labels, as CIFAR's python batches and
/// downsampled ImageNet's are.
pub(super) struct PickledBatch {
    /// The file, for errors.
    pub what: String,
    pub labels: Vec<i64>,
    pub data: Value,
}

impl PickledBatch {
    /// `bytes_keys`: the dict's keys are bytes (Python 2's str), which errors write as b'key'.
    pub fn read(path: &Path, labels_key: &str, bytes_keys: bool) -> Result<Self> {
        let what = path.display().to_string();
        let quoted = |key: &str| format!("{}'{key}'", if bytes_keys { "b" } else { "" });
        let mut batch = pickle::parse(&read_file(path)?, &what)?;
        ensure!(
            matches!(batch, Value::Dict(_)),
            "{what}: expected a pickled dict, found {}",
            batch.kind()
        );
        let missing = |key: &str, batch: &Value| {
            format!(
                "{what}: the pickle has no {} entry (it has {})",
                quoted(key),
                batch.keys().join(", ")
            )
        };
        let labels = batch
            .get(labels_key)
            .with_context(|| missing(labels_key, &batch))?
            .to_ints()
            .with_context(|| format!("{what}: {}", quoted(labels_key)))?;
        let data = batch
            .take("data")
            .with_context(|| missing("data", &batch))?;
        Ok(Self { what, labels, data })
    }
}

/// b'data' must be a uint8 array of one `row`-pixel row per label (CIFAR's and downsampled
/// ImageNet's batches alike).
pub(super) fn pixel_rows(what: &str, data: Value, n: usize, row: usize) -> Result<Vec<u8>> {
    let Value::Array(data) = data else {
        bail!(
            "{what}: b'data' is {}, expected a numpy uint8 array",
            data.kind()
        );
    };
    ensure!(
        data.dtype == "u1",
        "{what}: b'data' has dtype {}, expected uint8 (u1)",
        data.dtype
    );
    ensure!(
        data.shape == [n, row],
        "{what}: b'data' has shape {:?}, expected [{n}, {row}]: one row of {row} pixels for each of \
         the {n} labels",
        data.shape
    );
    let ArrayData::Raw(pixels) = data.data else {
        bail!("{what}: b'data' is an object array")
    };
    ensure!(
        pixels.len() == n * row,
        "{what}: b'data' holds {} bytes, expected {}",
        pixels.len(),
        n * row
    );
    Ok(pixels)
}
