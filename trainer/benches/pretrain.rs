//! Benchmark: VICReg pretraining throughput on CPU (ResNet-18 CIFAR stem, projector
//! 1024-1024-1024, LARS, batch 256, fp32), `trainer pretrain` against the PyTorch reference
//! (`pretrain_torch.py`) with the same thread count, in the same run, on a synthetic CIFAR-10.
//!
//! Two rows: the training step alone (ours: 256 / median `compute_s` of metrics.jsonl; reference:
//! random views already in memory) and end to end (ours: median `images_per_s`; reference:
//! PIL + torchvision transforms in a DataLoader with one worker per core, then the step).
//! Run: `cargo bench -p trainer --bench pretrain` (after scripts/setup.sh). A CPU step takes
//! tens of seconds: `NLS_BENCH_WARMUP` (default 1) and `NLS_BENCH_STEPS` (default 2) set the
//! warm-up and timed steps of each of the three runs.

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use common::bench::{checked, cpu_model, env_count, median, reference_json, summary, threads};
use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BATCH: usize = 256;
/// CIFAR-10 binary record: a label byte, then 3×32×32 pixels.
const RECORD: usize = 1 + 3 * 32 * 32;
/// The reader wants all five training files, of equal size.
const TRAIN_FILES: usize = 5;

/// `dir/cifar-10-batches-bin/data_batch_{1..5}.bin` with at least `images` random images in all.
fn write_cifar(dir: &Path, images: usize) -> Result<()> {
    let dir = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let per_file = images.div_ceil(TRAIN_FILES);
    for i in 1..=TRAIN_FILES {
        let mut bytes = vec![0u8; per_file * RECORD];
        rng.fill_bytes(&mut bytes);
        for record in bytes.chunks_exact_mut(RECORD) {
            record[0] %= 10;
        }
        let path = dir.join(format!("data_batch_{i}.bin"));
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `trainer pretrain`: the timed steps' `compute_s` and the median end-to-end images/s.
fn ours(
    data: &Path,
    exp: &Path,
    warmup: usize,
    steps: usize,
    cores: usize,
) -> Result<(Vec<f64>, f64)> {
    let bin = env!("CARGO_BIN_EXE_trainer");
    let out = threads(&mut Command::new(bin), cores)
        .arg("pretrain")
        .args(["--data-dir".as_ref(), data.as_os_str()])
        .args(["--exp-dir".as_ref(), exp.as_os_str()])
        .args([
            "--method",
            "vicreg",
            "--arch",
            "resnet18",
            "--mlp",
            "1024-1024-1024",
        ])
        .args(["--batch-size", &BATCH.to_string(), "--epochs", "1"])
        .args(["--max-steps", &(warmup + steps).to_string()])
        .args([
            "--log-every",
            "1",
            "--knn-every",
            "0",
            "--optimizer",
            "lars",
        ])
        .args(["--backend", "gloo"])
        .output()
        .with_context(|| format!("starting {bin}"))?;
    checked("trainer pretrain", out)?;
    let path = exp.join("metrics.jsonl");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (mut compute, mut e2e) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let r: Value = serde_json::from_str(line).with_context(|| format!("{}", path.display()))?;
        let field = |k: &str| {
            r[k].as_f64()
                .with_context(|| format!("{}: no {k} in {line}", path.display()))
        };
        if field("step")? as usize > warmup {
            ensure!(
                field("steps")? == 1.0,
                "{}: a line spans several steps",
                path.display()
            );
            compute.push(field("compute_s")?);
            e2e.push(field("images_per_s")?);
        }
    }
    ensure!(
        compute.len() == steps,
        "{}: {} timed steps, expected {steps}",
        path.display(),
        compute.len()
    );
    Ok((compute, median(&e2e)))
}

/// The reference script's JSON for one mode.
fn reference(mode: &str, data: &Path, warmup: usize, steps: usize, cores: usize) -> Result<Value> {
    let args = [
        "--mode".to_string(),
        mode.to_string(),
        "--data-dir".to_string(),
        data.display().to_string(),
        "--warmup".to_string(),
        warmup.to_string(),
        "--steps".to_string(),
        steps.to_string(),
    ];
    reference_json("pretrain_torch.py", &args, cores)
}

fn images_per_s(r: &Value) -> Result<f64> {
    r["images_per_s"]
        .as_f64()
        .with_context(|| format!("no images_per_s in {r}"))
}

fn nproc() -> String {
    Command::new("nproc")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("? ({e})"))
}

fn main() -> Result<()> {
    let warmup = env_count("NLS_BENCH_WARMUP", 1)?;
    let steps = env_count("NLS_BENCH_STEPS", 2)?;
    ensure!(steps > 0, "NLS_BENCH_STEPS must be at least 1");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;
    let data = tmp.path().join("data");
    // One spare batch: the epoch (and its checkpoint) never ends inside the timed steps.
    write_cifar(&data, BATCH * (warmup + steps + 1))?;

    let (our_compute, our_e2e) = ours(&data, &tmp.path().join("exp"), warmup, steps, cores)?;
    let ref_step = reference("step", &data, warmup, steps, cores)?;
    let ref_e2e = reference("e2e", &data, warmup, steps, cores)?;
    let (ref_step_ips, ref_e2e_ips) = (images_per_s(&ref_step)?, images_per_s(&ref_e2e)?);

    println!(
        "VICReg pretraining, ResNet-18 (CIFAR stem) + 1024-1024-1024 projector, LARS, batch {BATCH}, \
         fp32 CPU, 32×32 synthetic CIFAR-10; median of {steps} steps after {warmup} warm-up"
    );
    println!("| | ours images/s | reference images/s | ours / reference |");
    println!("|---|---:|---:|---:|");
    let rows = [
        (
            "training step (no augmentation)",
            BATCH as f64 / median(&our_compute),
            ref_step_ips,
        ),
        ("end to end (augmentation + step)", our_e2e, ref_e2e_ips),
    ];
    for (row, a, b) in rows {
        println!("| {row} | {a:.1} | {b:.1} | {:.2} |", a / b);
    }
    println!(
        "step seconds: ours compute {:?}, reference step {}, reference e2e {}",
        our_compute, ref_step["step_s"], ref_e2e["step_s"]
    );
    println!(
        "machine: {}, {cores} cores (nproc {}), {cores} threads each side, reference torch {}, {}",
        cpu_model(),
        nproc(),
        ref_step["torch"].as_str().unwrap_or("?"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let [(_, step, ref_step), (_, e2e, ref_e2e)] = rows;
    let what = "VICReg training step vs PyTorch (images/s)";
    summary("pretrain", what, step / ref_step, ">= 1.0")?;
    let what = "VICReg end to end with augmentation vs PyTorch + DataLoader";
    summary("pretrain", what, e2e / ref_e2e, ">= 1.0 (GPU: >= 1.5)")
}
