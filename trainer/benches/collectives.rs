//! Benchmark: all-reduce bus bandwidth on loopback, Rust ranks (`trainer dist-bench`, libtorch's
//! c10d Gloo through our shim) against Python torch.distributed ranks in the same run, 1–256 MB;
//! then gradient-sync time per step for ResNet-18's parameters, bucketed against one collective
//! per tensor. The two implementations alternate (R, P, R, P, …) so machine drift hits both.
//! Run: `cargo bench -p trainer --bench collectives` (after scripts/setup.sh).
//! Env: NLS_BENCH_WORLD (default 2), NLS_BENCH_REPS (default 3).

#[path = "../tests/common/ranks.rs"]
mod ranks;

use ranks::{as_rank, describe, free_port, wait_all};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const SIZES_MB: &str = "1,4,16,64,256";
const ITERS: &str = "10";
const WARMUP: &str = "2";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs one group of `world` ranks built by `command(rank)`; returns rank 0's JSON records.
fn run_group(world: usize, command: impl Fn() -> Command) -> Vec<Value> {
    let port = free_port();
    let children = (0..world)
        .map(|r| as_rank(command(), r, world, port).spawn().unwrap())
        .collect();
    let outputs = wait_all(children, Duration::from_secs(600));
    assert!(
        outputs.iter().all(|o| o.status.success()),
        "{}",
        describe(&outputs)
    );
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
    let venv = std::env::var_os("NLS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/python"));
    let mut c = Command::new(venv);
    c.arg(workspace().join("trainer/benches/allreduce_torch.py"))
        .args([SIZES_MB, ITERS, WARMUP])
        .env("OMP_NUM_THREADS", "1");
    c
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
    let reps = env_or("NLS_BENCH_REPS", 3);
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
    println!("all_reduce (Gloo, loopback), {world} ranks, float32, median of {ITERS} iterations, median over {reps} alternating runs");
    println!("| size (MB) | Rust busbw (GB/s) | Python busbw (GB/s) | ratio Rust/Python |");
    println!("|---:|---:|---:|---:|");
    let mut worst: f64 = f64::INFINITY;
    for (bytes, rust_t) in &table["rust all_reduce"] {
        let (r, p) = (
            median(rust_t.clone()),
            median(table["python all_reduce"][bytes].clone()),
        );
        let ratio = p / r;
        worst = worst.min(ratio);
        println!(
            "| {} | {:.2} | {:.2} | {ratio:.2} |",
            bytes / 1_000_000,
            busbw(*bytes, r),
            busbw(*bytes, p)
        );
    }
    println!("lowest ratio: {worst:.2} (target >= 0.95)\n");
    let sync = |mode: &str| {
        median(
            table[&format!("rust grad_sync_{mode}")]
                .values()
                .next()
                .unwrap()
                .clone(),
        )
    };
    let (bucketed, per_tensor) = (sync("bucketed"), sync("per_tensor"));
    println!("gradient sync per step, ResNet-18 parameters (11.69M float32), {world} ranks");
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
    println!("bucketing speed-up: {:.2}x", per_tensor / bucketed);
}
