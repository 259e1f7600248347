//! Benchmark: one Meta-Weight-Net training step through WRN-28-10 (issue 17's target), ours
//! against the PyTorch reference of the same step (`meta_torch.py`: seed 001's `higher`-style
//! look-ahead, here `torch.func.functional_call`), fp32 CPU, the same thread count, in the same
//! run, on random 32×32 inputs (augmentation is the train bench's subject, not this one's).
//!
//! The step on both sides: per-sample CE of the batch, weights from the weighting network, the
//! look-ahead `θ′ = θ − 0.1·∇θ mean(w·ℓ)` with its graph, the meta batch's CE through `θ′`, the
//! weighting network's Adam step on the second-order gradient; then the batch's CE weighted by
//! the updated weighting network, backward, SGD (momentum 0.9, weight decay 5e-4). Run:
//! `cargo bench -p trainer --bench meta`; `NLS_BENCH_BATCH` (default 32; the paper's 100)
//! sets the batch and the meta batch, `NLS_BENCH_WARMUP` (1) and `NLS_BENCH_STEPS` (2) the
//! steps. A step at batch 32 takes about half a minute on 2 cores.

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{ensure, Context, Result};
use common::bench::{cpu_model, env_count, median, reference_json, summary};
use std::time::Instant;
use tch::{Device, Kind, Tensor};
use trainer::distributed::ProcessGroup;
use trainer::method::eval::methods::network::live::LiveNetwork;
use trainer::method::eval::methods::network::lookahead::per_sample_loss;
use trainer::method::eval::methods::network::mwn::NetworkMetaWeightNet;
use trainer::method::eval::methods::network::NetSetup;
use trainer::model::{Arch, NetSpec};
use trainer::optim::{OptimSettings, OptimizerKind};

const CLASSES: i64 = 10;
const LOOK_AHEAD_RATE: f64 = 0.1;

/// Our step times, `warmup` untimed first.
fn ours(batch: i64, warmup: usize, steps: usize) -> Result<Vec<f64>> {
    tch::manual_seed(0);
    let cpu = Device::Cpu;
    let live = LiveNetwork::new(NetSpec::new(Arch::Wrn, None, None, None)?, CLASSES, cpu);
    let no_images = LiveNetwork::no_images(32, cpu);
    let mut mwn = NetworkMetaWeightNet::new(NetSetup {
        // Meta batches are passed in; the trusted set only has to exist.
        trusted: Some(LiveNetwork::unused_trusted(cpu)),
        ..live.setup(&no_images)
    })?;
    let settings = OptimSettings {
        momentum: Some(0.9),
        ..OptimSettings::new(5e-4)
    };
    let mut optimizers = [
        OptimizerKind::Sgd.build_with(&live.backbone_vs, &settings)?,
        OptimizerKind::Sgd.build_with(&live.head_vs, &settings)?,
    ];
    let (x, meta_x) = (
        Tensor::randn([batch, 3, 32, 32], (Kind::Float, cpu)),
        Tensor::randn([batch, 3, 32, 32], (Kind::Float, cpu)),
    );
    let y = Tensor::randint(CLASSES, [batch], (Kind::Int64, cpu));
    let meta_y = Tensor::randint(CLASSES, [batch], (Kind::Int64, cpu));
    let (params, solo) = (live.params(), ProcessGroup::single(cpu));
    let mut times = Vec::new();
    for step in 0..warmup + steps {
        let started = Instant::now();
        mwn.meta_update(
            live.net(),
            &params,
            (&x, &y),
            (&meta_x, &meta_y),
            LOOK_AHEAD_RATE,
            &solo,
        )?;
        let losses = per_sample_loss(&live.net().logits(&x, true, &solo)?, &y);
        let w = tch::no_grad(|| mwn.weighting().weights(&losses.detach()));
        let loss = (w * losses).mean(Kind::Float);
        optimizers.iter_mut().for_each(|o| o.zero_grad());
        loss.f_backward().context("backward")?;
        optimizers.iter_mut().for_each(|o| o.step(0.1));
        if step >= warmup {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    Ok(times)
}

fn main() -> Result<()> {
    let batch = env_count("NLS_BENCH_BATCH", 32)? as i64;
    let warmup = env_count("NLS_BENCH_WARMUP", 1)?;
    let steps = env_count("NLS_BENCH_STEPS", 2)?;
    ensure!(
        steps > 0 && batch > 0,
        "NLS_BENCH_STEPS and NLS_BENCH_BATCH must be at least 1"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tch::set_num_threads(cores as i32);
    println!(
        "Meta-Weight-Net step through WRN-28-10 (look-ahead, meta loss, weighting net's Adam \
         step, weighted CE, SGD), batch and meta batch {batch}, fp32 CPU; median of {steps} \
         steps after {warmup} warm-up"
    );
    let ours = median(&ours(batch, warmup, steps)?);
    let args = [
        ("--batch", batch as usize),
        ("--warmup", warmup),
        ("--steps", steps),
    ]
    .map(|(k, v)| [k.to_string(), v.to_string()])
    .concat();
    let r = reference_json("meta_torch.py", &args, cores)?;
    let theirs = r["step_s"].as_f64().context("no step_s")?;
    println!("| network | ours s/step | reference s/step | ours / reference (speed) |");
    println!("|---|---:|---:|---:|");
    println!(
        "| wrn-28-10 | {ours:.2} | {theirs:.2} | {:.2} |",
        theirs / ours
    );
    println!(
        "machine: {}, {cores} threads each side, reference torch {}, {}",
        cpu_model(),
        r["torch"].as_str().unwrap_or("?"),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    summary(
        "meta",
        &format!("MW-Net step through WRN-28-10 vs PyTorch, batch {batch} (steps/s)"),
        theirs / ours,
        ">= 1.0",
    )
}
