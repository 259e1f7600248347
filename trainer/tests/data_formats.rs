//! Dataset readers against files written by tests/fixtures/make_datasets.py (numpy and the
//! standard library only): every official format, its pixels, labels, ids and class names,
//! and clear errors for damaged files.

mod common;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use trainer::data::{Source, Split};

fn make_fixtures() -> (tempfile::TempDir, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let script = common::workspace_root().join("tests/fixtures/make_datasets.py");
    let out = std::process::Command::new(common::python())
        .arg(&script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fixture script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("expected.json")).unwrap())
            .unwrap();
    (dir, expected)
}

fn sha256_hex(t: &tch::Tensor) -> String {
    let bytes = Vec::<u8>::try_from(t.flatten(0, -1)).unwrap();
    hex::encode(Sha256::digest(&bytes))
}

#[test]
fn every_format_reads_what_python_wrote() {
    let (_dir, expected) = make_fixtures();
    for (case, want) in expected.as_object().unwrap() {
        let path = PathBuf::from(want["path"].as_str().unwrap());
        // Point at the parent folder, as a user would: detection must find the dataset inside.
        let source =
            Source::detect(path.parent().unwrap()).unwrap_or_else(|e| panic!("{case}: {e:#}"));
        assert_eq!(source.root, path, "{case}");
        assert_eq!(source.name.as_str(), want["name"], "{case}");
        assert_eq!(format!("{:?}", source.format), want["format"], "{case}");
        let classes: Vec<String> = serde_json::from_value(want["classes"].clone()).unwrap();
        assert_eq!(source.class_names, classes, "{case}");
        for (split, key) in [(Split::Train, "train"), (Split::Test, "test")] {
            let data = source.load(split).unwrap();
            let labels: Vec<i64> = serde_json::from_value(want[key]["labels"].clone()).unwrap();
            let shape: Vec<i64> = serde_json::from_value(want[key]["shape"].clone()).unwrap();
            assert_eq!(
                data.images.size(),
                [&[labels.len() as i64][..], &shape].concat(),
                "{case} {key}"
            );
            assert_eq!(data.images.kind(), tch::Kind::Uint8);
            assert_eq!(data.labels, labels, "{case} {key}");
            assert_eq!(data.ids, (0..labels.len() as u64).collect::<Vec<_>>());
            assert_eq!(
                sha256_hex(&data.images),
                want[key]["sha256"],
                "{case} {key}: pixels differ"
            );
            assert_eq!(source.load_labels(split).unwrap(), labels, "{case} {key}");
        }
    }
}

#[test]
fn imagefolder_paths_follow_torchvision_order() {
    let (dir, _) = make_fixtures();
    let source = Source::detect(&dir.path().join("folder")).unwrap();
    let train = source.load(Split::Train).unwrap();
    let paths = train.paths.unwrap();
    assert_eq!(paths[0], "train/ant/img000.png");
    assert_eq!(paths[4], "train/bee/img001.png");
    assert_eq!(paths.len(), 9);
}

/// Copy a fixture, damage it with `damage`, and return the loader's error for the train split.
fn error_after(case_dir: &str, damage: impl Fn(&Path)) -> String {
    let (dir, _) = make_fixtures();
    let root = dir.path().join(case_dir);
    damage(&root);
    let result = Source::detect(&root).and_then(|s| s.load(Split::Train).map(|_| ()));
    format!("{:#}", result.expect_err("damaged data was accepted"))
}

fn truncate(path: &Path, by: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}

#[test]
fn damaged_files_give_errors_naming_file_and_problem() {
    let err = error_after("c10bin", |r| {
        truncate(&r.join("cifar-10-batches-bin/data_batch_3.bin"), 1)
    });
    assert!(
        err.contains("data_batch_3.bin")
            && err.contains("3073-byte records")
            && err.contains("12291 bytes"),
        "{err}"
    );

    let err = error_after("c10bin", |r| {
        truncate(&r.join("cifar-10-batches-bin/data_batch_2.bin"), 3073)
    });
    assert!(
        err.contains("data_batch_2.bin")
            && err.contains("expected 4 records")
            && err.contains("found 3"),
        "{err}"
    );

    let err = error_after("fmnist-raw", |r| {
        let p = r.join("fashion-mnist/train-images-idx3-ubyte");
        let mut b = std::fs::read(&p).unwrap();
        b[3] = 0x01;
        std::fs::write(&p, b).unwrap();
    });
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("magic is 0x00000801"),
        "{err}"
    );

    let err = error_after("fmnist-gz", |r| {
        truncate(&r.join("fashion-mnist/train-images-idx3-ubyte.gz"), 100)
    });
    assert!(err.contains("train-images-idx3-ubyte.gz"), "{err}");

    let err = error_after("fmnist-raw", |r| {
        truncate(&r.join("fashion-mnist/train-labels-idx1-ubyte"), 1)
    });
    assert!(
        err.contains("train-labels-idx1-ubyte")
            && err.contains("expected 19 bytes")
            && err.contains("found 18"),
        "{err}"
    );

    let err = error_after("c10py2", |r| {
        let code = "import pickle,sys; p=sys.argv[1]; d=pickle.load(open(p,'rb'),encoding='bytes'); del d[b'data']; pickle.dump(d,open(p,'wb'),protocol=2)";
        common::run_python(
            code,
            &[r.join("cifar-10-batches-py/data_batch_1").to_str().unwrap()],
        );
    });
    assert!(
        err.contains("data_batch_1") && err.contains("no 'data' array"),
        "{err}"
    );

    let err = error_after("c10py4", |r| {
        let code = "import pickle,sys; p=sys.argv[1]; d=pickle.load(open(p,'rb'),encoding='bytes'); d[b'labels'].append(1); pickle.dump(d,open(p,'wb'),protocol=4)";
        common::run_python(
            code,
            &[r.join("cifar-10-batches-py/data_batch_4").to_str().unwrap()],
        );
    });
    assert!(
        err.contains("data_batch_4") && err.contains("expected [4, 3072]"),
        "{err}"
    );

    let err = error_after("folder", |r| {
        std::fs::copy(
            r.join("base_dataset/train/ant/img000.png"),
            r.join("base_dataset/train/cat/odd.png"),
        )
        .unwrap();
        let code = "import struct,zlib,sys\nraw=b''.join(b'\\x00'+bytes(3*5) for _ in range(4))\nc=lambda t,d: struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d)&0xffffffff)\nopen(sys.argv[1],'wb').write(b'\\x89PNG\\r\\n\\x1a\\n'+c(b'IHDR',struct.pack('>IIBBBBB',5,4,8,2,0,0,0))+c(b'IDAT',zlib.compress(raw))+c(b'IEND',b''))";
        common::run_python(
            code,
            &[r.join("base_dataset/train/cat/odd.png").to_str().unwrap()],
        );
    });
    assert!(
        err.contains("odd.png") && err.contains("5x4") && err.contains("6x8"),
        "{err}"
    );

    let err = error_after("c100bin", |r| {
        let p = r.join("cifar-100-binary/train.bin");
        let mut b = std::fs::read(&p).unwrap();
        b[1] = 150; // fine label of the first record
        std::fs::write(&p, b).unwrap();
    });
    assert!(
        err.contains("label 150") && err.contains("outside 0..100"),
        "{err}"
    );
}

#[test]
fn real_fashion_mnist_loads() {
    if !Path::new(common::FASHION_MNIST).exists() {
        eprintln!(
            "skipping: {} is missing (scripts/setup.sh installs it)",
            common::FASHION_MNIST
        );
        return;
    }
    let source = Source::detect(Path::new(common::FASHION_MNIST)).unwrap();
    for (split, n) in [(Split::Train, 60000), (Split::Test, 10000)] {
        let data = source.load(split).unwrap();
        assert_eq!(data.images.size(), [n, 1, 28, 28]);
        let per_class = n as usize / 10;
        for c in 0..10 {
            assert_eq!(data.labels.iter().filter(|&&l| l == c).count(), per_class);
        }
    }
}

#[test]
fn empty_or_ambiguous_folders_are_explained() {
    let (dir, _) = make_fixtures();
    let both = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("c10bin/cifar-10-batches-bin"),
        both.path().join("a"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("fmnist-gz/fashion-mnist"),
        both.path().join("b"),
    )
    .unwrap();
    let err = format!("{:#}", Source::detect(both.path()).unwrap_err());
    assert!(err.contains("several datasets"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = format!("{:#}", Source::detect(empty.path()).unwrap_err());
    assert!(
        err.contains("no dataset found") && err.contains("cifar-10-batches-bin"),
        "{err}"
    );
}
