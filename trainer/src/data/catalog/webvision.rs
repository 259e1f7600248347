//! WebVision 1.0 (Li et al. 2017) as released: `info/synsets.txt` (the 1000 classes, ImageNet's
//! wnids in label order), `info/train_filelist_google.txt` and `info/train_filelist_flickr.txt`
//! (`google/q0001/000000.jpg <label>`, paths under the root), `info/val_filelist.txt`
//! (`val000001.jpg <label>`, under `val_images_256/` where that folder exists, else
//! `val_images/`). Splits: `train_google`, `train_flickr` (when its list is there), `train` (the
//! two: WebVision 1.0's training set, `train_filelist_all.txt`'s images), `val`, and
//! mini-WebVision's `mini_train` (the Google images of the first 50 classes: 65,944 in the
//! release) and `mini_val` (2,500). The web labels are noisy; the validation labels are clean.
//!
//! ILSVRC-2012 val, the second test set of the mini-WebVision references, is read where it
//! sits as class folders in `imagenet/val/` inside or beside the root: ImageNet's own wnid
//! folders (`n01440764/`, as `valprep.sh` makes them), labelled through `synsets.txt`, or
//! DivideMix's numbered ones (`0/` … `49/`, WebVision's labels). Splits `imagenet_val` and
//! `mini_imagenet_val` (its first 50 classes: 2,500 images).

use super::{lines, Builder, Catalog};
use crate::data::imagefolder::sorted_entries;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(super) const NAME: &str = "WebVision";
const GOOGLE: &str = "info/train_filelist_google.txt";
const FLICKR: &str = "info/train_filelist_flickr.txt";
const VAL: &str = "info/val_filelist.txt";
/// mini-WebVision keeps the first 50 classes.
pub(super) const MINI_CLASSES: usize = 50;
/// ILSVRC-2012 val, relative to the WebVision root: inside it, or beside it.
const IMAGENET_VAL: [&str; 2] = ["imagenet/val", "../imagenet/val"];
/// The split mini-WebVision is also tested on, when ImageNet val is there.
pub(super) const MINI_IMAGENET_VAL: &str = "mini_imagenet_val";
/// WebVision 1.0 whole: trained on every Google and Flickr image, tested on val, and on ImageNet
/// val when it is there.
pub(super) const WHOLE_TRAIN: &str = "train";
pub(super) const WHOLE_TEST: &str = "val";
pub(super) const IMAGENET_VAL_SPLIT: &str = "imagenet_val";

pub fn is_here(root: &Path) -> bool {
    root.join(GOOGLE).is_file()
}

pub fn read(root: &Path) -> Result<Catalog> {
    let classes = lines::class_names(root, "info/synsets.txt", 0, 1000, NAME)?;
    let k = classes.len();
    let mut b = Builder::new(NAME, root, classes);
    let google = labelled(&mut b, root, GOOGLE, "", k, false)?;
    let mini_train = mini(&b, &google);
    let mut all = google.clone();
    b.split("train_google", google);
    if root.join(FLICKR).is_file() {
        let flickr = labelled(&mut b, root, FLICKR, "", k, false)?;
        all.extend(&flickr);
        b.split("train_flickr", flickr);
    }
    b.split(WHOLE_TRAIN, all);
    let val_dir = match root.join("val_images_256").is_dir() {
        true => "val_images_256/",
        false => "val_images/",
    };
    let val = labelled(&mut b, root, VAL, val_dir, k, true)?;
    let mini_val = mini(&b, &val);
    b.split("val", val);
    b.split("mini_train", mini_train);
    b.split("mini_val", mini_val);
    if let Some(folder) = IMAGENET_VAL
        .iter()
        .map(PathBuf::from)
        .find(|f| root.join(f).is_dir())
    {
        let imagenet = imagenet_val(&mut b, root, &folder)?;
        let mini_imagenet = mini(&b, &imagenet);
        b.split(IMAGENET_VAL_SPLIT, imagenet);
        b.split(MINI_IMAGENET_VAL, mini_imagenet);
    }
    Ok(b.build())
}

/// ImageNet val's images, their clean label by their class folder (a wnid of `synsets.txt`, or
/// WebVision's label as a number), folders and files in name order.
fn imagenet_val(b: &mut Builder, root: &Path, folder: &Path) -> Result<Vec<usize>> {
    let wnids: HashMap<String, usize> = (b.classes.iter().enumerate())
        .filter_map(|(i, line)| Some((line.split_whitespace().next()?.to_string(), i)))
        .collect();
    let mut ids = Vec::new();
    for name in sorted_entries(&root.join(folder), false)? {
        let class_dir = root.join(folder).join(&name);
        let label = match (wnids.get(&name), name.parse::<usize>()) {
            (Some(&label), _) => label,
            (None, Ok(label)) if label < b.classes.len() => label,
            _ => bail!(
                "{}: {name:?} is neither a wnid of info/synsets.txt nor a class number below \
                 {}; ImageNet val goes in one folder per class",
                class_dir.display(),
                b.classes.len()
            ),
        };
        for file in sorted_entries(&class_dir, true)? {
            let (i, r) = b.record(folder.join(&name).join(file));
            r.clean = Some(label);
            ids.push(i);
        }
    }
    Ok(ids)
}

/// The records of a file list (`<path> <label>`, paths under `prefix`); `clean` says whether
/// its labels are the verified ones.
fn labelled(
    b: &mut Builder,
    root: &Path,
    file: &str,
    prefix: &str,
    classes: usize,
    clean: bool,
) -> Result<Vec<usize>> {
    let mut ids = Vec::new();
    for (no, line) in lines::read(root, file, NAME)? {
        let (path, label) = lines::path_label(&line, file, no, classes)?;
        let (i, r) = b.record(format!("{prefix}{path}"));
        match clean {
            true => r.clean = Some(label),
            false => r.noisy = Some(label),
        }
        ids.push(i);
    }
    Ok(ids)
}

/// Those of `ids` labelled with one of the first 50 classes.
fn mini(b: &Builder, ids: &[usize]) -> Vec<usize> {
    ids.iter()
        .copied()
        .filter(|&i| {
            let r = &b.records[i];
            r.noisy.or(r.clean).is_some_and(|l| l < MINI_CLASSES)
        })
        .collect()
}
