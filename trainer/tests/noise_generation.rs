//! Label-noise generators checked against independent computations: cleanlab itself (run in the
//! project venv), hand-derived class maps, and the definitions of the statistics.

// Matrix cells are indexed (s, y), as in the formulas they are checked against.
#![allow(clippy::needless_range_loop)]

mod common;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use trainer::data::DatasetName;
use trainer::noise::decimal::Decimal;
use trainer::noise::matrix::{self, TraceSpec};
use trainer::noise::rng::{stream, Stream};
use trainer::noise::symmetric::Convention;
use trainer::noise::{asymmetric, generate, stats, CleanSet, Kind, Spec};

fn labels_with_counts(counts: &[usize], seed: u64) -> Vec<usize> {
    let mut labels: Vec<usize> = counts
        .iter()
        .enumerate()
        .flat_map(|(c, &n)| std::iter::repeat_n(c, n))
        .collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    use rand::seq::SliceRandom;
    labels.shuffle(&mut rng);
    labels
}

fn spec(kind: Kind, noise: &str, sparsity: &str, seed: u64) -> Spec {
    Spec {
        kind,
        noise: Decimal::parse(noise).unwrap(),
        sparsity: Decimal::parse(sparsity).unwrap(),
        seed,
        convention: Convention::Any,
        valid_check: false,
        variants: Default::default(),
    }
}

fn clean_set(labels: &[usize], k: usize) -> CleanSet<'_> {
    CleanSet {
        dataset: DatasetName::Cifar10,
        num_classes: k,
        labels,
        pixels: None,
    }
}

fn pair_counts(clean: &[usize], noisy: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut c = vec![vec![0; k]; k];
    clean.iter().zip(noisy).for_each(|(&y, &s)| c[s][y] += 1);
    c
}

#[test]
fn realized_flips_per_cell_equal_cleanlabs_counts() {
    // Unbalanced classes so p(y)·N is not a round number.
    let k = 7;
    let counts = [700, 531, 1200, 999, 64, 350, 2001];
    let labels = labels_with_counts(&counts, 3);
    for (noise, sparsity, seed) in [("0.3", "0", 0), ("0.6", "0.4", 1), ("0.5", "0.2", 7)] {
        let g = generate(
            &spec(Kind::Matrix, noise, sparsity, seed),
            &clean_set(&labels, k),
        )
        .unwrap();
        let nm = g.requested_matrix.unwrap();
        // cleanlab's own generate_noisy_labels on the same matrix and labels: its per-cell counts
        // are exact, so they must equal ours although the chosen samples differ.
        let code = r#"
import json, sys, numpy as np
from cleanlab.benchmarking.noise_generation import generate_noisy_labels
d = json.load(sys.stdin)
y = np.array(d["labels"]); nm = np.array(d["nm"]); k = len(nm)
np.random.seed(0)
s = generate_noisy_labels(y, nm)
c = np.zeros((k, k), dtype=int)
np.add.at(c, (s, y), 1)
print(json.dumps(c.tolist()))
"#;
        let input = serde_json::json!({"labels": labels, "nm": nm}).to_string();
        let reference: Vec<Vec<usize>> =
            serde_json::from_str(&common::python_with_stdin(code, &input)).unwrap();
        assert_eq!(
            pair_counts(&labels, &g.labels, k),
            reference,
            "noise {noise} sparsity {sparsity}"
        );
    }
}

#[test]
fn matrix_has_the_requested_trace_and_stochastic_columns() {
    for k in [3, 10, 100] {
        for (noise, expected_trace) in [("0.1", 0.9), ("0.4", 0.6), ("0.6", 0.4), ("0.7", 0.3)] {
            for seed in 0..3 {
                let trace = Decimal::parse(noise).unwrap().complement_times(k);
                assert!((trace - expected_trace * k as f64).abs() < 1e-9);
                let s = TraceSpec {
                    num_classes: k,
                    trace,
                    sparsity: 0.2,
                    valid_for_prior: None,
                };
                let nm = matrix::from_trace(&s, &mut stream(seed, Stream::NoiseMatrix)).unwrap();
                let diag: f64 = (0..k).map(|i| nm[i][i]).sum();
                assert!(
                    (diag - trace).abs() < 1e-6,
                    "K={k} noise={noise}: trace {diag} != {trace}"
                );
                for y in 0..k {
                    let col: f64 = (0..k).map(|s| nm[s][y]).sum();
                    assert!((col - 1.0).abs() < 1e-9, "column {y} sums to {col}");
                    assert!((0..k).all(|s| nm[s][y] >= 0.0));
                }
            }
        }
    }
}

#[test]
fn sparsity_gives_the_number_of_zero_noise_rates() {
    for (k, sparsity) in [(10, 0.0), (10, 0.2), (10, 0.4), (10, 0.6), (100, 0.4)] {
        for seed in 0..3 {
            let s = TraceSpec {
                num_classes: k,
                trace: k as f64 * 0.5,
                sparsity,
                valid_for_prior: None,
            };
            let nm = matrix::from_trace(&s, &mut stream(seed, Stream::NoiseMatrix)).unwrap();
            let zeros = (0..k)
                .flat_map(|s| (0..k).map(move |y| (s, y)))
                .filter(|&(s, y)| s != y && nm[s][y] == 0.0)
                .count();
            // cleanlab: int(K·(K−1)·sparsity) zero rates when every column is noisy.
            let expected = ((k * (k - 1)) as f64 * sparsity) as usize;
            assert_eq!(zeros, expected, "K={k} sparsity={sparsity} seed={seed}");
        }
    }
}

#[test]
fn validity_check_accepts_only_learnable_matrices() {
    let py = [0.1; 10];
    let s = TraceSpec {
        num_classes: 10,
        trace: 4.0,
        sparsity: 0.4,
        valid_for_prior: Some(&py),
    };
    for seed in 0..5 {
        let nm = matrix::from_trace(&s, &mut stream(seed, Stream::NoiseMatrix)).unwrap();
        for i in 0..10 {
            // p(noisy = i)·p(true = i) < p(noisy = i, true = i)
            let p_noisy: f64 = (0..10).map(|y| nm[i][y] * py[y]).sum();
            assert!(p_noisy * py[i] < nm[i][i] * py[i]);
        }
    }
    let too_noisy = TraceSpec {
        num_classes: 10,
        trace: 1.0,
        sparsity: 0.0,
        valid_for_prior: Some(&py),
    };
    let err = matrix::from_trace(&too_noisy, &mut stream(0, Stream::NoiseMatrix)).unwrap_err();
    assert!(err.to_string().contains("trace > 1"), "{err}");
}

#[test]
fn symmetric_conventions_realize_their_rates() {
    let k = 10;
    let labels = labels_with_counts(&[1000; 10], 1);
    let n = labels.len() as f64;
    let mut any = spec(Kind::Symmetric, "0.4", "0", 2);
    let g = generate(&any, &clean_set(&labels, k)).unwrap();
    let rate = stats::flip_rate(&labels, &g.labels);
    // 4000 relabelled, each keeps its label with probability 1/K: rate ≈ 0.4·9/10.
    assert!((rate - 0.36).abs() < 0.015, "any: {rate}");
    any.convention = Convention::Other;
    let g = generate(&any, &clean_set(&labels, k)).unwrap();
    assert_eq!(stats::flip_rate(&labels, &g.labels), (0.4 * n).floor() / n);
}

#[test]
fn cifar10_and_fashion_mnist_pairs_are_exact() {
    let labels = labels_with_counts(&[500, 500, 503, 500, 499, 500, 500, 501, 500, 500], 5);
    let cases = [
        (
            DatasetName::Cifar10,
            vec![(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)],
        ),
        (
            DatasetName::FashionMnist,
            vec![(0, 6), (6, 0), (2, 4), (5, 7), (9, 7)],
        ),
    ];
    for (dataset, pairs) in cases {
        let set = CleanSet {
            dataset,
            num_classes: 10,
            labels: &labels,
            pixels: None,
        };
        let g = generate(&spec(Kind::Asymmetric, "0.3", "0", 0), &set).unwrap();
        let c = pair_counts(&labels, &g.labels, 10);
        for y in 0..10 {
            let n_y = labels.iter().filter(|&&l| l == y).count();
            match pairs.iter().find(|p| p.0 == y) {
                Some(&(_, target)) => {
                    assert_eq!(
                        c[target][y],
                        (n_y as f64 * 0.3).floor() as usize,
                        "{dataset:?} class {y}"
                    );
                    assert_eq!(c[y][y], n_y - c[target][y]);
                }
                None => assert_eq!(c[y][y], n_y, "{dataset:?}: class {y} must keep its labels"),
            }
        }
    }
}

#[test]
fn cifar100_map_follows_the_published_super_classes() {
    let map = asymmetric::class_map(DatasetName::Cifar100, 100, Default::default()).unwrap();
    // From the CIFAR-100 class list: aquatic mammals = beaver 4, dolphin 30, otter 55, seal 72,
    // whale 95; vehicles 1 = bicycle 8, bus 13, motorcycle 48, pickup truck 58, train 90.
    for group in [[4, 30, 55, 72, 95], [8, 13, 48, 58, 90]] {
        for i in 0..5 {
            assert_eq!(map[group[i]], Some(group[(i + 1) % 5]));
        }
    }
    // Every class moves, and the map is a permutation made of 20 cycles of 5.
    let mut seen = [false; 100];
    let mut cycles = 0;
    for start in 0..100 {
        if seen[start] {
            continue;
        }
        let (mut c, mut len) = (start, 0);
        while !seen[c] {
            seen[c] = true;
            c = map[c].unwrap();
            len += 1;
        }
        assert_eq!((c, len), (start, 5));
        cycles += 1;
    }
    assert_eq!(cycles, 20);
}

#[test]
fn instance_noise_realizes_the_requested_mean_rate() {
    let n = 10_000;
    let (k, d) = (10, 64);
    let labels = labels_with_counts(&[1000; 10], 9);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let pixels: Vec<u8> = (0..n * d).map(|_| rng.gen()).collect();
    for noise in ["0.2", "0.4", "0.5"] {
        let set = CleanSet {
            dataset: DatasetName::Cifar10,
            num_classes: k,
            labels: &labels,
            pixels: Some(&pixels),
        };
        let g = generate(&spec(Kind::Instance, noise, "0", 3), &set).unwrap();
        let rate = stats::flip_rate(&labels, &g.labels);
        let want: f64 = noise.parse().unwrap();
        assert!(
            (rate - want).abs() <= 0.02,
            "noise {noise}: realized {rate}"
        );
    }
    let set = CleanSet {
        dataset: DatasetName::Cifar10,
        num_classes: k,
        labels: &labels,
        pixels: Some(&pixels),
    };
    assert_eq!(
        generate(&spec(Kind::Instance, "0", "0", 3), &set)
            .unwrap()
            .labels,
        labels
    );
}

#[test]
fn same_seed_same_labels_other_seed_other_labels() {
    let labels = labels_with_counts(&[300; 10], 2);
    for kind in [Kind::Matrix, Kind::Symmetric, Kind::Asymmetric] {
        let a = generate(&spec(kind, "0.4", "0", 1), &clean_set(&labels, 10))
            .unwrap()
            .labels;
        let b = generate(&spec(kind, "0.4", "0", 1), &clean_set(&labels, 10))
            .unwrap()
            .labels;
        let c = generate(&spec(kind, "0.4", "0", 2), &clean_set(&labels, 10))
            .unwrap()
            .labels;
        assert_eq!(a, b, "{kind:?}");
        assert_ne!(a, c, "{kind:?}");
    }
}

/// Noise 1 asks for trace 0. cleanlab keeps every diagonal rate ≥ 1e-5 for K > 2, so no matrix
/// exists: the generator used to move mass between the extremes for ever. Now it refuses at
/// once; with 2 classes (no lower bound on the diagonal) trace 0 is the swap matrix.
#[test]
fn unreachable_traces_are_refused_instead_of_searched_for_ever() {
    let spec = |k, trace, sparsity| TraceSpec {
        num_classes: k,
        trace,
        sparsity,
        valid_for_prior: None,
    };
    let started = std::time::Instant::now();
    for (k, trace, sparsity, needle) in [
        (10, 0.0, 0.0, "no noise matrix exists"),
        (10, 0.0, 0.6, "no noise matrix exists"),
        (3, 0.00002, 0.0, "below 0.00003"),
        (2, 0.5, 0.5, "must be at least 1"),
    ] {
        let err = matrix::from_trace(
            &spec(k, trace, sparsity),
            &mut stream(0, Stream::NoiseMatrix),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "K {k} trace {trace}: {err}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let swap = matrix::from_trace(&spec(2, 0.0, 0.0), &mut stream(0, Stream::NoiseMatrix)).unwrap();
    assert_eq!(swap, vec![vec![0.0, 1.0], vec![1.0, 0.0]]);
    // The smallest reachable trace for K = 10 is 10 × 1e-5: every diagonal rate at its floor.
    let floor =
        matrix::from_trace(&spec(10, 1e-4, 0.0), &mut stream(0, Stream::NoiseMatrix)).unwrap();
    for c in 0..10 {
        assert!(
            (floor[c][c] - 1e-5).abs() < 2e-6,
            "diagonal {c}: {}",
            floor[c][c]
        );
        let column: f64 = (0..10).map(|s| floor[s][c]).sum();
        assert!((column - 1.0).abs() < 1e-9);
    }
}
