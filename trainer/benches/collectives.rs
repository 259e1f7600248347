//! Benchmark: all-reduce bus bandwidth on loopback, Rust ranks (`trainer dist-bench`, libtorch's
//! c10d Gloo through our shim) against Python torch.distributed ranks in the same run, 1–256 MB;
//! then gradient-sync time per step for ResNet-18's parameters, bucketed against one collective
//! per tensor. The two implementations alternate (R, P, R, P, …) so machine drift hits both.
//! Run: `cargo bench -p trainer --bench collectives` (after scripts/setup.sh).
//! Env: NLS_BENCH_WORLD (default 2), NLS_BENCH_REPS (default 5). Small
//! all-reduces take milliseconds on a 2-core machine, so fewer iterations or runs are noisy
//! (ratios from 0.8 to 1.3 were seen with 10 iterations × 3 runs).

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::median;
use common::ranks::{as_rank, assert_succeeded, free_port, wait_all};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

const SIZES_MB: &str = "1,4,16,64,256";
const ITERS: &str = "30";
const WARMUP: &str = "2";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs one group of `world` ranks built by `command(rank)`; returns rank 0's JSON records.
fn run_group(world: usize, command: impl Fn() -> Command) -> Vec<Value> {
    let port = free_port();
    let children = (0..world)
        .map(|r| as_rank(command(), r, world, port).spawn().unwrap())
        .collect();
    let outputs = wait_all(children, Duration::from_secs(600));
    assert_succeeded(&outputs);
    String::from_utf8_lossy(&outputs[0].stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn rust(grad_sync: bool) -> impl Fn() -> Command {
    move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_trainer"));
        c.args(["dist-bench", "--backend", "gloo", "--sizes-mb", SIZES_MB])
            .args(["--iters", ITERS, "--warmup", WARMUP])
            .env("RUST_LOG", "warn")
            .env("OMP_NUM_THREADS", "1");
        if grad_sync {
            c.arg("--grad-sync");
        }
        c
    }
}

fn python() -> Command {
    let mut c = Command::new(common::python());
    c.arg(common::workspace_root().join("trainer/benches/allreduce_torch.py"))
        .args([SIZES_MB, ITERS, WARMUP])
        .env("OMP_NUM_THREADS", "1");
    c
}

/// op → bytes → median seconds over repetitions.
type Table = BTreeMap<String, BTreeMap<i64, Vec<f64>>>;

fn collect(table: &mut Table, records: &[Value], prefix: &str) {
    for r in records {
        let op = format!("{prefix}{}", r["op"].as_str().unwrap());
        let bytes = r["bytes"].as_i64().unwrap();
        table
            .entry(op)
            .or_default()
            .entry(bytes)
            .or_default()
            .push(r["median_s"].as_f64().unwrap());
    }
}

fn main() {
    let world = env_or("NLS_BENCH_WORLD", 2);
    let reps = env_or("NLS_BENCH_REPS", 5);
    let mut table = Table::new();
    let mut buckets = BTreeMap::new();
    for rep in 0..reps {
        let rust_records = run_group(world, rust(rep == 0));
        for r in &rust_records {
            if let Some(b) = r["buckets"].as_u64() {
                buckets.insert(r["op"].as_str().unwrap().to_string(), b);
            }
        }
        collect(&mut table, &rust_records, "rust ");
        collect(&mut table, &run_group(world, python), "python ");
    }
    let busbw = |bytes: i64, secs: f64| {
        bytes as f64 / secs * 2.0 * (world as f64 - 1.0) / world as f64 / 1e9
    };
    println!("all_reduce (Gloo, loopback), {world} ranks, float32, median of {ITERS} iterations per run, {reps} alternating runs each");
    println!("busbw of the median run / of the best run; the ratio is Rust/Python on the best runs (the least disturbed by the rest of the machine)");
    println!("| size (MB) | Rust busbw (GB/s) | Python busbw (GB/s) | ratio, median runs | ratio, best runs |");
    println!("|---:|---:|---:|---:|---:|");
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let mut worst: f64 = f64::INFINITY;
    for (bytes, rust_t) in &table["rust all_reduce"] {
        let python_t = &table["python all_reduce"][bytes];
        let (r, p) = (median(rust_t), median(python_t));
        let (r_best, p_best) = (best(rust_t), best(python_t));
        let ratio = p_best / r_best;
        worst = worst.min(ratio);
        println!(
            "| {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} | {ratio:.2} |",
            bytes / 1_000_000,
            busbw(*bytes, r),
            busbw(*bytes, r_best),
            busbw(*bytes, p),
            busbw(*bytes, p_best),
            p / r
        );
    }
    println!("lowest ratio (best runs): {worst:.2} (target >= 0.95)\n");
    let sync = |op: &str| median(table[&format!("rust {op}")].values().next().unwrap());
    let (bucketed, per_tensor) = (sync("grad_sync_bucketed"), sync("grad_sync_per_tensor"));
    let grad_bytes = *table["rust grad_sync_bucketed"].keys().next().unwrap();
    println!(
        "gradient sync per step, ResNet-18 backbone (CIFAR stem), {:.2}M float32 gradients, {world} ranks",
        grad_bytes as f64 / 4e6
    );
    println!("| strategy | collectives | time (ms) |");
    println!("|---|---:|---:|");
    println!(
        "| bucketed (25 MB) | {} | {:.1} |",
        buckets["grad_sync_bucketed"],
        bucketed * 1e3
    );
    println!(
        "| one per tensor | {} | {:.1} |",
        buckets["grad_sync_per_tensor"],
        per_tensor * 1e3
    );
    println!("bucketing speed-up: {:.2}x\n", per_tensor / bucketed);
    let step = |mode: &str| sync(mode) * 1e3;
    let alone = step("step_alone");
    println!("what averaging adds to a ResNet-18 step (forward + backward, 32 images per rank, synchronized BN), {world} ranks");
    println!("| gradients averaged | step (ms) | added |");
    println!("|---|---:|---:|");
    println!("| not at all | {alone:.1} | |");
    for (mode, what) in [
        ("step_sync_after", "after backward"),
        ("step_sync_overlapped", "overlapping backward"),
    ] {
        let t = step(mode);
        println!("| {what} | {t:.1} | {:+.0}% |", (t / alone - 1.0) * 100.0);
    }
    let what = "all_reduce busbw vs Python torch.distributed (lowest over sizes, best runs)";
    common::bench::summary("collectives", what, worst, ">= 0.95").unwrap();
}
