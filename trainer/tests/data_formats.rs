//! Dataset readers against files written by tests/fixtures/make_datasets.py (numpy and the
//! standard library only): every official format, its pixels, labels, ids and class names, and
//! clear errors for damaged files.

mod common;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;
use trainer::data::{DatasetName, Format, Source, Split};

/// The fixture cases in a temporary folder, and the script's expectations for them.
struct Fixtures {
    dir: tempfile::TempDir,
    expected: Value,
}

impl Fixtures {
    /// Writes only `cases` (all when empty): each damage test gets its own fresh copy.
    fn new(cases: &[&str], extra: &[&str]) -> Fixtures {
        let dir = tempfile::tempdir().unwrap();
        let script = common::workspace_root().join("tests/fixtures/make_datasets.py");
        let out = std::process::Command::new(common::python())
            .arg(&script)
            .arg(dir.path())
            .args(extra)
            .args(cases)
            .output()
            .expect("starting the fixture script");
        assert!(
            out.status.success(),
            "fixture script failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join("expected.json")).unwrap();
        let expected = serde_json::from_str(&text).unwrap();
        Fixtures { dir, expected }
    }

    /// The folder holding the case's dataset folder, as a user would pass it to --data-dir.
    fn case(&self, case: &str) -> PathBuf {
        self.dir.path().join(case)
    }
}

fn sha256_hex(t: &tch::Tensor) -> String {
    let bytes = Vec::<u8>::try_from(t.flatten(0, -1)).unwrap();
    hex::encode(Sha256::digest(&bytes))
}

fn json<T: serde::de::DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap()
}

fn check_split(case: &str, source: &Source, split: Split, want: &Value) {
    let what = format!("{case} {split:?}");
    let data = source
        .load(split)
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let labels: Vec<i64> = json(&want["labels"]);
    let shape: Vec<i64> = json(&want["shape"]);
    let n = labels.len() as i64;
    assert_eq!(data.images.size(), [&[n][..], &shape].concat(), "{what}");
    assert_eq!(data.images.kind(), tch::Kind::Uint8, "{what}");
    assert_eq!(data.labels, labels, "{what}");
    assert_eq!(data.ids, (0..n as u64).collect::<Vec<_>>(), "{what}");
    // Single pixels first: a layout mistake (HWC vs CHW, W vs H) shows as a readable mismatch.
    for s in want["samples"].as_array().unwrap() {
        let [i, c, y, x, v]: [i64; 5] = json(s);
        let got = data.images.int64_value(&[i, c, y, x]);
        assert_eq!(got, v, "{what}: pixel [{i}, {c}, {y}, {x}]");
    }
    assert_eq!(sha256_hex(&data.images), want["sha256"], "{what}: pixels");
    let paths: Option<Vec<String>> = want.get("paths").map(json);
    assert_eq!(data.paths, paths, "{what}: paths");
    let cheap = source
        .load_labels(split)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(cheap, labels, "{what}: load_labels");
}

#[test]
fn every_format_reads_what_python_wrote() {
    let fx = Fixtures::new(&[], &[]);
    let cases = fx.expected.as_object().unwrap();
    assert_eq!(cases.len(), 14, "cases: {:?}", cases.keys());
    for (case, want) in cases {
        let root = PathBuf::from(want["path"].as_str().unwrap());
        // Pointing at the parent is what users do; pointing at the folder itself must agree.
        let source = Source::detect(&fx.case(case)).unwrap_or_else(|e| panic!("{case}: {e:#}"));
        let direct = Source::detect(&root).unwrap_or_else(|e| panic!("{case}: {e:#}"));
        assert_eq!(source.root, root, "{case}");
        assert_eq!(direct.root, root, "{case}");
        assert_eq!(source.name.as_str(), want["name"], "{case}");
        assert_eq!(format!("{:?}", source.format), want["format"], "{case}");
        let classes: Vec<String> = json(&want["classes"]);
        assert_eq!(source.num_classes, classes.len(), "{case}");
        assert_eq!(source.class_names, classes, "{case}");
        for (split, key) in [(Split::Train, "train"), (Split::Test, "test")] {
            check_split(case, &source, split, &want[key]);
        }
    }
}

#[test]
fn describe_and_names() {
    let fx = Fixtures::new(&["cifar10-binary", "fashion-gz"], &[]);
    let source = Source::detect(&fx.case("cifar10-binary")).unwrap();
    assert_eq!(
        source.describe(),
        format!(
            "cifar10 in CIFAR binary format at {} (10 classes)",
            fx.case("cifar10-binary/cifar-10-batches-bin").display()
        )
    );
    let fashion = Source::detect(&fx.case("fashion-gz")).unwrap();
    assert!(
        fashion
            .describe()
            .starts_with("fashion-mnist in IDX format"),
        "{}",
        fashion.describe()
    );
    for (s, want) in [
        ("cifar10", DatasetName::Cifar10),
        ("CIFAR-10", DatasetName::Cifar10),
        ("cifar-100", DatasetName::Cifar100),
        ("fmnist", DatasetName::FashionMnist),
        ("fashion_mnist", DatasetName::FashionMnist),
        ("fashion-mnist", DatasetName::FashionMnist),
        ("imagefolder", DatasetName::ImageFolder),
    ] {
        assert_eq!(DatasetName::parse(s).unwrap(), want, "{s}");
    }
    let err = format!("{:#}", DatasetName::parse("mnist").unwrap_err());
    assert!(
        err.contains("cifar10, cifar100, fashion-mnist, imagefolder"),
        "{err}"
    );
    assert_eq!(
        serde_json::to_string(&DatasetName::FashionMnist).unwrap(),
        "\"fashion-mnist\""
    );
    assert_eq!(Format::CifarPython.to_string(), "CIFAR python pickle");
}

/// Write `case`, damage it, and return the error of detecting it and loading the train split.
fn error_after(case: &str, damage: impl Fn(&Path)) -> String {
    let fx = Fixtures::new(&[case], &[]);
    let root = PathBuf::from(fx.expected[case]["path"].as_str().unwrap());
    damage(&root);
    let result = Source::detect(&root).and_then(|s| s.load(Split::Train).map(|_| ()));
    format!("{:#}", result.expect_err("damaged data was accepted"))
}

fn truncate(path: &Path, by: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

fn assert_mentions(err: &str, parts: &[&str]) {
    for p in parts {
        assert!(err.contains(p), "error lacks {p:?}: {err}");
    }
}

/// Rewrite a pickled batch with Python: `code` edits the dict `d`.
fn repickle(path: &Path, code: &str, protocol: u8) {
    let script = format!(
        "import pickle,sys,collections; p=sys.argv[1]; d=pickle.load(open(p,'rb'),encoding='bytes'); {code}; \
         pickle.dump(d,open(p,'wb'),protocol={protocol})"
    );
    common::run_python(&script, &[path.to_str().unwrap()]);
}

#[test]
fn truncated_cifar_binary() {
    // 4 records of 3073 bytes in the fixture; one byte short.
    let err = error_after("cifar10-binary", |r| {
        truncate(&r.join("data_batch_3.bin"), 1)
    });
    assert_mentions(
        &err,
        &[
            "cifar-10-batches-bin/data_batch_3.bin",
            "expected 12292 bytes (4 records of 3073), found 12291",
        ],
    );
    // Cut at a record boundary: only the other batches' size gives it away.
    let err = error_after("cifar10-binary", |r| {
        truncate(&r.join("data_batch_2.bin"), 3073)
    });
    assert_mentions(&err, &["data_batch_2.bin", "expected 4 records", "found 3"]);
}

#[test]
fn cifar100_fine_label_out_of_range() {
    let err = error_after("cifar100-binary", |r| {
        edit(&r.join("train.bin"), |b| b[3074 + 1] = 150) // fine label of record 1
    });
    assert_mentions(
        &err,
        &[
            "cifar-100-binary/train.bin",
            "label 150 of record 1",
            "outside 0..100",
        ],
    );
}

#[test]
fn bad_idx_magic() {
    let err = error_after("fashion-raw", |r| {
        edit(&r.join("train-images-idx3-ubyte"), |b| b[3] = 0x01)
    });
    assert_mentions(
        &err,
        &[
            "train-images-idx3-ubyte",
            "magic is 0x00000801, expected 0x00000803",
        ],
    );
}

#[test]
fn truncated_idx_files() {
    let err = error_after("fashion-gz", |r| {
        truncate(&r.join("train-images-idx3-ubyte.gz"), 100)
    });
    assert_mentions(&err, &["train-images-idx3-ubyte.gz"]);
    // 11 labels after an 8-byte header.
    let err = error_after("fashion-raw", |r| {
        truncate(&r.join("train-labels-idx1-ubyte"), 1)
    });
    assert_mentions(
        &err,
        &["train-labels-idx1-ubyte", "expected 19 bytes", "found 18"],
    );
}

#[test]
fn idx_label_count_mismatch() {
    // A consistent label file for 10 samples, next to 11 images.
    let damage = |r: &Path| {
        edit(&r.join("train-labels-idx1-ubyte"), |b| {
            b[7] = 10;
            b.pop();
        })
    };
    let err = error_after("fashion-raw", damage);
    assert_mentions(
        &err,
        &[
            "train-images-idx3-ubyte: 11 images",
            "train-labels-idx1-ubyte has 10 labels",
        ],
    );
    // The labels-only path reads just the images header, and must notice too.
    let fx = Fixtures::new(&["fashion-raw"], &[]);
    let root = fx.case("fashion-raw/fashion-mnist");
    damage(&root);
    let source = Source::detect(&root).unwrap();
    let err = format!("{:#}", source.load_labels(Split::Train).unwrap_err());
    assert_mentions(&err, &["11 images", "has 10 labels"]);
    assert_eq!(source.load_labels(Split::Test).unwrap().len(), 6);
}

#[test]
fn idx_label_out_of_range() {
    let fx = Fixtures::new(&["fashion-gz"], &[]);
    let root = fx.case("fashion-gz/fashion-mnist");
    let path = root.join("t10k-labels-idx1-ubyte.gz");
    let code = "import gzip,sys; p=sys.argv[1]; b=bytearray(gzip.open(p).read()); b[8+2]=12; open(p,'wb').write(gzip.compress(bytes(b)))";
    common::run_python(code, &[path.to_str().unwrap()]);
    let source = Source::detect(&root).unwrap();
    for err in [
        source.load(Split::Test).err().unwrap(),
        source.load_labels(Split::Test).unwrap_err(),
    ] {
        let err = format!("{err:#}");
        assert_mentions(
            &err,
            &[
                "t10k-labels-idx1-ubyte.gz",
                "label 12 of record 2",
                "outside 0..10",
            ],
        );
    }
}

#[test]
fn pickle_without_data() {
    let err = error_after("cifar10-python-p2", |r| {
        repickle(&r.join("data_batch_1"), "del d[b'data']", 2)
    });
    assert_mentions(
        &err,
        &[
            "cifar-10-batches-py/data_batch_1",
            "no b'data' entry",
            "b'labels'",
        ],
    );
}

#[test]
fn pickle_with_more_labels_than_rows() {
    let err = error_after("cifar10-python-p4", |r| {
        repickle(&r.join("data_batch_4"), "d[b'labels'].append(1)", 4)
    });
    assert_mentions(
        &err,
        &["data_batch_4", "has shape [3, 3072], expected [4, 3072]"],
    );
}

#[test]
fn pickle_with_a_foreign_object_is_refused() {
    let err = error_after("cifar10-python-p2", |r| {
        let code = "d[b'extra']=collections.OrderedDict()";
        repickle(&r.join("data_batch_5"), code, 2)
    });
    assert_mentions(
        &err,
        &["data_batch_5", "collections.OrderedDict", "does not allow"],
    );
}

#[test]
fn mismatched_png_size() {
    let err = error_after("imagefolder", |r| {
        let code = "import struct,zlib,sys\nraw=b''.join(b'\\x00'+bytes(3*5) for _ in range(4))\nc=lambda t,d: struct.pack('>I',len(d))+t+d+struct.pack('>I',zlib.crc32(t+d)&0xffffffff)\nopen(sys.argv[1],'wb').write(b'\\x89PNG\\r\\n\\x1a\\n'+c(b'IHDR',struct.pack('>IIBBBBB',5,4,8,2,0,0,0))+c(b'IDAT',zlib.compress(raw))+c(b'IEND',b''))";
        common::run_python(code, &[r.join("train/cat/odd.png").to_str().unwrap()]);
    });
    // The first image in sorted order is train/ant/img10.png, 6 wide and 8 high.
    assert_mentions(
        &err,
        &["train/cat/odd.png", "5x4", "train/ant/img10.png is 6x8"],
    );
}

#[test]
fn imagefolder_class_sets_must_match() {
    let err = error_after("imagefolder-gray", |r| {
        std::fs::create_dir(r.join("test/c")).unwrap();
        std::fs::remove_dir_all(r.join("test/b")).unwrap();
    });
    assert_mentions(&err, &["only in train/: [\"b\"]", "only in test/: [\"c\"]"]);
}

#[test]
fn empty_or_ambiguous_folders_are_explained() {
    let fx = Fixtures::new(&["cifar10-binary", "fashion-gz"], &[]);
    let both = tempfile::tempdir().unwrap();
    let link = |from: &str, to: &str| {
        std::os::unix::fs::symlink(fx.case(from), both.path().join(to)).unwrap()
    };
    link("cifar10-binary/cifar-10-batches-bin", "a");
    link("fashion-gz/fashion-mnist", "b");
    let err = format!("{:#}", Source::detect(both.path()).unwrap_err());
    assert_mentions(
        &err,
        &[
            "several datasets",
            "cifar10 in CIFAR binary",
            "fashion-mnist in IDX",
            "point --data-dir at one",
        ],
    );

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("cifar-10-binary.tar.gz"), b"").unwrap();
    let err = format!("{:#}", Source::detect(empty.path()).unwrap_err());
    assert_mentions(
        &err,
        &[
            "no dataset found",
            "cifar-10-batches-bin",
            "cifar-100-python",
            "train-images-idx3-ubyte",
            "cifar-10-binary.tar.gz: extract",
        ],
    );
}

#[test]
fn real_fashion_mnist_loads() {
    let dir = Path::new(common::FASHION_MNIST);
    if !dir.exists() {
        eprintln!(
            "skipping: {} is missing (scripts/setup.sh installs it)",
            dir.display()
        );
        return;
    }
    let source = Source::detect(dir).unwrap();
    assert_eq!(
        (source.name, source.format),
        (DatasetName::FashionMnist, Format::Idx)
    );
    for (split, n) in [(Split::Train, 60000), (Split::Test, 10000)] {
        let start = Instant::now();
        let data = source.load(split).unwrap();
        eprintln!("{split:?}: loaded in {:?}", start.elapsed());
        assert_eq!(data.images.size(), [n, 1, 28, 28]);
        for c in 0..10 {
            let count = data.labels.iter().filter(|&&l| l == c).count();
            assert_eq!(count, n as usize / 10, "{split:?} class {c}");
        }
        assert_eq!(source.load_labels(split).unwrap(), data.labels);
    }
}

/// Full-size CIFAR-10 (150 MB of pixels) in each format, timed. Run with `-- --ignored`.
#[test]
#[ignore]
fn full_size_cifar10_loads_quickly() {
    let cases = [
        "cifar10-binary",
        "cifar10-python-py2",
        "cifar10-python-p2",
        "cifar10-python-p4",
        "cifar10-python-p5",
    ];
    let fx = Fixtures::new(&cases, &["--full"]);
    for case in cases {
        let source = Source::detect(&fx.case(case)).unwrap();
        let start = Instant::now();
        let train = source.load(Split::Train).unwrap();
        let took = start.elapsed();
        eprintln!("{case}: train split in {took:?}");
        assert_eq!(train.images.size(), [50000, 3, 32, 32]);
        assert_eq!(
            sha256_hex(&train.images),
            fx.expected[case]["train"]["sha256"]
        );
        assert!(took.as_secs_f64() < 2.0, "{case}: {took:?}");
    }
}

/// ImageNet32/64: labels run 1 … 1000 (a file numbered from 0 is refused), every training batch
/// has the validation file's side, and the class map numbers its lines in order; each error
/// names the file (and line).
#[test]
fn downsampled_imagenet_damage_is_named() {
    let err = error_after("imagenet64-flat", |r| {
        repickle(&r.join("train_data_batch_2"), "d['labels'][1]=0", 4)
    });
    assert_mentions(
        &err,
        &[
            "train_data_batch_2",
            "label 0 of record 1 is outside 1 … 1000",
        ],
    );
    let err = error_after("imagenet64-flat", |r| {
        let code = "d['data']=d['data'][:, :3072].copy()";
        repickle(&r.join("train_data_batch_3"), code, 4)
    });
    assert_mentions(
        &err,
        &[
            "train_data_batch_3",
            "images of 32x32, but the validation file's are 64x64",
        ],
    );
    let err = error_after("imagenet32", |r| {
        edit(&r.join("map_clsloc.txt"), |bytes| {
            let text = String::from_utf8(bytes.clone()).unwrap();
            *bytes = text.replacen(" 2 class_1", " 3 class_1", 1).into_bytes();
        })
    });
    assert_mentions(&err, &["map_clsloc.txt:2", "label \"3\", expected 2"]);
}

/// `--shared-dir`: a split loaded through it is what Python wrote (the same checks as above),
/// written there once and mapped from that file (it shows in /proc/self/maps) by every later
/// load; a dataset file changed since is a new key, loaded again.
#[test]
fn shared_splits_are_written_once_and_mapped() {
    let cases = ["imagenet32", "cifar10-binary", "imagefolder"];
    let fx = Fixtures::new(&cases, &[]);
    let shared = fx.dir.path().join("shared");
    let written = || {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&shared)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "nlssplit"))
            .collect();
        files.sort();
        files
    };
    for case in cases {
        let want = &fx.expected[case];
        let source = Source::detect(&fx.case(case))
            .unwrap()
            .with_shared_dir(Some(shared.clone()));
        for round in 0..2 {
            for (split, key) in [(Split::Train, "train"), (Split::Test, "test")] {
                check_split(&format!("{case} round {round}"), &source, split, &want[key]);
            }
        }
    }
    let files = written();
    assert_eq!(files.len(), 2 * cases.len(), "{files:?}");
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for f in &files {
        assert!(
            maps.contains(f.to_str().unwrap()),
            "{} is not mapped",
            f.display()
        );
    }
    let stamps = |files: &[PathBuf]| {
        let stamp = |f: &PathBuf| std::fs::metadata(f).unwrap().modified().unwrap();
        files.iter().map(stamp).collect::<Vec<_>>()
    };
    let before = stamps(&files);
    // Touch one batch file of the CIFAR folder: its splits get new keys.
    let root = PathBuf::from(fx.expected["cifar10-binary"]["path"].as_str().unwrap());
    let batch = std::fs::File::options()
        .write(true)
        .open(root.join("data_batch_1.bin"))
        .unwrap();
    batch
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    let source = Source::detect(&fx.case("cifar10-binary"))
        .unwrap()
        .with_shared_dir(Some(shared.clone()));
    check_split(
        "touched",
        &source,
        Split::Train,
        &fx.expected["cifar10-binary"]["train"],
    );
    assert_eq!(written().len(), files.len() + 1);
    assert_eq!(stamps(&files), before, "a shared split was written again");
}

/// Two ranks training on an image folder held in memory, through `--shared-dir` and without:
/// the same metrics, and each split written once for both ranks (one "written" log line per
/// split across the two ranks' logs; the other rank waited and mapped it).
#[test]
fn two_ranks_share_one_written_split() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::folders::jpeg_folder(tmp.path(), 4, 24);
    let shared = tmp.path().join("shared");
    let flags = ["--epochs", "1", "--image-size", "16", "--batch-size", "4"];
    let run = |name: &str, extra: &[&str]| {
        let exp = tmp.path().join(name);
        let args = common::folders::run_args(&data, &exp, false, &[&flags[..], extra].concat());
        (common::trainer_ranks(&args, 2), exp)
    };
    let (outputs, with) = run("shared", &["--shared-dir", shared.to_str().unwrap()]);
    let (_, without) = run("private", &[]);
    assert_eq!(
        common::metrics_without_time(&with),
        common::metrics_without_time(&without)
    );
    let logs: String = outputs.iter().map(common::stderr).collect();
    let writes = logs
        .matches("split written for the node's processes to share")
        .count();
    assert_eq!(writes, 2, "{logs}");
}
