//! CIFAR-10N / CIFAR-100N human label sets (Wei et al. 2022), as published:
//! `CIFAR-10_human.pt` (torch.save of a dict of numpy arrays: a zip holding `data.pkl`) or
//! `CIFAR-10_human.npy` (np.save of the same dict as an object array). Labels are in the order
//! of the official training batches, which is our sample-id order.

use crate::data::pickle::{self, ArrayData, Value};
use anyhow::{bail, ensure, Context, Result};
use std::io::Read;
use std::path::Path;

/// `--label-set` names and the keys they have in the published files.
const LABEL_SETS: [(&str, &[&str]); 7] = [
    ("aggre", &["aggre_label"]),
    ("worse", &["worse_label"]),
    ("random1", &["random_label1"]),
    ("random2", &["random_label2"]),
    ("random3", &["random_label3"]),
    ("noisy", &["noisy_label", "noise_label"]),
    ("clean", &["clean_label"]),
];

/// The chosen label set; when the file carries `clean_label`, it must equal the dataset's labels
/// (`clean`), which catches files for another dataset or order.
pub fn read(path: &Path, label_set: Option<&str>, clean: &[usize]) -> Result<Vec<i64>> {
    let what = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {what}"))?;
    let dict = if bytes.starts_with(b"PK") {
        from_torch_zip(&bytes, &what)?
    } else {
        from_npy(&bytes, &what)?
    };
    let names = LABEL_SETS.map(|(n, _)| n).join(", ");
    let set = label_set
        .with_context(|| format!("{what}: say which labels to use with --label-set ({names})"))?;
    let keys = LABEL_SETS
        .iter()
        .find(|(n, _)| *n == set || (set == "worst" && *n == "worse"))
        .map(|(_, keys)| *keys)
        .with_context(|| format!("unknown --label-set '{set}'; expected one of {names}"))?;
    let labels = keys
        .iter()
        .find_map(|key| dict.get(key))
        .with_context(|| {
            format!(
                "{what} has no '{}' labels (it has {})",
                keys[0],
                dict_keys(&dict)
            )
        })?
        .to_ints()
        .with_context(|| format!("{what}: '{}'", keys[0]))?;
    if let Some(file_clean) = dict.get("clean_label") {
        let file_clean = file_clean
            .to_ints()
            .with_context(|| format!("{what}: 'clean_label'"))?;
        let differ = file_clean
            .iter()
            .zip(clean)
            .filter(|(a, b)| **a != **b as i64)
            .count();
        ensure!(
            file_clean.len() == clean.len() && differ == 0,
            "{what}: its clean_label ({} labels) differs from the training split's labels ({} labels, {differ} \
             differ); is it for another dataset?",
            file_clean.len(),
            clean.len()
        );
    }
    Ok(labels)
}

fn dict_keys(dict: &Value) -> String {
    match dict {
        Value::Dict(items) => items
            .iter()
            .filter_map(|(k, _)| match k {
                Value::Str(s) => Some(s.clone()),
                Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.kind().to_string(),
    }
}

/// torch.save's zip format: the object is pickled in `<name>/data.pkl`.
fn from_torch_zip(bytes: &[u8], what: &str) -> Result<Value> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .with_context(|| format!("{what}: not a readable zip"))?;
    let name = archive
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(String::from)
        .with_context(|| format!("{what}: no data.pkl inside; is this a torch.save file?"))?;
    let mut data = Vec::new();
    archive
        .by_name(&name)
        .with_context(|| {
            format!("{what}: {name} is stored compressed; expected torch.save's stored entries")
        })?
        .read_to_end(&mut data)?;
    pickle::parse(&data, what)
}

/// np.save of a dict: a 0-d object array whose single element is the dict.
fn from_npy(bytes: &[u8], what: &str) -> Result<Value> {
    ensure!(
        bytes.starts_with(b"\x93NUMPY") && bytes.len() > 10,
        "{what}: neither a .npy file nor a torch.save zip"
    );
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes(bytes[8..12].try_into()?) as usize, 12),
    };
    ensure!(
        bytes.len() >= start + header_len,
        "{what}: truncated .npy header"
    );
    let header = String::from_utf8_lossy(&bytes[start..start + header_len]);
    ensure!(
        header.contains("'|O'"),
        "{what}: expected a pickled dict (dtype object), found header {header}"
    );
    match pickle::parse(&bytes[start + header_len..], what)? {
        Value::Array(a) => match a.data {
            ArrayData::Objects(mut items) if items.len() == 1 => Ok(items.remove(0)),
            _ => bail!("{what}: expected one pickled dict in the array"),
        },
        other => bail!("{what}: expected an object array, found {}", other.kind()),
    }
}
