//! Benchmark: one linear-probe configuration on CPU, `trainer evaluate --weights freeze` (no
//! augmentation, so the backbone runs once and the head trains on cached features) against the
//! reference loop (`evaluate_torch.py`), which runs the frozen backbone on every batch of every
//! epoch and on the test split after every epoch. Same thread count, same run.
//!
//! Configuration: ResNet-18 (CIFAR stem, standard width, random initialization, frozen), the
//! reference head, CE on clean labels, SGD momentum 0.9 with a cosine schedule, batch 256, the
//! first N training and T test images of the real Fashion-MNIST. Both sides are timed from
//! process start to exit (data loading included), in wall and in CPU seconds (the latter less
//! disturbed by other jobs on a shared machine); the table's ratio is reference / ours, the
//! speed-up of the feature cache, which grows with the number of epochs.
//!
//! Run: `cargo bench -p trainer --bench evaluate` (after scripts/setup.sh). `NLS_BENCH_EPOCHS`
//! (default 3), `NLS_BENCH_TRAIN` (default 1280) and `NLS_BENCH_TEST` (default 512) set the
//! sizes; the defaults take 20–60 s a side on 2 cores.

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{Context, Result};
use common::bench::{checked, cpu_model, env_count, summary, threads, timed, Timing};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BATCH: usize = 256;

struct Sizes {
    epochs: usize,
    train: usize,
    test: usize,
}

/// `trainer evaluate` on the cached-feature path: its timing and results.json.
fn ours(exp: &Path, s: &Sizes, cores: usize) -> Result<(Timing, Value)> {
    let bin = env!("CARGO_BIN_EXE_trainer");
    let mut cmd = Command::new(bin);
    threads(&mut cmd, cores)
        .arg("evaluate")
        .args(["--data-dir", common::FASHION_MNIST])
        .args(["--exp-dir".as_ref(), exp.as_os_str()])
        .args([
            "--backbone",
            "none",
            "--arch",
            "resnet18",
            "--stem",
            "cifar",
        ])
        .args(["--width", "64", "--weights", "freeze", "--augment", "false"])
        .args(["--loss", "ce", "--kind", "symmetric", "--noise", "0"])
        .args(["--epochs", &s.epochs.to_string()])
        .args(["--batch-size", &BATCH.to_string()])
        .args(["--train-samples", &s.train.to_string()])
        .args(["--test-samples", &s.test.to_string()])
        .args(["--stopping", "0", "--backend", "gloo"]);
    let (timing, out) = timed(|| cmd.output().with_context(|| format!("starting {bin}")))?;
    checked("trainer evaluate", out)?;
    let path = exp.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let results = serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    Ok((timing, results))
}

/// The reference loop: its timing and JSON.
fn reference(s: &Sizes, cores: usize) -> Result<(Timing, Value)> {
    let root = common::workspace_root();
    let script = root.join("trainer/benches/evaluate_torch.py");
    let mut cmd = Command::new(common::python());
    threads(&mut cmd, cores)
        .env("PYTHONPATH", root.join("tests/python"))
        .arg(&script)
        .args(["--data-dir", common::FASHION_MNIST])
        .args(["--train-samples", &s.train.to_string()])
        .args(["--test-samples", &s.test.to_string()])
        .args(["--epochs", &s.epochs.to_string()])
        .args(["--batch-size", &BATCH.to_string()])
        .args(["--threads", &cores.to_string()]);
    let (timing, out) = timed(|| {
        cmd.output()
            .with_context(|| format!("starting {}", common::python().display()))
    })?;
    let stdout = checked(&script.display().to_string(), out)?;
    let r = serde_json::from_str(stdout.trim()).with_context(|| format!("parsing {stdout:?}"))?;
    Ok((timing, r))
}

fn main() -> Result<()> {
    let s = Sizes {
        epochs: env_count("NLS_BENCH_EPOCHS", 3)?,
        train: env_count("NLS_BENCH_TRAIN", 1280)?,
        test: env_count("NLS_BENCH_TEST", 512)?,
    };
    anyhow::ensure!(
        s.epochs > 0 && s.train >= BATCH && s.test > 0,
        "need at least 1 epoch, {BATCH} training images and 1 test image"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;

    let (ours_t, results) = ours(&tmp.path().join("exp"), &s, cores)?;
    let (ref_t, r) = reference(&s, cores)?;

    println!(
        "Linear probe, frozen ResNet-18 (CIFAR stem, width 64, random init) + reference head, \
         CE, SGD momentum 0.9 cosine, batch {BATCH}, {} epochs, {} train / {} test images of \
         Fashion-MNIST (28×28), fp32 CPU",
        s.epochs, s.train, s.test
    );
    println!("| | ours s | reference s | reference / ours |");
    println!("|---|---:|---:|---:|");
    for (row, a, b) in [
        ("wall, process start to exit", ours_t.wall, ref_t.wall),
        ("CPU (user + system)", ours_t.cpu, ref_t.cpu),
    ] {
        println!("| {row} | {a:.1} | {b:.1} | {:.2} |", b / a);
    }
    println!(
        "ours: feature cache {:.1} s, final acc1 {}; reference: loop {:.1} s (epochs {}), \
         setup {:.1} s, final acc1 {}",
        results["feature_cache_seconds"]
            .as_f64()
            .unwrap_or(f64::NAN),
        results["metrics"]["acc1"],
        r["loop_s"].as_f64().unwrap_or(f64::NAN),
        r["epoch_s"],
        r["setup_s"].as_f64().unwrap_or(f64::NAN),
        r["acc1"],
    );
    println!(
        "machine: {}, {cores} threads each side, reference torch {}, {}",
        cpu_model(),
        r["torch"].as_str().unwrap_or("?"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let what = "linear probe on cached features vs the Python loop (wall, speed-up)";
    summary("evaluate", what, ref_t.wall / ours_t.wall, "> 1")
}
