//! Packs (`trainer pack`, `trainer::data::pack`): a run on a pack is the run on the folder it was
//! packed from (same metrics, streamed or in memory); packing resumes after a crash, keeping the
//! complete rows and redoing a damaged one, to the byte-identical pack; a damaged pack is refused
//! naming what is wrong; a real-world release packs with its second test set.

mod common;

use common::folders::{jpeg_folder, run_args};
use common::{metrics_without_time, results, stderr, trainer, trainer_pack, write_fixtures};
use std::path::{Path, PathBuf};
use std::process::Output;
use trainer::data::image::tiles::Tiles;
use trainer::data::pack::layout::{Prefix, Row, PREFIX, ROW};
use trainer::data::pack::Pack;

/// Packs `data` into `dir/<name>.nlspack`, with `flags`.
fn pack(data: &Path, dir: &Path, name: &str, flags: &[&str]) -> (Output, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("{name}.nlspack"));
    (trainer_pack(data, &out, flags), out)
}

fn packed(data: &Path, dir: &Path, flags: &[&str]) -> PathBuf {
    let (output, out) = pack(data, dir, "data", flags);
    assert!(output.status.success(), "{}", stderr(&output));
    out
}

/// A run on a pack of the files as they are, and on a pack of them as tiles
/// (`--encoding tiles`: every JPEG restarting at each row of MCUs or closer), has the folder's
/// metrics exactly, streamed or in memory: the same pixels.
#[test]
fn a_pack_trains_as_its_folder_does() {
    let tmp = tempfile::tempdir().unwrap();
    let data = jpeg_folder(tmp.path(), 6, 40);
    let run = |data: &Path, exp: &str, stream: bool| {
        let exp = tmp.path().join(format!("{exp}-{stream}"));
        let flags = ["--epochs", "2", "--image-size", "24", "--batch-size", "4"];
        let out = common::run(&run_args(data, &exp, stream, &flags));
        assert!(out.status.success(), "{}", stderr(&out));
        exp
    };
    let folder = [true, false].map(|stream| run(&data, "folder", stream));
    for encoding in ["file", "tiles"] {
        let pack_dir = tmp.path().join(encoding);
        let pack = Pack::open(&packed(&data, &pack_dir, &["--encoding", encoding])).unwrap();
        let tiled = (0..pack.rows()).filter(|&i| Tiles::parse(pack.bytes(i).unwrap()).is_some());
        let expected = if encoding == "tiles" { pack.rows() } else { 0 };
        assert_eq!(tiled.count() as u64, expected, "{encoding}: tiled samples");
        let info = trainer(&["data-info", "--data-dir", pack_dir.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&info.stdout);
        assert!(
            said.contains("in pack format") && said.contains("train: 12 images"),
            "{said}"
        );
        for (folder, stream) in folder.iter().zip([true, false]) {
            let pack = run(&pack_dir, encoding, stream);
            assert_eq!(metrics_without_time(folder), metrics_without_time(&pack));
            assert_eq!(
                results(folder)["metrics"]["acc1"],
                results(&pack)["metrics"]["acc1"]
            );
        }
    }
}

/// The rows of the pack at `path`, and where row `i` is.
fn rows(path: &Path) -> (u64, impl Fn(u64) -> usize) {
    let bytes = std::fs::read(path).unwrap();
    let layout = Prefix::decode(&bytes).unwrap().layout();
    (layout.rows, move |i| layout.row_at(i))
}

/// A pack cut short as a crash would leave it: rows `from..` unwritten, data after row
/// `from − 1` gone, no checksum yet. Returns the partial's path.
fn crashed_partial(full: &Path, from: u64) -> PathBuf {
    let mut bytes = std::fs::read(full).unwrap();
    let (n, row_at) = rows(full);
    let last = Row::decode(&bytes[row_at(from - 1)..][..ROW]);
    for i in from..n {
        bytes[row_at(i)..][..ROW].fill(0);
    }
    bytes[32..PREFIX].fill(0);
    bytes.truncate((last.data_off + last.data_len) as usize);
    let partial = PathBuf::from(format!("{}.partial", full.display()));
    std::fs::write(&partial, &bytes).unwrap();
    partial
}

#[test]
fn packing_resumes_after_a_crash_to_the_same_pack() {
    let tmp = tempfile::tempdir().unwrap();
    let data = jpeg_folder(tmp.path(), 8, 40);
    let full = packed(&data, &tmp.path().join("full"), &[]);
    let reference = std::fs::read(&full).unwrap();
    // Cut after 5 rows: 5 are kept, the rest packed again.
    let redo = tmp.path().join("redo");
    std::fs::create_dir_all(&redo).unwrap();
    let target = redo.join("data.nlspack");
    std::fs::copy(&full, &target).unwrap();
    crashed_partial(&target, 5);
    std::fs::remove_file(&target).unwrap();
    let (out, _) = pack(&data, &redo, "data", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("packed 20 images (5 kept"), "{said}");
    assert!(
        std::fs::read(&target).unwrap() == reference,
        "the resumed pack differs"
    );
    // A damaged sample among the rows written: packing goes on from it.
    std::fs::copy(&full, &target).unwrap();
    let partial = crashed_partial(&target, 7);
    std::fs::remove_file(&target).unwrap();
    let mut bytes = std::fs::read(&partial).unwrap();
    let (_, row_at) = rows(&full);
    let third = Row::decode(&bytes[row_at(3)..][..ROW]);
    bytes[third.data_off as usize + 10] ^= 0xFF;
    std::fs::write(&partial, &bytes).unwrap();
    let (out, _) = pack(&data, &redo, "data", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(3 kept"));
    assert!(
        std::fs::read(&target).unwrap() == reference,
        "the repaired pack differs"
    );
    // A partial of another dataset is not resumed into this one.
    let other = jpeg_folder(&tmp.path().join("other"), 3, 40);
    let x = redo.join("x.nlspack");
    std::fs::copy(&full, &x).unwrap();
    crashed_partial(&x, 5);
    std::fs::remove_file(&x).unwrap();
    let (out, _) = pack(&other, &redo, "x", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("partial pack of another dataset"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_damaged_pack_is_refused_naming_what() {
    let tmp = tempfile::tempdir().unwrap();
    let data = jpeg_folder(tmp.path(), 2, 40);
    let full = packed(&data, &tmp.path().join("full"), &[]);
    let reference = std::fs::read(&full).unwrap();
    let (_, row_at) = rows(&full);
    let first = Row::decode(&reference[row_at(0)..][..ROW]);
    let damaged = |at: usize, len: Option<usize>| {
        let mut bytes = reference.clone();
        bytes[at] ^= 0x55;
        bytes.truncate(len.unwrap_or(bytes.len()));
        std::fs::write(&full, &bytes).unwrap();
    };
    damaged(first.data_off as usize + 3, None);
    let pack = Pack::open(&full).unwrap();
    let e = format!("{:#}", pack.bytes(0).unwrap_err());
    assert!(
        e.contains("row 0") && e.contains("fails its checksum"),
        "{e}"
    );
    let exp = tmp.path().join("exp");
    let out = common::run(&run_args(
        full.parent().unwrap(),
        &exp,
        false,
        &["--image-size", "24"],
    ));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("fails its checksum"),
        "{}",
        stderr(&out)
    );
    damaged(row_at(1), None);
    let e = format!("{:#}", Pack::open(&full).unwrap_err());
    assert!(e.contains("header or index fails its checksum"), "{e}");
    damaged(0, None);
    let e = format!("{:#}", Pack::open(&full).unwrap_err());
    assert!(e.contains("not a pack"), "{e}");
    damaged(first.data_off as usize, Some(row_at(1)));
    let e = format!("{:#}", Pack::open(&full).unwrap_err());
    assert!(e.contains("cut short"), "{e}");
}

/// mini-WebVision's release packs with its training split, its test split and ImageNet val.
#[test]
fn a_release_packs_with_its_second_test_set() {
    let tmp = tempfile::tempdir().unwrap();
    let root = write_fixtures("real_world.py", tmp.path()).join("webvision");
    let dir = tmp.path().join("pack");
    let path = packed(&root, &dir, &[]);
    let pack = Pack::open(&path).unwrap();
    let splits: Vec<(&str, u64)> = (pack.header.splits.iter())
        .map(|(n, [a, b])| (n.as_str(), b - a))
        .collect();
    assert_eq!(
        splits,
        [("train", 3), ("test", 2), ("mini_imagenet_val", 3)]
    );
    assert_eq!(pack.header.classes.len(), 50);
    let exp = tmp.path().join("exp");
    let (d, e) = (dir.to_str().unwrap(), exp.to_str().unwrap());
    let out = trainer(&[
        "train",
        "--data-dir",
        d,
        "--exp-dir",
        e,
        "--backbone",
        "none",
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "3",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(results(&exp)["metrics"]["imagenet_test_images"], 3);
}

/// `--encoding raw|jpeg --max-side 24` on pictures of 40–49 pixels a side: the raw pack holds
/// Pillow's `resize(BILINEAR)` of each file to a longer side of 24 (within 1 grey level, the
/// bound of our resampler against PIL's in `images.rs`), and the JPEG pack decodes to exactly
/// what Pillow's `save(quality=80)` of those pixels decodes to (the same libjpeg-turbo), its
/// restart markers (tiles) changing no pixel. A run
/// trains on the raw pack; `--max-side` without re-encoding and a resume under another
/// encoding are refused.
#[test]
fn re_encoded_packs_hold_the_fitted_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    let data = jpeg_folder(tmp.path(), 3, 40);
    let pack_with = |name: &str, flags: &[&str]| pack(&data, &tmp.path().join(name), "data", flags);
    let fit = ["--max-side", "24"];
    let (raw_out, raw) = pack_with("raw", &[&["--encoding", "raw"][..], &fit].concat());
    assert!(raw_out.status.success(), "{}", stderr(&raw_out));
    let quality = ["--encoding", "jpeg", "--quality", "80"];
    let (jpeg_out, jpeg) = pack_with("jpeg", &[&quality[..], &fit].concat());
    assert!(jpeg_out.status.success(), "{}", stderr(&jpeg_out));
    let (raw, jpeg) = (Pack::open(&raw).unwrap(), Pack::open(&jpeg).unwrap());
    let mut jobs = Vec::new();
    for (k, class) in ["a", "b"].iter().enumerate() {
        for i in 0..3 {
            let locator = format!("train/{class}/{i:04}.jpg");
            let row = raw.find(&locator).unwrap();
            let ours = trainer::data::image::decode(raw.bytes(row).unwrap()).unwrap();
            assert_eq!((ours.channels, ours.width.max(ours.height)), (3, 24));
            let stem = tmp.path().join(format!("{k}-{i}"));
            std::fs::write(stem.with_extension("ours"), &ours.pixels).unwrap();
            jobs.push(serde_json::json!({
                "file": data.join(&locator), "size": [ours.width, ours.height], "stem": stem,
            }));
            let stored = jpeg.bytes(jpeg.find(&locator).unwrap()).unwrap();
            assert!(Tiles::parse(stored).is_some(), "{locator}: not tiles");
            let decoded = trainer::data::image::decode(stored);
            std::fs::write(stem.with_extension("jpeg"), decoded.unwrap().pixels).unwrap();
        }
    }
    let code = "import sys,json,io\nfrom PIL import Image\nfor j in json.loads(sys.argv[1]):\n  s=tuple(j['size'])\n  Image.open(j['file']).convert('RGB').resize(s,Image.BILINEAR).save(j['stem']+'.pillow','PPM')\n  b=io.BytesIO()\n  Image.frombytes('RGB',s,open(j['stem']+'.ours','rb').read()).save(b,'JPEG',quality=80)\n  open(j['stem']+'.trip','wb').write(Image.open(b).tobytes())";
    common::run_python(code, &[&serde_json::to_string(&jobs).unwrap()]);
    for job in &jobs {
        let stem = PathBuf::from(job["stem"].as_str().unwrap());
        let read = |ext: &str| std::fs::read(stem.with_extension(ext)).unwrap();
        let ppm = read("pillow");
        let pillow = &ppm[ppm.len() - read("ours").len()..];
        let worst = read("ours")
            .iter()
            .zip(pillow)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(
            worst <= Some(1),
            "{stem:?}: resized by up to {worst:?} from Pillow"
        );
        assert!(
            read("jpeg") == read("trip"),
            "{stem:?}: the JPEG differs from Pillow's"
        );
    }
    let exp = tmp.path().join("exp");
    let flags = ["--epochs", "1", "--image-size", "16", "--batch-size", "4"];
    let pack_dir = tmp.path().join("raw");
    let out = common::run(&run_args(&pack_dir, &exp, true, &flags));
    assert!(out.status.success(), "{}", stderr(&out));
    let (refused, _) = pack_with("file", &fit);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("add --encoding jpeg or --encoding raw"));
    let raw_path = pack_dir.join("data.nlspack");
    crashed_partial(&raw_path, 2);
    std::fs::remove_file(&raw_path).unwrap();
    let (other, _) = pack_with("raw", &[&["--encoding", "jpeg"][..], &fit].concat());
    assert_eq!(other.status.code(), Some(2));
    assert!(stderr(&other).contains("a partial pack of another dataset, order or encoding"));
}
