//! `trainer dist-bench`: all-reduce bus bandwidth over a range of sizes, the gradient-sync time
//! per step for ResNet-18's parameters, bucketed against one collective per tensor, and what
//! averaging adds to a ResNet-18 training step's forward and backward, after backward or
//! overlapping it. Rank 0 prints one JSON object per measurement; `cargo bench --bench
//! collectives` runs it beside Python torch.distributed ranks and prints the comparison table.

use super::dist_args::DistArgs;
use crate::distributed::ddp::{GradSync, DEFAULT_BUCKET_MB};
use crate::distributed::{ProcessGroup, ReduceOp};
use crate::model::{Arch, ResNet, Stem};
use anyhow::Result;
use clap::Args;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

#[derive(Args)]
pub struct DistBenchArgs {
    #[command(flatten)]
    pub dist: DistArgs,
    /// All-reduce sizes in megabytes (10^6 bytes of float32).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256")]
    pub sizes_mb: Vec<f64>,
    /// Timed iterations per size (the median is reported).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Also time gradient averaging for ResNet-18's parameters, alone and within a step.
    #[arg(long)]
    pub grad_sync: bool,
    /// Images per rank in the timed ResNet-18 steps of --grad-sync.
    #[arg(long, default_value_t = 32)]
    pub step_batch: i64,
}

pub fn run(args: DistBenchArgs) -> Result<()> {
    let (_, group) = args.dist.join()?;
    for &mb in &args.sizes_mb {
        let numel = (mb * 1e6 / 4.0).round() as i64;
        let mut t = Tensor::ones([numel], (Kind::Float, group.device()));
        let secs = median_time(&group, args.warmup, args.iters, || {
            group.all_reduce(&mut t, ReduceOp::Sum).map_err(Into::into)
        })?;
        report(&group, "all_reduce", numel * 4, secs, None);
    }
    if args.grad_sync {
        bench_grad_sync(&group, &args)?;
    }
    Ok(())
}

fn bench_grad_sync(group: &ProcessGroup, args: &DistBenchArgs) -> Result<()> {
    let vs = resnet18_parameters(group);
    for (mode, mb) in [("bucketed", DEFAULT_BUCKET_MB), ("per_tensor", 0.0)] {
        let sync = GradSync::new(&vs, mb);
        let secs = median_time(group, args.warmup, args.iters, || {
            sync.average(group).map(drop).map_err(Into::into)
        })?;
        let bytes = crate::distributed::ddp::gradient_bytes(&vs);
        report(
            group,
            &format!("grad_sync_{mode}"),
            bytes,
            secs,
            Some(sync.num_buckets()),
        );
    }
    bench_step_overhead(group, args)
}

/// Forward and backward of ResNet-18 (CIFAR stem, synchronized BN, train mode) on
/// `--step-batch` random images per rank, the gradients averaged not at all, after backward,
/// or overlapping it: what averaging adds to a step.
fn bench_step_overhead(group: &ProcessGroup, args: &DistBenchArgs) -> Result<()> {
    let vs = VarStore::new(group.device());
    let net = ResNet::new(&vs.root(), Arch::Resnet18, Stem::Cifar);
    let x = Tensor::randn([args.step_batch, 3, 32, 32], (Kind::Float, group.device()));
    let sync = GradSync::new(&vs, DEFAULT_BUCKET_MB);
    let bytes = crate::distributed::ddp::gradient_bytes(&vs);
    for mode in ["step_alone", "step_sync_after", "step_sync_overlapped"] {
        let secs = median_time(group, args.warmup, args.iters, || {
            vs.trainable_variables()
                .iter_mut()
                .for_each(Tensor::zero_grad);
            if mode == "step_sync_overlapped" {
                sync.arm(group)?;
            }
            let loss = net.forward(&x, true, group)?.square().mean(Kind::Float);
            loss.f_backward()?;
            if mode != "step_alone" {
                sync.average(group)?;
            }
            Ok(())
        })?;
        report(group, mode, bytes, secs, Some(sync.num_buckets()));
    }
    Ok(())
}

/// Median seconds of `iters` runs of `op` after `warmup` runs, each started after a barrier.
fn median_time(
    group: &ProcessGroup,
    warmup: usize,
    iters: usize,
    mut op: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let mut times = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        group.barrier()?;
        let start = Instant::now();
        op()?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or(f64::NAN))
}

/// nccl-tests' bus bandwidth: algorithm bandwidth × 2(n−1)/n for all-reduce.
fn report(group: &ProcessGroup, what: &str, bytes: i64, secs: f64, buckets: Option<usize>) {
    if group.rank() != 0 {
        return;
    }
    let n = group.world_size() as f64;
    let busbw = bytes as f64 / secs * 2.0 * (n - 1.0) / n / 1e9;
    let record = serde_json::json!({
        "impl": "rust", "op": what, "world": group.world_size(), "bytes": bytes,
        "median_s": secs, "busbw_gbps": busbw, "buckets": buckets,
    });
    println!("{record}");
}

/// The pretraining backbone's parameters (`model::ResNet`, ResNet-18, CIFAR stem, no head)
/// with gradients of ones.
fn resnet18_parameters(group: &ProcessGroup) -> VarStore {
    let vs = VarStore::new(group.device());
    let _backbone = ResNet::new(&vs.root(), Arch::Resnet18, Stem::Cifar);
    let total: Tensor = vs
        .trainable_variables()
        .iter()
        .map(|v| v.sum(Kind::Float))
        .sum();
    total.backward();
    vs
}
