//! ANIMAL-10N (Song et al. 2019) as released: `training/` (50,000) and `testing/` (5,000) JPEGs
//! of 64×64, the label the number before `_` in the file name (`<label>_<id>.jpg`). The labels
//! are the noisy web labels for both splits (the test labels were cleaned by the authors; the
//! release gives one label per image). Order: file names sorted.

use super::{lines, Builder, Catalog};
use anyhow::{ensure, Context, Result};
use std::path::Path;

pub(super) const NAME: &str = "ANIMAL-10N";
const CLASSES: [&str; 10] = [
    "cat",
    "lynx",
    "wolf",
    "coyote",
    "cheetah",
    "jaguar",
    "chimpanzee",
    "orangutan",
    "hamster",
    "guinea pig",
];
const SPLITS: [(&str, &str); 2] = [("train", "training"), ("test", "testing")];

pub fn is_here(root: &Path) -> bool {
    SPLITS.iter().all(|(_, dir)| root.join(dir).is_dir())
        && jpegs(&root.join("training")).is_ok_and(|names| {
            names.first().is_some_and(|n| {
                n.split('_')
                    .next()
                    .is_some_and(|l| l.parse::<usize>().is_ok())
            })
        })
}

pub fn read(root: &Path) -> Result<Catalog> {
    let mut b = Builder::new(NAME, root, CLASSES.map(String::from).to_vec());
    for (split, dir) in SPLITS {
        let mut ids = Vec::new();
        for name in jpegs(&root.join(dir))? {
            let label = name
                .split_once('_')
                .map(|(l, _)| l)
                .with_context(|| format!("{NAME}: {dir}/{name}: expected `<label>_<id>.jpg`"))?;
            let at = format!("{NAME}: {dir}/{name}");
            let label = lines::class_index(label, &at, CLASSES.len())?;
            let (i, r) = b.record(Path::new(dir).join(&name));
            r.noisy = Some(label);
            ids.push(i);
        }
        ensure!(!ids.is_empty(), "{NAME}: {dir}/ holds no .jpg file");
        b.split(split, ids);
    }
    Ok(b.build())
}

/// The `.jpg` file names in `dir`, sorted.
fn jpegs(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.to_ascii_lowercase().ends_with(".jpg") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}
