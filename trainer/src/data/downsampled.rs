//! Downsampled ImageNet (Chrabaszcz et al. 2017: ImageNet32x32 and ImageNet64x64) as released:
//! `train_data_batch_1` … `train_data_batch_10` and `val_data`, pickled dicts with `data` (uint8
//! rows of 3·S·S pixels in R, G, B planes, as CIFAR's, so already C×H×W) and `labels` (1 … 1000
//! in the order of `map_clsloc.txt`, which is not sorted by wnid). The archives unpack into
//! `Imagenet32_train/` and `Imagenet32_val/`; the files may also sit in one folder. Labels
//! become 0 … 999; the class names are the map's wnids where the map is there, else the indices.

use super::cifar::{pixel_rows, PickledBatch};
use super::pickle::Value;
use super::{read_file, sub_folders, DatasetName, Format, RawSplit, Source, Split};
use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};

pub const CLASSES: usize = 1000;
const FIRST_TRAIN: &str = "train_data_batch_1";
const VAL: &str = "val_data";
const CLASS_MAP: &str = "map_clsloc.txt";

/// Where a release's training batches and validation file are.
struct Layout {
    train: PathBuf,
    val: PathBuf,
}

/// Both files in `dir` itself, or each in a sub-folder of `dir` (the archives' folders). One
/// sub-folder holding both is left for the search of that sub-folder, which then is the root.
fn layout(dir: &Path) -> Result<Option<Layout>> {
    let has = |d: &Path, file: &str| d.join(file).is_file();
    if has(dir, FIRST_TRAIN) && has(dir, VAL) {
        let here = dir.to_path_buf();
        return Ok(Some(Layout {
            train: here.clone(),
            val: here,
        }));
    }
    let subs = sub_folders(dir)?;
    let train = subs.iter().find(|d| has(d, FIRST_TRAIN));
    let val = subs.iter().find(|d| has(d, VAL));
    Ok(match (train, val) {
        (Some(t), Some(v)) if t != v => Some(Layout {
            train: t.clone(),
            val: v.clone(),
        }),
        _ => None,
    })
}

/// The release held in `dir`, if any; the image side is read off the validation file.
pub fn detect(dir: &Path) -> Result<Option<Source>> {
    let Some(layout) = layout(dir)? else {
        return Ok(None);
    };
    let val = read_batch(&layout.val.join(VAL), None)?;
    let name = match val.shape[1] {
        32 => DatasetName::Imagenet32,
        64 => DatasetName::Imagenet64,
        side => bail!(
            "{}: images of {side}x{side}; ImageNet32 and ImageNet64 are read",
            layout.val.join(VAL).display()
        ),
    };
    Ok(Some(Source {
        name,
        format: Format::DownsampledImagenet,
        root: dir.to_path_buf(),
        num_classes: CLASSES,
        class_names: class_names(dir, &layout)?,
        images: Default::default(),
        catalog: None,
        pack: None,
        shared_dir: None,
    }))
}

/// The wnids of `map_clsloc.txt` (`<wnid> <label> <name>`, labels 1 … 1000 in line order), from
/// the root or either folder; the indices where there is none.
fn class_names(dir: &Path, layout: &Layout) -> Result<Vec<String>> {
    let Some(path) = [dir, &layout.train, &layout.val]
        .map(|d| d.join(CLASS_MAP))
        .into_iter()
        .find(|p| p.is_file())
    else {
        return Ok((0..CLASSES).map(|i| i.to_string()).collect());
    };
    let text = String::from_utf8_lossy(&read_file(&path)?).into_owned();
    let mut names = Vec::with_capacity(CLASSES);
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(wnid), Some(label)) = (fields.next(), fields.next()) else {
            bail!(
                "{}:{}: expected `<wnid> <label> <name>`",
                path.display(),
                i + 1
            );
        };
        ensure!(
            label == (i + 1).to_string(),
            "{}:{}: label {label:?}, expected {} (labels run 1 … {CLASSES} in line order)",
            path.display(),
            i + 1,
            i + 1
        );
        names.push(wnid.to_string());
    }
    ensure!(
        names.len() == CLASSES,
        "{}: {} classes, the release has {CLASSES}",
        path.display(),
        names.len()
    );
    Ok(names)
}

/// The training batches (`train_data_batch_1`, `_2`, … as far as they go) or the validation file.
pub(crate) fn read_split(source: &Source, split: Split) -> Result<RawSplit> {
    let layout = layout(&source.root)?.with_context(|| {
        format!(
            "{} no longer holds {FIRST_TRAIN} and {VAL}",
            source.root.display()
        )
    })?;
    let files: Vec<PathBuf> = match split {
        Split::Train => (1..)
            .map(|k| layout.train.join(format!("train_data_batch_{k}")))
            .take_while(|p| p.is_file())
            .collect(),
        Split::Test => vec![layout.val.join(VAL)],
    };
    let side = match source.name {
        DatasetName::Imagenet64 => 64,
        _ => 32,
    };
    let mut raw = RawSplit::default();
    for path in &files {
        let mut batch = read_batch(path, Some(side))?;
        raw.labels.append(&mut batch.labels);
        raw.pixels.append(&mut batch.pixels);
        raw.shape = batch.shape;
    }
    Ok(raw)
}

/// One pickled batch: its side `S` found from the row length (checked against `side` when
/// given), its labels moved to 0 … 999.
fn read_batch(path: &Path, side: Option<usize>) -> Result<RawSplit> {
    let PickledBatch { what, labels, data } = PickledBatch::read(path, "labels", false)?;
    if let Some(i) = labels
        .iter()
        .position(|l| !(1..=CLASSES as i64).contains(l))
    {
        bail!(
            "{what}: label {} of record {i} is outside 1 … {CLASSES} (the release numbers classes \
             from 1, in {CLASS_MAP} order)",
            labels[i]
        );
    }
    let Value::Array(array) = &data else {
        bail!(
            "{what}: 'data' is {}, expected a numpy uint8 array of one row per image",
            data.kind()
        );
    };
    let row = array.shape.get(1).copied().unwrap_or(0);
    let found = (1..=256).find(|s| 3 * s * s == row).with_context(|| {
        format!(
            "{what}: 'data' rows of {row} pixels are not 3 square planes (ImageNet32's have \
             3072, ImageNet64's 12288)"
        )
    })?;
    if let Some(want) = side {
        ensure!(
            found == want,
            "{what}: images of {found}x{found}, but the validation file's are {want}x{want}"
        );
    }
    let side = found;
    Ok(RawSplit {
        pixels: pixel_rows(&what, data, labels.len(), 3 * side * side)?,
        shape: [3, side, side],
        labels: labels.into_iter().map(|l| l - 1).collect(),
        ..Default::default()
    })
}
