//! Benchmark: noise-matrix generation + exact-count label flipping, K = 100, sparsity 0.4,
//! noise 0.6, 50 000 labels, against cleanlab's `generate_noise_matrix_from_trace` +
//! `generate_noisy_labels` in the same run. Prints a table and the speed ratio.
//! Run: `cargo bench -p trainer --bench noise` (after scripts/setup.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use common::bench::median;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;
use trainer::noise::matrix::{self, TraceSpec};
use trainer::noise::rng::{stream, Stream};
use trainer::noise::stats;

const K: usize = 100;
const N: usize = 50_000;
const NOISE: f64 = 0.6;
const SPARSITY: f64 = 0.4;
const SEEDS: [u64; 20] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
];

struct Measured {
    seconds: Vec<f64>,
    flip_rate: Vec<f64>,
    zero_rates: Vec<f64>,
}

fn main() {
    let mut labels: Vec<usize> = (0..N).map(|i| i % K).collect();
    labels.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(0));
    let trace = K as f64 * (1.0 - NOISE);
    let ours = measure_ours(&labels, trace);
    let reference = measure_cleanlab(&labels, trace);
    let ratio = median(&reference.seconds) / median(&ours.seconds);
    println!("noise generation, K={K}, N={N}, noise {NOISE}, sparsity {SPARSITY}, {} seeds (median time)", SEEDS.len());
    println!("| implementation | time (ms) | realized flip rate | zero off-diagonal rates |");
    println!("|---|---:|---:|---:|");
    for (name, m) in [("nls (Rust)", &ours), ("cleanlab 2.9 (Python)", &reference)] {
        println!(
            "| {name} | {:.2} | {:.4} | {:.0} |",
            median(&m.seconds) * 1e3,
            mean(&m.flip_rate),
            mean(&m.zero_rates)
        );
    }
    println!("speed-up over cleanlab: {ratio:.0}x (target >= 50x)");
    let what = "noise matrix + flips (K=100, N=50k) vs cleanlab";
    common::bench::summary("noise", what, ratio, ">= 50").unwrap();
}

fn measure_ours(labels: &[usize], trace: f64) -> Measured {
    let mut m = Measured {
        seconds: vec![],
        flip_rate: vec![],
        zero_rates: vec![],
    };
    for seed in SEEDS {
        let start = Instant::now();
        let spec = TraceSpec {
            num_classes: K,
            trace,
            sparsity: SPARSITY,
            valid_for_prior: None,
        };
        let nm = matrix::from_trace(&spec, &mut stream(seed, Stream::NoiseMatrix)).unwrap();
        let noisy = matrix::flip_exact(labels, &nm, &mut stream(seed, Stream::Flips)).unwrap();
        m.seconds.push(start.elapsed().as_secs_f64());
        m.flip_rate.push(stats::flip_rate(labels, &noisy));
        let zeros = (0..K)
            .flat_map(|s| (0..K).map(move |y| (s, y)))
            .filter(|&(s, y)| s != y && nm[s][y] == 0.0);
        m.zero_rates.push(zeros.count() as f64);
    }
    m
}

fn measure_cleanlab(labels: &[usize], trace: f64) -> Measured {
    let python = common::python();
    let mut child = Command::new(&python)
        .arg(common::workspace_root().join("trainer/benches/cleanlab_noise.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e} (run scripts/setup.sh)", python.display()));
    let request = serde_json::json!({"labels": labels, "k": K, "trace": trace, "sparsity": SPARSITY, "seeds": SEEDS});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the cleanlab reference failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let floats = |key: &str| {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    Measured {
        seconds: floats("seconds"),
        flip_rate: floats("flip_rate"),
        zero_rates: floats("zero_rates"),
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}
