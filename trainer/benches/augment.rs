//! Benchmark: augmentation throughput alone, two views per image (VICReg CIFAR recipe, 32×32,
//! batch 256, CPU), our batched ops against torchvision v2 per-image transforms in a DataLoader
//! with one worker per core, in the same run. Prints a table and the ratio (target ≥ 5×).
//! Run: `cargo bench -p trainer --bench augment` (after scripts/setup.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use trainer::augment::{two_views, AugmentConfig, ViewKey};

const N: i64 = 8192;
const BATCH: i64 = 256;

fn ours() -> f64 {
    tch::manual_seed(0);
    let images = Tensor::randint(256, [N, 3, 32, 32], (Kind::Uint8, Device::Cpu));
    let cfg = AugmentConfig::vicreg();
    let key = |step| ViewKey {
        seed: 0,
        epoch: 0,
        step,
        rank: 0,
        view: 0,
    };
    let _ = two_views(&images.narrow(0, 0, BATCH), &cfg, key(0)); // warm-up
    let start = Instant::now();
    for (step, first) in (0..N).step_by(BATCH as usize).enumerate() {
        let (a, b) = two_views(&images.narrow(0, first, BATCH), &cfg, key(step as u64));
        assert_eq!(a.size()[0] + b.size()[0], 2 * BATCH);
    }
    N as f64 / start.elapsed().as_secs_f64()
}

fn torchvision() -> f64 {
    let out = Command::new(common::python())
        .arg(common::workspace_root().join("trainer/benches/augment_torchvision.py"))
        .arg(N.to_string())
        .output()
        .expect("starting the venv's python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (rust, reference) = (ours(), torchvision());
    println!("augmentation, two views per image, VICReg CIFAR recipe, {N} images of 32×32, batch {BATCH}, {cores} cores");
    println!("| implementation | images/s |");
    println!("|---|---:|");
    println!("| nls batched tensor ops (libtorch threads) | {rust:.0} |");
    println!("| torchvision v2 + DataLoader ({cores} workers) | {reference:.0} |");
    println!("ratio: {:.1}x (target >= 5x)", rust / reference);
    let what = "two-view augmentation vs torchvision v2 + DataLoader";
    common::bench::summary("augment", what, rust / reference, ">= 5").unwrap();
}
