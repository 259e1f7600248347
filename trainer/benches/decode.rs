//! Benchmark: the ImageNet training input per image — decode a JPEG of ImageNet's typical size,
//! RandomResizedCrop to 224, flip — in images/s per core: ours (libjpeg-turbo regions + fast_image_resize on
//! one thread per core) against torchvision's DataLoader with PIL (one worker per core) on the
//! same files in the same run (target ≥ 3×). Also the peak RSS of each side, and ours reading
//! the same files from a pack: as they are, as tiles (`--encoding tiles`: the same pixels,
//! crops decoded from their tiles only) and re-encoded at a maximum side of 320. The files are
//! written by Pillow (`decode_files.py`: 500×375 photographs-like pictures, quality 90, 4:2:0).
//! Run: `cargo bench -p trainer --bench decode` (after scripts/setup.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::reference_json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use trainer::augment::{AugmentConfig, ViewKey};
use trainer::data::files::Files;
use trainer::data::pack::encode::{Encoding, Storage};
use trainer::data::pack::write;
use trainer::data::resident::BadImages;
use trainer::data::stream::{Streamed, BATCHES_AHEAD};
use trainer::data::Source;

const FILES: usize = 512;
const EPOCHS: usize = 3;
const SIZE: usize = 224;
const BATCH: usize = 64;

fn write_files(dir: &Path) -> Vec<PathBuf> {
    let args = [dir.to_str().unwrap().to_string(), FILES.to_string()];
    let paths = reference_json("decode_files.py", &args, 1).unwrap();
    let paths = paths.as_array().unwrap().iter();
    paths.map(|p| PathBuf::from(p.as_str().unwrap())).collect()
}

/// Images/s over `EPOCHS - 1` epochs after a warm-up one: the training loop's own reader
/// (`--stream`: decode, crop as torchvision draws it, resize, flip, on `cores` threads), batches of
/// 64 as the reference's, the next batches decoded while this one is taken. `names` are the
/// samples' locators in `files`.
fn ours(files: Files, names: Vec<String>, cores: usize) -> f64 {
    let count = names.len();
    let view = AugmentConfig {
        size: SIZE as i64,
        crop_scale: (0.08, 1.0),
        crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
        flip_p: 0.5,
        ..AugmentConfig::default()
    };
    let reader =
        Streamed::new(files, names, &view, BadImages::Fail, Default::default()).with_workers(cores);
    let batches: Vec<Vec<i64>> = (0..count as i64)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(<[i64]>::to_vec)
        .collect();
    let key = |epoch: usize, step: usize| ViewKey {
        seed: 0,
        epoch: epoch as u64,
        step: step as u64,
        rank: 0,
        view: 0,
    };
    let epoch = |e: usize| {
        for (step, indices) in batches.iter().enumerate() {
            let batch = reader.batch(indices, key(e, step), 0).unwrap();
            let ahead = batches
                .iter()
                .enumerate()
                .skip(step + 1)
                .take(BATCHES_AHEAD);
            for (later, next) in ahead {
                reader.prefetch(next, key(e, later), 0);
            }
            assert_eq!(batch.size()[0], indices.len() as i64);
        }
    };
    epoch(0);
    let start = Instant::now();
    for e in 1..EPOCHS {
        epoch(e);
    }
    (count * (EPOCHS - 1)) as f64 / start.elapsed().as_secs_f64()
}

/// The files as an ImageFolder's training split (hard links), packed with `storage`: the
/// pack's files and the samples' locators in it.
fn packed(dir: &Path, files: &[PathBuf], storage: Storage) -> (Files, Vec<String>) {
    let folder = dir.join("folder");
    if !folder.exists() {
        for split in ["train", "test"] {
            std::fs::create_dir_all(folder.join(split).join("x")).unwrap();
        }
        for f in files {
            std::fs::hard_link(f, folder.join("train/x").join(f.file_name().unwrap())).unwrap();
        }
        std::fs::hard_link(&files[0], folder.join("test/x/0.jpg")).unwrap();
    }
    let out = dir.join(format!("pack-{:?}", storage.encoding));
    std::fs::create_dir_all(&out).unwrap();
    let source = Source::detect(&folder).unwrap();
    write::pack(&source, &out.join("bench.nlspack"), storage).unwrap();
    let names = files
        .iter()
        .map(|f| format!("train/x/{}", f.file_name().unwrap().to_string_lossy()))
        .collect();
    (Source::detect(&out).unwrap().files(), names)
}

/// This process's peak resident memory in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

/// Images/s and peak RSS (MiB) of the reference.
fn torchvision(list: &Path, cores: usize) -> (f64, f64) {
    let args = [list.to_str().unwrap().to_string(), EPOCHS.to_string()];
    let r = reference_json("decode_torchvision.py", &args, cores).unwrap();
    (
        r["images_per_s"].as_f64().unwrap(),
        r["peak_rss_mib"].as_f64().unwrap(),
    )
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path());
    let names = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let rust = ours(Files::Folder(dir.path().into()), names, cores);
    let rss = peak_rss_mib();
    let storage = |encoding, max_side| Storage {
        encoding,
        max_side,
        quality: 90,
    };
    let (pack, names) = packed(dir.path(), &files, storage(Encoding::File, None));
    let from_pack = ours(pack, names, cores);
    let (pack, names) = packed(dir.path(), &files, storage(Encoding::Tiles, None));
    let tiled = ours(pack, names, cores);
    let (pack, names) = packed(dir.path(), &files, storage(Encoding::Jpeg, Some(320)));
    let reencoded = ours(pack, names, cores);
    let (reference, reference_rss) = torchvision(&dir.path().join("files.txt"), cores);
    println!(
        "decode + RandomResizedCrop({SIZE}) + flip, {FILES} JPEGs of 500x375 (q90), {cores} cores"
    );
    println!("| implementation | images/s | per core | peak RSS MiB |");
    println!("|---|---:|---:|---:|");
    let per = |r: f64| r / cores as f64;
    println!(
        "| nls (libjpeg-turbo regions + fast_image_resize, {cores} threads) | {rust:.0} | {:.0} | {rss:.0} |",
        per(rust)
    );
    println!(
        "| nls, the same files from a pack | {from_pack:.0} | {:.0} | — |",
        per(from_pack)
    );
    println!(
        "| nls, the same files from a pack of tiles (the same pixels) | {tiled:.0} | {:.0} | — |",
        per(tiled)
    );
    println!(
        "| nls, a pack re-encoded at --max-side 320 (q90, tiles) | {reencoded:.0} | {:.0} | — |",
        per(reencoded)
    );
    println!(
        "| torchvision + PIL + DataLoader ({cores} workers) | {reference:.0} | {:.0} | {reference_rss:.0} |",
        per(reference)
    );
    println!("ratio: {:.2}x (target >= 3x)", rust / reference);
    println!(
        "ratio from a pack: {:.2}x as it is, {:.2}x tiled",
        from_pack / reference,
        tiled / reference
    );
    let what = "JPEG decode + RandomResizedCrop 224 + flip vs torchvision + PIL DataLoader";
    common::bench::summary("decode", what, rust / reference, ">= 3").unwrap();
    let what = "the same from a pack of tiles (--encoding tiles, the same pixels)";
    common::bench::summary("decode", what, tiled / reference, ">= 3").unwrap();
}
