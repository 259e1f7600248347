//! Food-101N (Lee et al. 2018) as released: `images/<class>/<hash>.jpg`, `meta/classes.txt`
//! (a header line, then the 101 class names), `meta/imagelist.tsv` (a header, then
//! `<class>/<hash>.jpg`: the noisy label is the folder), `meta/verified_train.tsv` and
//! `meta/verified_val.tsv` (a header, then `<class>/<hash>.jpg<TAB>0|1`: whether a person found
//! the label right). Splits: `train` (the image list), `verified_train`, `verified_val`, and
//! `test`: Food-101's test split (a separate release: `food-101/meta/test.txt`, lines
//! `<class>/<id>`, images `food-101/images/<class>/<id>.jpg`), found inside the Food-101N root or
//! beside it, as the two archives unpack.

use super::{lines, Builder, Catalog};
use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(super) const NAME: &str = "Food-101N";
const LIST: &str = "meta/imagelist.tsv";
/// Food-101's folder, relative to the Food-101N root: inside it, or beside it.
const FOOD101: [&str; 2] = ["food-101", "../food-101"];
const FOOD101_TEST: &str = "meta/test.txt";
const VERIFIED: [(&str, &str); 2] = [
    ("verified_train", "meta/verified_train.tsv"),
    ("verified_val", "meta/verified_val.tsv"),
];

pub fn is_here(root: &Path) -> bool {
    root.join(LIST).is_file()
}

pub fn read(root: &Path) -> Result<Catalog> {
    // A header line, then the names.
    let classes = lines::class_names(root, "meta/classes.txt", 1, 101, NAME)?;
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let label_of = |entry: &str, at: &str| -> Result<usize> {
        let class = entry
            .split_once('/')
            .map(|(c, _)| c)
            .with_context(|| format!("{at}: expected `<class>/<image>.jpg`, got {entry:?}"))?;
        index
            .get(class)
            .copied()
            .with_context(|| format!("{at}: {class:?} is not in meta/classes.txt"))
    };
    let mut b = Builder::new(NAME, root, classes.clone());
    let mut ids = Vec::new();
    for (no, entry) in lines::read(root, LIST, NAME)?.into_iter().skip(1) {
        let label = label_of(&entry, &format!("{LIST}:{no}"))?;
        let (i, r) = b.record(Path::new("images").join(&entry));
        r.noisy = Some(label);
        ids.push(i);
    }
    b.split("train", ids);
    for (split, file) in VERIFIED {
        let mut ids = Vec::new();
        for (no, line) in lines::read(root, file, NAME)?.into_iter().skip(1) {
            let at = format!("{file}:{no}");
            let Some((entry, flag)) = line.split_once('\t') else {
                bail!("{at}: expected `<class>/<image>.jpg<TAB>0|1`, got {line:?}");
            };
            let right = match flag.trim() {
                "1" => true,
                "0" => false,
                other => bail!("{at}: verification {other:?} is neither 0 nor 1"),
            };
            let label = label_of(entry, &at)?;
            let (i, r) = b.record(Path::new("images").join(entry));
            r.noisy = Some(label);
            r.verified = Some(right);
            r.clean = right.then_some(label);
            ids.push(i);
        }
        b.split(split, ids);
    }
    if let Some(food101) = food101_folder(root) {
        let ids = food101_test(&mut b, root, &food101, &index)?;
        b.split("test", ids);
    }
    Ok(b.build())
}

/// Where Food-101 is, relative to `root`, if it is there.
pub(super) fn food101_folder(root: &Path) -> Option<PathBuf> {
    FOOD101
        .iter()
        .map(PathBuf::from)
        .find(|rel| root.join(rel).join(FOOD101_TEST).is_file())
}

/// The places [`food101_folder`] looks, for the error that says it found none.
pub(super) fn food101_places(root: &Path) -> String {
    let places: Vec<String> = FOOD101
        .iter()
        .map(|rel| root.join(rel).join(FOOD101_TEST).display().to_string())
        .collect();
    places.join(" or ")
}

/// Food-101's test images, labelled by their folder (the verified label: Food-101's test set
/// was cleaned by hand), with Food-101's class list checked against Food-101N's.
fn food101_test(
    b: &mut Builder,
    root: &Path,
    food101: &Path,
    index: &HashMap<&str, usize>,
) -> Result<Vec<usize>> {
    let theirs = lines::class_names(root, &rel(food101, "meta/classes.txt"), 0, 101, NAME)?;
    ensure!(
        theirs == b.classes,
        "{}: Food-101's classes differ from meta/classes.txt of Food-101N",
        root.join(food101).join("meta/classes.txt").display()
    );
    let file = rel(food101, FOOD101_TEST);
    let mut ids = Vec::new();
    for (no, entry) in lines::read(root, &file, NAME)? {
        let at = format!("{file}:{no}");
        let class = entry
            .split_once('/')
            .map(|(c, _)| c)
            .with_context(|| format!("{at}: expected `<class>/<id>`, got {entry:?}"))?;
        let label = *index
            .get(class)
            .with_context(|| format!("{at}: {class:?} is not one of Food-101's classes"))?;
        let (i, r) = b.record(food101.join("images").join(format!("{entry}.jpg")));
        r.clean = Some(label);
        ids.push(i);
    }
    Ok(ids)
}

fn rel(folder: &Path, file: &str) -> String {
    folder.join(file).display().to_string()
}
