//! Benchmark: one supervised training step of a whole network (SSR's PreAct ResNet-18 and
//! WRN-28-10, batch 128, fp32 CPU), ours against the PyTorch reference (`train_torch.py`) with
//! the same thread count, in the same run, on random 32×32 images.
//!
//! The step on both sides: RandomCrop(32, padding 4) + flip, normalize, forward in training
//! mode, linear classifier, cross-entropy, backward, SGD with momentum 0.9 and weight decay
//! 5e-4. Ours runs in-process through the library (batched augmentation on the device);
//! the reference augments per image as its DataLoader would. Run:
//! `cargo bench -p trainer --bench train`; `NLS_BENCH_WARMUP` (default 1) and
//! `NLS_BENCH_STEPS` (default 2) set the warm-up and timed steps, `NLS_BENCH_ARCHS`
//! (default `preact18,wrn`) the networks. A WRN-28-10 step takes about 20 s on 2 cores.

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use common::bench::{cpu_model, env_count, median, reference_json, summary};
use serde_json::Value;
use std::time::Instant;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};
use trainer::augment::train::{train_view, Geometry, TrainAugment};
use trainer::augment::ViewKey;
use trainer::distributed::ProcessGroup;
use trainer::model::{Arch, Backbone, NetSpec};
use trainer::optim::{OptimSettings, OptimizerKind};

const BATCH: i64 = 128;
const CLASSES: i64 = 10;

/// Our step times: augmentation through the optimizer step, `warmup` untimed first.
fn ours(arch: Arch, warmup: usize, steps: usize) -> Result<Vec<f64>> {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let spec = NetSpec::new(arch, None, None, None)?;
    let net = Backbone::new(&vs.root(), &spec);
    let fc = nn::linear(
        vs.root() / arch.classifier_prefix(),
        net.embedding_dim(),
        CLASSES,
        Default::default(),
    );
    let settings = OptimSettings {
        momentum: Some(0.9),
        ..OptimSettings::new(5e-4)
    };
    let mut opt = OptimizerKind::Sgd.build_with(&vs, &settings)?;
    let group = ProcessGroup::single(Device::Cpu);
    let aug = TrainAugment {
        geometry: Geometry::Crop,
        ..TrainAugment::default()
    };
    let images = Tensor::randint(256, [BATCH, 3, 32, 32], (Kind::Uint8, Device::Cpu));
    let labels = Tensor::randint(CLASSES, [BATCH], (Kind::Int64, Device::Cpu));
    let mut times = Vec::new();
    for step in 0..warmup + steps {
        let started = Instant::now();
        let key = ViewKey {
            seed: 0,
            epoch: 0,
            step: step as u64,
            rank: 0,
            view: 0,
        };
        let x = train_view(&images, &aug, key, BATCH, 0)?;
        let logits = fc.forward(&net.forward(&x, true, &group)?);
        let loss = logits.cross_entropy_for_logits(&labels);
        opt.zero_grad();
        loss.f_backward().context("backward")?;
        opt.step(0.1);
        if step >= warmup {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

/// The reference script's JSON.
fn reference(arch: &str, warmup: usize, steps: usize, cores: usize) -> Result<Value> {
    let args = [
        "--arch".to_string(),
        arch.to_string(),
        "--batch".to_string(),
        BATCH.to_string(),
        "--warmup".to_string(),
        warmup.to_string(),
        "--steps".to_string(),
        steps.to_string(),
    ];
    reference_json("train_torch.py", &args, cores)
}

fn main() -> Result<()> {
    let warmup = env_count("NLS_BENCH_WARMUP", 1)?;
    let steps = env_count("NLS_BENCH_STEPS", 2)?;
    ensure!(steps > 0, "NLS_BENCH_STEPS must be at least 1");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tch::set_num_threads(cores as i32);
    let archs = std::env::var("NLS_BENCH_ARCHS").unwrap_or_else(|_| "preact18,wrn".into());
    println!(
        "Supervised training step (RandomCrop + flip, forward, CE, backward, SGD), batch {BATCH}, \
         fp32 CPU, 32×32 random images; median of {steps} steps after {warmup} warm-up"
    );
    println!("| network | ours images/s | reference images/s | ours / reference |");
    println!("|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    let mut torch = String::new();
    for name in archs.split(',') {
        let arch: Arch = clap::ValueEnum::from_str(name, false)
            .map_err(|e| anyhow::anyhow!("NLS_BENCH_ARCHS: {e}"))?;
        let ours = BATCH as f64 / median(&ours(arch, warmup, steps)?);
        let r = reference(name, warmup, steps, cores)?;
        let theirs = r["images_per_s"].as_f64().context("no images_per_s")?;
        torch = r["torch"].as_str().unwrap_or("?").to_string();
        println!(
            "| {name} | {ours:.1} | {theirs:.1} | {:.2} |",
            ours / theirs
        );
        ratios.push((name.to_string(), ours / theirs));
    }
    println!(
        "machine: {}, {cores} threads each side, reference torch {torch}, {}",
        cpu_model(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    for (name, ratio) in ratios {
        let what = format!("{name} training step vs PyTorch (images/s)");
        summary("train", &what, ratio, ">= 1.0")?;
    }
    Ok(())
}
