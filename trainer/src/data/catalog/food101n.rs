//! Food-101N (Lee et al. 2018) as released: `images/<class>/<hash>.jpg`, `meta/classes.txt`
//! (a header line, then the 101 class names), `meta/imagelist.tsv` (a header, then
//! `<class>/<hash>.jpg`: the noisy label is the folder), `meta/verified_train.tsv` and
//! `meta/verified_val.tsv` (a header, then `<class>/<hash>.jpg<TAB>0|1`: whether a person found
//! the label right). Splits: `train` (the image list), `verified_train`, `verified_val`. The
//! test images are Food-101's (`food-101/meta/test.txt`), a separate release.

use super::{lines, Builder, Catalog};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

pub(super) const NAME: &str = "Food-101N";
const LIST: &str = "meta/imagelist.tsv";
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
    Ok(b.build())
}
