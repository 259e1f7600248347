//! The ImageFolder layout the original tools use: `<root>/{train,test}/<class>/<image>`,
//! images in JPEG, PNG or WebP.
//! Classes are the sorted folder names of `train/` (torchvision's convention); images are
//! sorted by file name within each class, and that order gives the sample ids.

use super::image::has_image_extension;
use super::resident::Entry;
use super::{DatasetName, Format, Source, Split};
use anyhow::{bail, ensure, Context, Result};
use std::path::Path;

/// Sorted names of the sub-folders (or, with `files`, the files) of `dir`; hidden entries skipped.
pub(crate) fn sorted_entries(dir: &Path, files: bool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || entry.path().is_dir() == files {
            continue;
        }
        if files && !has_image_extension(&name) {
            bail!(
                "{}: an ImageFolder holds .jpg, .jpeg, .png and .webp images only",
                entry.path().display()
            );
        }
        names.push(name);
    }
    names.sort();
    Ok(names)
}

pub fn detect(dir: &Path) -> Result<Option<Source>> {
    let (train, test) = (dir.join("train"), dir.join("test"));
    if !train.is_dir() || !test.is_dir() {
        return Ok(None);
    }
    let classes = sorted_entries(&train, false)?;
    if classes.is_empty() {
        return Ok(None);
    }
    check_same_classes(dir, &classes, &sorted_entries(&test, false)?)?;
    Ok(Some(Source {
        name: DatasetName::ImageFolder,
        format: Format::ImageFolder,
        root: dir.to_path_buf(),
        num_classes: classes.len(),
        class_names: classes,
        images: Default::default(),
        catalog: None,
        pack: None,
        shared_dir: None,
    }))
}

/// Labels are indices into the class list, so both splits must have the same classes.
fn check_same_classes(dir: &Path, train: &[String], test: &[String]) -> Result<()> {
    let only = |split: &str, a: &[String], b: &[String]| {
        let extra: Vec<&String> = a.iter().filter(|c| !b.contains(c)).collect();
        (!extra.is_empty()).then(|| format!("only in {split}/: {extra:?}"))
    };
    let differences: Vec<String> = [only("train", train, test), only("test", test, train)]
        .into_iter()
        .flatten()
        .collect();
    ensure!(
        differences.is_empty(),
        "{}: train/ and test/ must have the same class folders; {}",
        dir.display(),
        differences.join(", ")
    );
    Ok(())
}

/// The split's image files in class order, then name order.
pub(crate) fn entries(root: &Path, split: Split, classes: &[String]) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let dir = Path::new(split.as_str()).join(class);
        for file in sorted_entries(&root.join(&dir), true)? {
            entries.push(Entry {
                path: dir.join(&file),
                label: label as i64,
                id: entries.len() as u64,
            });
        }
    }
    ensure!(
        !entries.is_empty(),
        "{}: no images",
        root.join(split.as_str()).display()
    );
    Ok(entries)
}
