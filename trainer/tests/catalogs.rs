//! The real-world releases' catalogs (`trainer::data::catalog`) on the small fixtures that
//! `tests/fixtures/real_world.py` writes in each official layout: split sizes, labels per class
//! and known-right counts against the counts read off the fixture by hand; `trainer data-info`
//! prints them; a missing or malformed label file is an error naming the file (and line); a
//! release loads the splits and labels its papers use, decoded to torchvision's pixels, and
//! trains; bad image files stop a run naming them or are skipped and counted.

mod common;

use common::{python, results, stderr, trainer, trainer_pack, write_fixtures};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use trainer::data::catalog::{self, Catalog};
use trainer::data::resident::ImageOptions;
use trainer::data::{DatasetName, Source, Split};

/// The fixtures, written into `dir`.
fn fixtures(dir: &Path) -> PathBuf {
    write_fixtures("real_world.py", dir)
}

/// One epoch of `trainer train` of a network from scratch on the dataset in `data_dir`, into
/// `exp`, with `flags`.
fn train_on(data_dir: &Path, exp: &Path, flags: &[&str]) -> Output {
    let (data_dir, exp) = (data_dir.to_str().unwrap(), exp.to_str().unwrap());
    let mut args = vec![
        "train",
        "--data-dir",
        data_dir,
        "--backbone",
        "none",
        "--exp-dir",
        exp,
        "--epochs",
        "1",
        "--batch-size",
        "2",
    ];
    args.extend(flags);
    trainer(&args)
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
        [
            ("train", 5),
            ("verified_train", 2),
            ("verified_val", 1),
            ("test", 3)
        ]
    );
    let train = nonzero(f.class_counts(f.split("train").unwrap(), false));
    assert_eq!(train, [(0, 2), (1, 2), (100, 1)]);
    // apple_pie/h1 verified right, food_001/h3 wrong; food_100/h5 right.
    assert_eq!(f.agreement(f.split("verified_train").unwrap()), (2, 1));
    assert_eq!(f.agreement(f.split("verified_val").unwrap()), (1, 1));
    assert_eq!(f.records[2].locator, Path::new("images/food_001/h3.jpg"));
    // Food-101's test split, beside the release: labelled by folder, Food-101N's class order.
    let test = nonzero(f.class_counts(f.split("test").unwrap(), true));
    assert_eq!(test, [(0, 1), (50, 1), (100, 1)]);
    let first_test = &f.records[f.split("test").unwrap()[0]];
    assert_eq!(
        first_test.locator,
        Path::new("../food-101/images/apple_pie/t1.jpg")
    );

    let w = read(&root.join("webvision"));
    assert_eq!(w.classes.len(), 1000);
    assert_eq!(
        sizes(&w),
        [
            ("train_google", 5),
            ("train_flickr", 2),
            ("train", 7),
            ("val", 3),
            ("mini_train", 3),
            ("mini_val", 2),
            ("imagenet_val", 4),
            ("mini_imagenet_val", 3)
        ]
    );
    // ImageNet val by wnid folder: n00000000 twice, n00000049 once; n00000050 is not mini.
    let imagenet = nonzero(w.class_counts(w.split("mini_imagenet_val").unwrap(), true));
    assert_eq!(imagenet, [(0, 2), (49, 1)]);
    let first_imagenet = w.split("imagenet_val").unwrap()[0];
    assert_eq!(
        w.records[first_imagenet].locator,
        Path::new("imagenet/val/n00000000/ILSVRC2012_val_00000001.JPEG")
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
fn data_info_prints_a_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixtures(tmp.path()).join("clothing1m");
    let out = trainer(&["data-info", "--data-dir", dir.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(said.contains("found Clothing1M"), "{said}");
    assert!(said.contains("noisy_train: 6 images"), "{said}");
    assert!(said.contains("known right for 0 of 1"), "{said}");
}

/// A release as a dataset: the splits the papers train and test on, the noisy labels to
/// train on and the clean ones to test on, read off the fixture by hand.
#[test]
fn releases_load_the_papers_splits_and_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path());
    let square = ImageOptions::from_keys(Some(16), None);
    let load = |name: &str| {
        let source = Source::detect(&root.join(name))
            .unwrap()
            .with_images(square);
        let [train, test] = [Split::Train, Split::Test].map(|s| source.load(s).unwrap());
        (source, train, test)
    };
    // Clothing1M: noisy_train with its noisy labels, clean_test with its clean one.
    let (source, train, test) = load("clothing1m");
    assert_eq!(
        (source.name, source.num_classes),
        (DatasetName::Clothing1m, 14)
    );
    assert_eq!(train.labels, [0, 1, 1, 2, 13, 5]);
    assert_eq!(train.images.size(), [6, 3, 16, 16]);
    assert_eq!(train.ids, [0, 1, 2, 3, 4, 5]);
    assert_eq!(test.labels, [2]);
    // mini-WebVision: the Google images of the first 50 classes, and their clean val labels.
    let (source, train, test) = load("webvision");
    assert_eq!(
        (source.name, source.num_classes),
        (DatasetName::MiniWebvision, 50)
    );
    assert_eq!(source.class_names.len(), 50);
    let c = read(&root.join("webvision"));
    let labels = |split: &str, clean: bool| -> Vec<i64> {
        c.split(split)
            .unwrap()
            .iter()
            .map(|&i| {
                let r = &c.records[i];
                (if clean { r.clean } else { r.noisy }).unwrap() as i64
            })
            .collect()
    };
    assert_eq!(train.labels, labels("mini_train", false));
    assert_eq!(test.labels, labels("mini_val", true));
    assert!(train.labels.iter().chain(&test.labels).all(|&l| l < 50));
    // ANIMAL-10N: the label in the file name.
    let (source, train, test) = load("animal10n");
    assert_eq!(
        (source.name, source.num_classes),
        (DatasetName::Animal10n, 10)
    );
    assert_eq!((train.labels, test.labels), (vec![0, 0, 3, 9], vec![1, 3]));
    // Food-101N: the noisy list to train on, Food-101's test split beside it to test on.
    let (source, train, test) = load("food101n");
    assert_eq!(
        (source.name, source.num_classes),
        (DatasetName::Food101n, 101)
    );
    assert_eq!(
        (train.labels, test.labels),
        (vec![0, 0, 1, 1, 100], vec![0, 50, 100])
    );
    // Without Food-101 there is nothing to test on: the error says where it looked.
    std::fs::rename(root.join("food-101"), root.join("elsewhere")).unwrap();
    let e = Source::detect(&root.join("food101n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("Food-101's test split"), "{e}");
    assert!(e.contains("food-101/meta/test.txt"), "{e}");
}

/// Decoded, resized and centre-cropped pixels of a release against torchvision's
/// `Resize(16)` + `CenterCrop(16)` (training) and `Resize(24)` + `CenterCrop(16)` (test, with
/// `--test-resize 24`) of Pillow's decode: the fixture's images are random noise
/// in JPEG (the worst case for the decoders' different chroma upsampling, see `images.rs`),
/// averaged down by the resize. Measured max 4, mean 0.29 (training) and max 2, mean 0.39
/// (test; the fixture has one seed); the
/// bounds leave room for the full-size spread `images.rs` measured on noise (max ≤ 25).
#[test]
fn release_pixels_are_torchvisions_eval_transform() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path()).join("animal10n");
    // Training images at Resize(16); test images at --test-resize 24: Resize(24) + CenterCrop(16).
    let options = ImageOptions {
        test_resize: Some(24),
        ..ImageOptions::from_keys(Some(16), None)
    };
    let source = Source::detect(&root).unwrap().with_images(options);
    for (split, folder, resize) in [(Split::Train, "training", 16), (Split::Test, "testing", 24)] {
        let images = source.load(split).unwrap().images;
        let ours = Vec::<u8>::try_from(images.flatten(0, -1)).unwrap();
        let code = "import sys,glob,numpy as np,torch\nfrom PIL import Image\nfrom torchvision.transforms import functional as F\nfor p in sorted(glob.glob(sys.argv[1]+'/'+sys.argv[2]+'/*.jpg')):\n    t=torch.from_numpy(np.array(Image.open(p).convert('RGB'))).permute(2,0,1)\n    sys.stdout.buffer.write(F.center_crop(F.resize(t,int(sys.argv[3]),antialias=True),16).numpy().tobytes())";
        let out = Command::new(python())
            .args(["-c", code, root.to_str().unwrap(), folder])
            .arg(resize.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(ours.len(), out.stdout.len());
        let diffs: Vec<u8> = ours
            .iter()
            .zip(&out.stdout)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let max = *diffs.iter().max().unwrap();
        let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
        println!("{folder}: max {max}, mean {mean:.4}");
        assert!(
            max <= 12 && mean <= 1.0,
            "{folder}: max {max}, mean {mean:.4}"
        );
    }
}

/// Training on a release: images of several sizes need `--image-size`; with it, a run trains
/// and tests on the papers' splits.
#[test]
fn a_release_trains_with_an_image_size() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path()).join("clothing1m");
    let exp = tmp.path().join("exp");
    let out = train_on(&root, &exp, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--image-size") && err.contains("n1.jpg"),
        "{err}"
    );
    let out = train_on(&root, &exp, &["--image-size", "16"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics = &results(&exp)["metrics"];
    assert_eq!(metrics["train_images"], 6);
    assert_eq!(metrics["skipped_train_images"], 0);
}

/// A truncated JPEG stops the load naming it, or with `--bad-images skip` is left out, logged
/// once with its path, and counted in results.json.
#[test]
fn bad_images_fail_or_are_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path());
    // An ImageFolder of the Clothing1M fixture's JPEGs, its truncated n7.jpg among them.
    let folder = tmp.path().join("folder");
    for (split, class, file) in [
        ("train", "a", "images/0/00/n0.jpg"),
        ("train", "a", "images/3/01/n7.jpg"),
        ("train", "b", "images/0/01/n1.jpg"),
        ("train", "b", "images/1/00/n2.jpg"),
        ("test", "a", "images/4/00/c0.jpg"),
        ("test", "b", "images/4/00/c1.jpg"),
    ] {
        let dir = folder.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        let name = Path::new(file).file_name().unwrap();
        std::fs::copy(root.join("clothing1m").join(file), dir.join(name)).unwrap();
    }
    let exp = tmp.path().join("exp");
    let out = train_on(&folder, &exp, &["--image-size", "16"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("train/a/n7.jpg")
            && err.contains("truncated JPEG")
            && err.contains("--bad-images skip"),
        "{err}"
    );
    let out = train_on(
        &folder,
        &exp,
        &["--image-size", "16", "--bad-images", "skip"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches("n7.jpg").count(), 1, "{err}");
    assert!(err.contains("skipped 1 of 4"), "{err}");
    let metrics = &results(&exp)["metrics"];
    assert_eq!(metrics["train_images"], 3);
    assert_eq!(metrics["skipped_train_images"], 1);
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
    let err = stderr(&train_on(&root, &tmp.path().join("exp"), &[]));
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

    // Food-101 beside Food-101N: its class list must be Food-101N's, its test lines name one.
    let food = tmp.path().join("food-101/meta");
    let food101n = tmp.path().join("food101n");
    let (classes, test) = (food.join("classes.txt"), food.join("test.txt"));
    let names = std::fs::read_to_string(&classes).unwrap();
    std::fs::write(&classes, names.replace("food_050", "food_05O")).unwrap();
    let e = catalog::detect(&food101n).unwrap_err().to_string();
    assert!(
        e.contains("food-101/meta/classes.txt: Food-101's classes differ"),
        "{e}"
    );
    std::fs::write(&classes, names).unwrap();
    std::fs::write(&test, "apple_pie/t1\nramen/t9\n").unwrap();
    let e = catalog::detect(&food101n).unwrap_err().to_string();
    assert!(
        e.contains("food-101/meta/test.txt:2: \"ramen\" is not one of Food-101's classes"),
        "{e}"
    );
}

/// ImageNet val in DivideMix's layout (numbered class folders) beside the WebVision root reads
/// as the wnid folders inside it do; a folder that is neither is an error naming it.
#[test]
fn imagenet_val_in_numbered_folders_beside_webvision() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path()).join("webvision");
    let inside = root.join("imagenet/val");
    let beside = tmp.path().join("imagenet/val");
    std::fs::create_dir_all(&beside).unwrap();
    for (wnid, number) in [("n00000000", "0"), ("n00000049", "49"), ("n00000050", "50")] {
        std::fs::rename(inside.join(wnid), beside.join(number)).unwrap();
    }
    std::fs::remove_dir_all(root.join("imagenet")).unwrap();
    let w = read(&root);
    let imagenet = nonzero(w.class_counts(w.split("mini_imagenet_val").unwrap(), true));
    assert_eq!(imagenet, [(0, 2), (49, 1)]);
    let first = w.split("imagenet_val").unwrap()[0];
    assert_eq!(
        w.records[first].locator,
        Path::new("../imagenet/val/0/ILSVRC2012_val_00000001.JPEG")
    );
    std::fs::create_dir(beside.join("cats")).unwrap();
    let e = format!("{:#}", catalog::detect(&root).unwrap_err());
    assert!(e.contains("cats") && e.contains("neither a wnid"), "{e}");
}

/// mini-WebVision is also tested on ImageNet val each epoch. Here ImageNet val holds copies of
/// the two mini-WebVision validation images under their classes' wnids, so its top-1 and top-5
/// must be the validation set's, epoch after epoch.
#[test]
fn mini_webvision_is_also_tested_on_imagenet_val() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path()).join("webvision");
    std::fs::remove_dir_all(root.join("imagenet")).unwrap();
    for (val, wnid) in [
        ("val000001.jpg", "n00000000"),
        ("val000002.jpg", "n00000049"),
    ] {
        let class = root.join("imagenet/val").join(wnid);
        std::fs::create_dir_all(&class).unwrap();
        std::fs::copy(
            root.join("val_images_256").join(val),
            class.join("copy.JPEG"),
        )
        .unwrap();
    }
    let exp = tmp.path().join("exp");
    let (data_dir, exp_dir) = (root.to_str().unwrap(), exp.to_str().unwrap());
    let out = trainer(&[
        "train",
        "--data-dir",
        data_dir,
        "--exp-dir",
        exp_dir,
        "--backbone",
        "none",
        "--image-size",
        "16",
        "--epochs",
        "3",
        "--batch-size",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = common::metrics(&exp);
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["imagenet_acc1"], line["acc1"], "{line}");
        assert_eq!(line["imagenet_acc5"], line["acc5"], "{line}");
    }
    let metrics = &results(&exp)["metrics"];
    assert_eq!(metrics["imagenet_test_images"], 2, "{metrics}");
    assert_eq!(metrics["imagenet_acc1"], metrics["acc1"], "{metrics}");
}

/// `--dataset webvision` takes a WebVision release whole, by the fixture's lists read by hand:
/// 1000 classes; trained on its 5 Google and 2 Flickr images (noisy labels 0, 0, 49, 50, 999
/// and 0, 50), tested on its 3 val images (0, 49, 50) and on ImageNet val's 4 (wnid folders
/// n00000000 twice, n00000049, n00000050); packed so, the pack trains the same. Another
/// dataset's name is refused naming both, and a mini-WebVision pack says to pack again.
#[test]
fn whole_webvision_trains_on_every_image_of_its_thousand_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = fixtures(tmp.path()).join("webvision");
    let source = Source::detect(&root)
        .unwrap()
        .with_images(ImageOptions::from_keys(Some(16), None))
        .as_dataset(Some("webvision"), &root)
        .unwrap();
    assert_eq!(
        (source.name, source.num_classes),
        (DatasetName::Webvision, 1000)
    );
    let [train, test] = [Split::Train, Split::Test].map(|s| source.load(s).unwrap());
    assert_eq!(train.labels, [0, 0, 49, 50, 999, 0, 50]);
    assert_eq!(test.labels, [0, 49, 50]);
    let (name, imagenet) = source.load_also_test().unwrap().unwrap();
    assert_eq!(
        (name.as_str(), imagenet.labels),
        ("imagenet_val", vec![0, 0, 49, 50])
    );

    let whole = ["--dataset", "webvision", "--image-size", "16"];
    let exp = tmp.path().join("exp");
    let out = train_on(&root, &exp, &whole);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = results(&exp);
    assert_eq!(r["config"]["dataset"], "webvision");
    let m = &r["metrics"];
    assert_eq!(m["train_images"], 7, "{m}");
    assert_eq!(m["imagenet_test_images"], 4, "{m}");

    let [pack_dir, mini_dir] = ["pack", "mini"].map(|d| tmp.path().join(d));
    std::fs::create_dir_all(&pack_dir).unwrap();
    std::fs::create_dir_all(&mini_dir).unwrap();
    let pack = pack_dir.join("webvision.nlspack");
    let packed = trainer_pack(&root, &pack, &["--dataset", "webvision"]);
    assert!(packed.status.success(), "{}", stderr(&packed));
    let from_pack = tmp.path().join("exp-pack");
    let out = train_on(pack.parent().unwrap(), &from_pack, &whole);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(results(&from_pack)["metrics"]["train_images"], 7);

    let wrong = train_on(
        &root,
        &tmp.path().join("wrong"),
        &["--dataset", "clothing1m"],
    );
    assert_eq!(wrong.status.code(), Some(2));
    let says = stderr(&wrong);
    assert!(
        says.contains("--dataset says clothing1m") && says.contains("mini-webvision"),
        "{says}"
    );
    let mini = mini_dir.join("mini.nlspack");
    let packed = trainer_pack(&root, &mini, &[]);
    assert!(packed.status.success(), "{}", stderr(&packed));
    let stale = train_on(mini.parent().unwrap(), &tmp.path().join("stale"), &whole);
    assert!(
        stderr(&stale).contains("pack with --dataset webvision"),
        "{}",
        stderr(&stale)
    );
}
