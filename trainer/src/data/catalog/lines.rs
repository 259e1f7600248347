//! The label files' line formats, read with errors that name the file and the line.

use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

/// The non-empty lines of `root/rel` with their 1-based numbers; `dataset` names the release
/// in the error when the file is missing.
pub fn read(root: &Path, rel: &str, dataset: &str) -> Result<Vec<(usize, String)>> {
    let path = root.join(rel);
    ensure!(
        path.is_file(),
        "{dataset}: {} is missing (the official release has {rel} under its root)",
        path.display()
    );
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{dataset}: reading {}", path.display()))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty())
        .collect())
}

/// The class names of `root/rel`, one a line after `header` lines, which must be `expected`.
pub fn class_names(
    root: &Path,
    rel: &str,
    header: usize,
    expected: usize,
    dataset: &str,
) -> Result<Vec<String>> {
    let names: Vec<String> = read(root, rel, dataset)?
        .into_iter()
        .skip(header)
        .map(|(_, l)| l)
        .collect();
    ensure!(
        names.len() == expected,
        "{dataset}: {rel} lists {} classes, the release has {expected}",
        names.len()
    );
    Ok(names)
}

/// `<path><sep><label>` (one separator of whitespace, or a tab), the label a class index below
/// `classes`.
pub fn path_label(line: &str, file: &str, no: usize, classes: usize) -> Result<(String, usize)> {
    let mut parts = line.split_whitespace();
    let (Some(path), Some(label), None) = (parts.next(), parts.next(), parts.next()) else {
        bail!("{file}:{no}: expected `<image path> <label>`, got {line:?}");
    };
    let at = format!("{file}:{no}");
    Ok((path.to_string(), class_index(label, &at, classes)?))
}

/// A class index below `classes`; `at` says where it was read (`file:line`, or a file name).
pub fn class_index(label: &str, at: &str, classes: usize) -> Result<usize> {
    let k: usize = label
        .parse()
        .with_context(|| format!("{at}: label {label:?} is not a class index"))?;
    ensure!(
        k < classes,
        "{at}: label {k} is out of range (the release has {classes} classes)"
    );
    Ok(k)
}
