//! CIFAR-10 and CIFAR-100 in both official formats.
//! - binary: records of [label byte(s), 1024 R, 1024 G, 1024 B]; CIFAR-100 has coarse then fine.
//! - python: pickled dicts with `data` (uint8 N×3072 numpy array) and `labels` / `fine_labels`.

use super::pickle::{self, ArrayData, Value};
use super::{read_file, DatasetName, Format, RawSplit, Source, Split};
use anyhow::{bail, ensure, Context, Result};
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
    let found = if has("data_batch_1.bin") {
        Some((DatasetName::Cifar10, Format::CifarBinary))
    } else if has("train.bin") && has("test.bin") {
        Some((DatasetName::Cifar100, Format::CifarBinary))
    } else if has("data_batch_1") {
        Some((DatasetName::Cifar10, Format::CifarPython))
    } else if has("train") && has("test") && has("meta") {
        Some((DatasetName::Cifar100, Format::CifarPython))
    } else {
        None
    };
    let Some((name, format)) = found else {
        return Ok(None);
    };
    let class_names = class_names(dir, name, format)?;
    Ok(Some(Source {
        name,
        format,
        root: dir.to_path_buf(),
        num_classes: class_names.len(),
        class_names,
    }))
}

fn class_names(dir: &Path, name: DatasetName, format: Format) -> Result<Vec<String>> {
    let k = if name == DatasetName::Cifar10 {
        10
    } else {
        100
    };
    let (file, key) = match (name, format) {
        (DatasetName::Cifar10, Format::CifarBinary) => ("batches.meta.txt", ""),
        (DatasetName::Cifar10, _) => ("batches.meta", "label_names"),
        (_, Format::CifarBinary) => ("fine_label_names.txt", ""),
        _ => ("meta", "fine_label_names"),
    };
    let path = dir.join(file);
    let names = if !path.is_file() {
        None
    } else if key.is_empty() {
        let text = String::from_utf8_lossy(&read_file(&path)?).into_owned();
        Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    } else {
        Some(pickled_names(&path, key)?)
    };
    match names {
        Some(n) => {
            ensure!(
                n.len() == k,
                "{}: expected {k} class names, found {}",
                path.display(),
                n.len()
            );
            Ok(n)
        }
        None if k == 10 => Ok(CIFAR10_CLASSES.map(String::from).to_vec()),
        None => Ok((0..k).map(|i| i.to_string()).collect()),
    }
}

fn pickled_names(path: &Path, key: &str) -> Result<Vec<String>> {
    let meta = pickle::parse(&read_file(path)?, &path.display().to_string())?;
    let Some(Value::List(items)) = meta.get(key) else {
        bail!("{}: no list '{key}' in the pickle", path.display());
    };
    items
        .iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s.clone()),
            Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => bail!("{}: class name is {}", path.display(), other.kind()),
        })
        .collect()
}

fn split_files(source: &Source, split: Split) -> Vec<PathBuf> {
    let names: Vec<String> = match (source.name, source.format, split) {
        (DatasetName::Cifar10, Format::CifarBinary, Split::Train) => {
            (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
        }
        (DatasetName::Cifar10, Format::CifarBinary, Split::Test) => vec!["test_batch.bin".into()],
        (DatasetName::Cifar10, _, Split::Train) => {
            (1..=5).map(|i| format!("data_batch_{i}")).collect()
        }
        (DatasetName::Cifar10, _, Split::Test) => vec!["test_batch".into()],
        (_, Format::CifarBinary, Split::Train) => vec!["train.bin".into()],
        (_, Format::CifarBinary, Split::Test) => vec!["test.bin".into()],
        (_, _, Split::Train) => vec!["train".into()],
        (_, _, Split::Test) => vec!["test".into()],
    };
    names.into_iter().map(|n| source.root.join(n)).collect()
}

fn concat(parts: Vec<(Vec<u8>, Vec<i64>)>) -> RawSplit {
    let mut raw = RawSplit {
        pixels: Vec::new(),
        shape: SHAPE,
        labels: Vec::new(),
        paths: None,
    };
    for (pixels, labels) in parts {
        raw.pixels.extend(pixels);
        raw.labels.extend(labels);
    }
    raw
}

pub fn read_binary(source: &Source, split: Split) -> Result<RawSplit> {
    let label_bytes = if source.name == DatasetName::Cifar10 {
        1
    } else {
        2
    };
    let parts = split_files(source, split)
        .iter()
        .map(|path| read_binary_file(path, label_bytes))
        .collect::<Result<Vec<_>>>()?;
    check_equal_batches(&parts, source, split)?;
    Ok(concat(parts))
}

/// The five CIFAR-10 training batches are the same size; a shorter one was cut at a record boundary.
fn check_equal_batches(parts: &[(Vec<u8>, Vec<i64>)], source: &Source, split: Split) -> Result<()> {
    let files = split_files(source, split);
    let first = parts[0].1.len();
    for (part, path) in parts.iter().zip(&files) {
        ensure!(
            part.1.len() == first,
            "{}: expected {first} records like {}, found {} (truncated?)",
            path.display(),
            files[0].display(),
            part.1.len()
        );
    }
    Ok(())
}

fn read_binary_file(path: &Path, label_bytes: usize) -> Result<(Vec<u8>, Vec<i64>)> {
    let bytes = read_file(path)?;
    let record = label_bytes + PIXELS;
    ensure!(
        !bytes.is_empty() && bytes.len().is_multiple_of(record),
        "{}: expected a whole number of {record}-byte records ({label_bytes} label byte(s) + {PIXELS} pixels), \
         found {} bytes (truncated or not a CIFAR binary file?)",
        path.display(),
        bytes.len()
    );
    let n = bytes.len() / record;
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for rec in bytes.chunks_exact(record) {
        // The fine label is the last label byte in CIFAR-100 (coarse, fine).
        labels.push(i64::from(rec[label_bytes - 1]));
        pixels.extend_from_slice(&rec[label_bytes..]);
    }
    Ok((pixels, labels))
}

pub fn read_python(source: &Source, split: Split) -> Result<RawSplit> {
    let key = if source.name == DatasetName::Cifar10 {
        "labels"
    } else {
        "fine_labels"
    };
    let parts = split_files(source, split)
        .iter()
        .map(|path| read_python_file(path, key))
        .collect::<Result<Vec<_>>>()?;
    check_equal_batches(&parts, source, split)?;
    Ok(concat(parts))
}

fn read_python_file(path: &Path, label_key: &str) -> Result<(Vec<u8>, Vec<i64>)> {
    let what = path.display().to_string();
    let batch = pickle::parse(&read_file(path)?, &what)?;
    let labels = batch
        .get(label_key)
        .with_context(|| format!("{what}: the pickle has no '{label_key}' entry"))?
        .to_ints()
        .with_context(|| format!("{what}: '{label_key}'"))?;
    let Some(Value::Array(data)) = batch.get("data") else {
        bail!("{what}: the pickle has no 'data' array");
    };
    ensure!(
        data.dtype == "u1",
        "{what}: 'data' has dtype {}, expected uint8 (u1)",
        data.dtype
    );
    ensure!(
        data.shape == [labels.len(), PIXELS],
        "{what}: 'data' has shape {:?}, expected [{}, {PIXELS}] (one row per label)",
        data.shape,
        labels.len()
    );
    let ArrayData::Raw(pixels) = &data.data else {
        bail!("{what}: 'data' is an object array")
    };
    ensure!(
        pixels.len() == labels.len() * PIXELS,
        "{what}: 'data' holds {} bytes, expected {}",
        pixels.len(),
        labels.len() * PIXELS
    );
    Ok((pixels.clone(), labels))
}
