//! Clothing1M (Xiao et al. 2015) as released: `category_names_eng.txt` (14 classes),
//! `noisy_label_kv.txt` and `clean_label_kv.txt` (`images/x/yy/name.jpg <label>`), and the key
//! lists `noisy_train_key_list.txt`, `clean_train_key_list.txt`, `clean_val_key_list.txt`,
//! `clean_test_key_list.txt`. Splits: `noisy_train`, `clean_train`, `clean_val`, `clean_test`,
//! each image labelled from whichever label file names it (both, for the images the noisy and
//! the clean annotation share). Releases disagree on whether val or test holds 14,313 images
//! and which 10,526: the counts are printed, not assumed.

use super::{lines, Builder, Catalog};
use anyhow::{ensure, Result};
use std::collections::HashMap;
use std::path::Path;

pub(super) const NAME: &str = "Clothing1M";
const LABELS: [(&str, bool); 2] = [("noisy_label_kv.txt", false), ("clean_label_kv.txt", true)];
const SPLITS: [(&str, &str, bool); 4] = [
    ("noisy_train", "noisy_train_key_list.txt", false),
    ("clean_train", "clean_train_key_list.txt", true),
    ("clean_val", "clean_val_key_list.txt", true),
    ("clean_test", "clean_test_key_list.txt", true),
];

pub fn is_here(root: &Path) -> bool {
    root.join(LABELS[0].0).is_file()
}

pub fn read(root: &Path) -> Result<Catalog> {
    let classes = lines::class_names(root, "category_names_eng.txt", 0, 14, NAME)?;
    let noisy = label_map(root, LABELS[0].0, classes.len())?;
    let clean = label_map(root, LABELS[1].0, classes.len())?;
    let mut b = Builder::new(NAME, root, classes);
    for (split, file, needs_clean) in SPLITS {
        let needed = if needs_clean { &clean } else { &noisy };
        let needed_file = LABELS[usize::from(needs_clean)].0;
        let mut ids = Vec::new();
        for (no, key) in lines::read(root, file, NAME)? {
            ensure!(
                needed.contains_key(&key),
                "{file}:{no}: {key} has no label in {needed_file}"
            );
            let (i, r) = b.record(&key);
            r.noisy = noisy.get(&key).copied();
            r.clean = clean.get(&key).copied();
            ids.push(i);
        }
        b.split(split, ids);
    }
    Ok(b.build())
}

/// `path → label` of a label file; a path given twice is an error.
fn label_map(root: &Path, file: &str, classes: usize) -> Result<HashMap<String, usize>> {
    let mut map = HashMap::new();
    for (no, line) in lines::read(root, file, NAME)? {
        let (path, label) = lines::path_label(&line, file, no, classes)?;
        ensure!(
            map.insert(path.clone(), label).is_none(),
            "{file}:{no}: {path} is labelled twice"
        );
    }
    Ok(map)
}
