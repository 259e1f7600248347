//! The real-world releases' catalogs (`trainer::data::catalog`) on the small fixtures that
//! `tests/fixtures/real_world.py` writes in each official layout: split sizes, labels per class
//! and known-right counts against the counts read off the fixture by hand; `trainer data-info`
//! prints them; a missing or malformed label file is an error naming the file (and line); a
//! training run refuses a catalog-only release with a message saying why.

mod common;

use common::{python, stderr, trainer, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use trainer::data::catalog::{self, Catalog};

/// The fixtures, written into `dir`.
fn fixtures(dir: &Path) -> PathBuf {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/fixtures/real_world.py"))
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    dir.to_path_buf()
}

/// `trainer train` of a network from scratch on the dataset in `data_dir`, into `exp`.
fn train_on(data_dir: &Path, exp: &Path) -> Output {
    let (data_dir, exp) = (data_dir.to_str().unwrap(), exp.to_str().unwrap());
    trainer(&[
        "train",
        "--data-dir",
        data_dir,
        "--backbone",
        "none",
        "--exp-dir",
        exp,
    ])
}

fn read(root: &Path) -> Catalog {
    catalog::detect(root).unwrap().expect("a catalog")
}

/// `counts` as a sparse list of (class, count).
fn nonzero(counts: Vec<usize>) -> Vec<(usize, usize)> {
    counts
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n > 0)
        .collect()
}

fn sizes(c: &Catalog) -> Vec<(&str, usize)> {
    c.splits
        .iter()
        .map(|(n, ids)| (n.as_str(), ids.len()))
        .collect()
}

#[test]
fn clothing1m_splits_and_labels_are_the_release_files() {
    let tmp = tempfile::tempdir().unwrap();
    let c = read(&fixtures(tmp.path()).join("clothing1m"));
    assert_eq!(c.name, "Clothing1M");
    assert_eq!(c.classes.len(), 14);
    assert_eq!(
        sizes(&c),
        [
            ("noisy_train", 6),
            ("clean_train", 2),
            ("clean_val", 2),
            ("clean_test", 1)
        ]
    );
    let split = |n| c.split(n).unwrap();
    // noisy_train: n0..n5 labelled 0, 1, 1, 2, 13, 5.
    let train = nonzero(c.class_counts(split("noisy_train"), false));
    assert_eq!(train, [(0, 1), (1, 2), (2, 1), (5, 1), (13, 1)]);
    assert_eq!(
        c.records[split("noisy_train")[4]].locator,
        Path::new("images/2/00/n4.jpg")
    );
    // clean_train: c0 (clean 0) and n6 (clean 3, noisy 3: right).
    assert_eq!(
        nonzero(c.class_counts(split("clean_train"), true)),
        [(0, 1), (3, 1)]
    );
    assert_eq!(c.agreement(split("clean_train")), (1, 1));
    // clean_val: c1 (clean 1) and n7 (clean 7, noisy 4: wrong).
    assert_eq!(
        nonzero(c.class_counts(split("clean_val"), true)),
        [(1, 1), (7, 1)]
    );
    assert_eq!(nonzero(c.class_counts(split("clean_val"), false)), [(4, 1)]);
    assert_eq!(c.agreement(split("clean_val")), (1, 0));
    // n0..n7 and c0..c2, each once.
    assert_eq!(c.records.len(), 11);
}

#[test]
fn animal10n_food101n_and_webvision_catalogs() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path());

    let a = read(&root.join("animal10n"));
    assert_eq!(sizes(&a), [("train", 4), ("test", 2)]);
    let train = nonzero(a.class_counts(a.split("train").unwrap(), false));
    assert_eq!(train, [(0, 2), (3, 1), (9, 1)]);
    let test = nonzero(a.class_counts(a.split("test").unwrap(), false));
    assert_eq!(test, [(1, 1), (3, 1)]);
    assert_eq!(a.records[0].locator, Path::new("training/0_00001.jpg"));

    let f = read(&root.join("food101n"));
    assert_eq!(f.classes.len(), 101);
    assert_eq!(
        sizes(&f),
        [("train", 5), ("verified_train", 2), ("verified_val", 1)]
    );
    let train = nonzero(f.class_counts(f.split("train").unwrap(), false));
    assert_eq!(train, [(0, 2), (1, 2), (100, 1)]);
    // apple_pie/h1 verified right, food_001/h3 wrong; food_100/h5 right.
    assert_eq!(f.agreement(f.split("verified_train").unwrap()), (2, 1));
    assert_eq!(f.agreement(f.split("verified_val").unwrap()), (1, 1));
    assert_eq!(f.records[2].locator, Path::new("images/food_001/h3.jpg"));

    let w = read(&root.join("webvision"));
    assert_eq!(w.classes.len(), 1000);
    assert_eq!(
        sizes(&w),
        [
            ("train_google", 5),
            ("train_flickr", 2),
            ("val", 3),
            ("mini_train", 3),
            ("mini_val", 2)
        ]
    );
    // mini-WebVision: Google images of classes 0..49 (labels 0, 0, 49), validation 0 and 49.
    let mini = nonzero(w.class_counts(w.split("mini_train").unwrap(), false));
    assert_eq!(mini, [(0, 2), (49, 1)]);
    let val = nonzero(w.class_counts(w.split("mini_val").unwrap(), true));
    assert_eq!(val, [(0, 1), (49, 1)]);
    let first_val = w.split("val").unwrap()[0];
    assert_eq!(
        w.records[first_val].locator,
        Path::new("val_images_256/val000001.jpg")
    );
}

#[test]
fn data_info_prints_a_catalog_and_training_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixtures(tmp.path()).join("clothing1m");
    let dir = dir.to_str().unwrap();
    let out = trainer(&["data-info", "--data-dir", dir]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(said.contains("found Clothing1M"), "{said}");
    assert!(said.contains("noisy_train: 6 images"), "{said}");
    assert!(said.contains("known right for 0 of 1"), "{said}");
    let exp = tmp.path().join("exp");
    let out = train_on(Path::new(dir), &exp);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("holds Clothing1M"), "{err}");
    assert!(err.contains("streaming image pipeline"), "{err}");
    assert!(!exp.exists(), "the refused run wrote {}", exp.display());
}

/// Each fault in a copy of the Clothing1M fixture, and what the error must name.
#[test]
fn bad_release_files_are_named_with_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path()).join("clothing1m");
    let set = |file: &str, text: &str| std::fs::write(root.join(file), text).unwrap();
    let error = || catalog::detect(&root).unwrap_err().to_string();
    let kv = std::fs::read_to_string(root.join("noisy_label_kv.txt")).unwrap();

    std::fs::remove_file(root.join("clean_val_key_list.txt")).unwrap();
    let e = error();
    assert!(e.contains("clean_val_key_list.txt is missing"), "{e}");
    // A training run on the broken release says the same, not "no dataset found".
    let err = stderr(&train_on(&root, &tmp.path().join("exp")));
    assert!(err.contains("clean_val_key_list.txt is missing"), "{err}");
    set("clean_val_key_list.txt", "images/4/00/c1.jpg\n");

    set("noisy_label_kv.txt", &kv.replace("n4.jpg 13", "n4.jpg 14"));
    let e = error();
    assert!(
        e.contains("noisy_label_kv.txt:5: label 14 is out of range"),
        "{e}"
    );
    set("noisy_label_kv.txt", &kv.replace("n4.jpg 13", "n4.jpg"));
    let e = error();
    assert!(e.contains("noisy_label_kv.txt:5: expected"), "{e}");
    set("noisy_label_kv.txt", &format!("{kv}images/0/00/n0.jpg 1\n"));
    let e = error();
    assert!(
        e.contains("noisy_label_kv.txt:9: images/0/00/n0.jpg is labelled twice"),
        "{e}"
    );

    set(
        "noisy_label_kv.txt",
        &kv.replace("images/1/02/n3.jpg 2\n", ""),
    );
    let e = error();
    assert!(
        e.contains(
            "noisy_train_key_list.txt:4: images/1/02/n3.jpg has no label in noisy_label_kv.txt"
        ),
        "{e}"
    );
}
