//! Class-conditional noise as cleanlab generates it (`generate_noise_matrix_from_trace` and
//! `generate_noisy_labels` in `cleanlab.benchmarking.noise_generation`), ported step by step.
//! Convention: `nm[s][y] = P(noisy = s | true = y)`; every column sums to 1.
//! Draws come from Xoshiro256++, not numpy's Mersenne Twister, so matrices match cleanlab's in
//! distribution and in every counted statistic, not bit for bit.

use super::rng::{choose, partial_shuffle, NoiseRng};
use anyhow::{bail, ensure, Result};
use rand::Rng;

use rand_distr::{Distribution, Exp1};

/// cleanlab's `FLOATING_POINT_COMPARISON`.
const EPS: f64 = 1e-6;
const MAX_ITER: usize = 10_000;
const MIN_TRACE_PROB: f64 = 1e-5;
const MAX_NOISE_RATE: f64 = 1.0 - 1e-5;
/// Mass moves per value before [`probabilities_summing_to`] gives up; cleanlab's loop has no
/// bound and spins for ever on impossible requests. Feasible ones need a handful.
const MAX_MOVES_PER_VALUE: usize = 10_000;

pub type Matrix = Vec<Vec<f64>>;

/// What to generate.
pub struct TraceSpec<'a> {
    pub num_classes: usize,
    pub trace: f64,
    /// Fraction of the K·(K−1) off-diagonal rates that are zero.
    pub sparsity: f64,
    /// When set, only matrices that are learnable under this class prior are accepted.
    pub valid_for_prior: Option<&'a [f64]>,
}

/// A random K×K noise matrix with the given trace (cleanlab's algorithm).
pub fn from_trace(spec: &TraceSpec, rng: &mut NoiseRng) -> Result<Matrix> {
    let k = spec.num_classes;
    ensure!(k >= 2, "a noise matrix needs at least 2 classes, got {k}");
    ensure!(
        spec.trace <= k as f64 && spec.trace >= 0.0,
        "trace {} is outside [0, {k}]",
        spec.trace
    );
    if spec.valid_for_prior.is_some() {
        ensure!(
            spec.trace > 1.0,
            "a valid (learnable) noise matrix needs trace > 1, but trace = K·(1 − noise) = {}; \
             lower the noise or drop the validity check",
            spec.trace
        );
    }
    if spec.trace == k as f64 {
        return Ok(identity(k));
    }
    if k == 2 {
        return two_class(spec, rng);
    }
    check_reachable_trace(k, spec.trace)?;
    for _ in 0..MAX_ITER {
        let nm = one_candidate(spec, rng)?;
        match spec.valid_for_prior {
            Some(py) if !is_valid(&nm, py) => continue,
            _ => return Ok(nm),
        }
    }
    bail!(
        "no valid noise matrix with trace {} and sparsity {} in {MAX_ITER} tries; \
         lower the noise or the sparsity, or drop the validity check",
        spec.trace,
        spec.sparsity
    )
}

/// cleanlab keeps every diagonal rate at least [`MIN_TRACE_PROB`] for K > 2, so a smaller trace
/// (noise 1 gives trace 0) has no matrix: refused here rather than searched for ever.
fn check_reachable_trace(k: usize, trace: f64) -> Result<()> {
    let least = k as f64 * MIN_TRACE_PROB;
    ensure!(
        trace >= least - EPS,
        "trace K·(1 − noise) = {trace} is below {least} (K = {k} diagonal rates of at least \
         {MIN_TRACE_PROB} each, as cleanlab's generator requires), so no noise matrix exists: \
         use a noise level of at most {}, or --kind symmetric --convention other to flip every \
         label",
        1.0 - MIN_TRACE_PROB
    );
    Ok(())
}

pub fn identity(k: usize) -> Matrix {
    (0..k)
        .map(|i| (0..k).map(|j| f64::from(u8::from(i == j))).collect())
        .collect()
}

fn two_class(spec: &TraceSpec, rng: &mut NoiseRng) -> Result<Matrix> {
    let t = spec.trace;
    if spec.sparsity >= 0.5 {
        // One clean column: its diagonal 1, the other's t − 1, which must be a probability.
        ensure!(
            t >= 1.0,
            "with 2 classes and sparsity {} ≥ 0.5 one class stays clean, so the trace \
             2·(1 − noise) = {t} must be at least 1: use noise ≤ 0.5 or sparsity < 0.5",
            spec.sparsity
        );
        let m = vec![vec![1.0, 2.0 - t], vec![0.0, t - 1.0]];
        Ok(if rng.gen::<f64>() > 0.5 {
            m
        } else {
            vec![vec![t - 1.0, 0.0], vec![2.0 - t, 1.0]] // rotated by 180°
        })
    } else {
        let d = probabilities_summing_to(rng, 2, t, 1.0, 0.0)?;
        Ok(vec![vec![d[0], 1.0 - d[1]], vec![1.0 - d[0], d[1]]])
    }
}

fn one_candidate(spec: &TraceSpec, rng: &mut NoiseRng) -> Result<Matrix> {
    let k = spec.num_classes;
    let diag = probabilities_summing_to(rng, k, spec.trace, 1.0, MIN_TRACE_PROB)?;
    let mut nm = identity(k);
    let noisy_cols: Vec<usize> = (0..k).filter(|&c| diag[c] != 1.0).collect();
    // Zeros already present in the clean columns count towards the requested total.
    let wanted = (k * (k - 1)) as f64 * spec.sparsity;
    let zeros = (wanted as i64 - ((k - noisy_cols.len()) * (k - 1)) as i64).max(0) as usize;
    let zeros_per_col = distribute_balls(rng, zeros, noisy_cols.len(), k - 2)?;
    for (&col, &col_zeros) in noisy_cols.iter().zip(&zeros_per_col) {
        nm[col][col] = diag[col];
        let n_rates = k - 1 - col_zeros;
        let rates = probabilities_summing_to(rng, n_rates, 1.0 - diag[col], MAX_NOISE_RATE, 0.0)?;
        let rows: Vec<usize> = (0..k).filter(|&r| r != col).collect();
        for (row, rate) in choose(rng, &rows, n_rates).into_iter().zip(rates) {
            nm[row][col] = rate;
        }
    }
    Ok(nm)
}

/// `n` random non-negative values summing to `m`, each within [min_p, max_p]: a flat Dirichlet
/// scaled by `m`, then mass moved between the extremes until the bounds hold (cleanlab's loop,
/// refused up front when no such values exist and bounded in moves).
fn probabilities_summing_to(
    rng: &mut NoiseRng,
    n: usize,
    m: f64,
    max_p: f64,
    min_p: f64,
) -> Result<Vec<f64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let (least, most) = (n as f64 * min_p, n as f64 * max_p);
    ensure!(
        m >= least - EPS && m <= most + EPS,
        "{n} probabilities in [{min_p}, {max_p}] cannot sum to {m} (their sum lies in \
         [{least}, {most}])"
    );
    let mut p: Vec<f64> = (0..n).map(|_| Exp1.sample(rng)).collect();
    let total: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x = *x / total * m);
    let mut moves = 0..MAX_MOVES_PER_VALUE * n;
    let mut out_of_moves = || {
        moves.next().is_none().then(|| {
            anyhow::anyhow!(
                "{n} probabilities in [{min_p}, {max_p}] summing to {m}: not found in \
                 {MAX_MOVES_PER_VALUE}·{n} moves of mass"
            )
        })
    };
    while max_of(&p).1 > max_p + EPS {
        if let Some(e) = out_of_moves() {
            return Err(e);
        }
        let (imin, min_v) = min_of(&p);
        let (imax, max_v) = max_of(&p);
        let new_min = min_v + (max_v - max_p);
        let adjustment = (max_p - new_min) * rng.gen::<f64>();
        p[imin] = new_min + adjustment;
        p[imax] = max_p - adjustment;
    }
    while min_of(&p).1 < min_p - EPS {
        if let Some(e) = out_of_moves() {
            return Err(e);
        }
        let (imin, min_v) = min_of(&p);
        let (imax, max_v) = max_of(&p);
        let new_max = max_v - (min_p - min_v);
        let adjustment = (new_max - min_p) * rng.gen::<f64>();
        p[imax] = new_max - adjustment;
        p[imin] = min_p + adjustment;
    }
    Ok(p)
}

fn min_of(v: &[f64]) -> (usize, f64) {
    v.iter()
        .copied()
        .enumerate()
        .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a })
}

fn max_of(v: &[f64]) -> (usize, f64) {
    v.iter()
        .copied()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a })
}

/// `balls` spread randomly over `bins`, at most `max_per_bin` each (cleanlab's
/// `randomly_distribute_N_balls_into_K_bins`; asking for more than fits gives as many as fit).
fn distribute_balls(
    rng: &mut NoiseRng,
    balls: usize,
    bins: usize,
    max_per_bin: usize,
) -> Result<Vec<usize>> {
    if balls == 0 || bins == 0 {
        return Ok(vec![0; bins]);
    }
    let max_per_bin = max_per_bin.min(balls);
    let balls = balls.min(max_per_bin * bins);
    let share = probabilities_summing_to(rng, bins, 1.0, max_per_bin as f64 / balls as f64, 0.0)?;
    let mut counts: Vec<i64> = share
        .iter()
        .map(|s| (s * balls as f64).round() as i64)
        .collect();
    let target = balls as i64;
    while counts.iter().sum::<i64>() > target {
        let i = counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, &c)| (c, std::cmp::Reverse(i)))
            .unwrap()
            .0;
        counts[i] -= 1;
    }
    while counts.iter().sum::<i64>() < target {
        let i = counts
            .iter()
            .enumerate()
            .min_by_key(|&(i, &c)| (c, i))
            .unwrap()
            .0;
        counts[i] += 1;
    }
    Ok(counts.into_iter().map(|c| c as usize).collect())
}

/// cleanlab's `noise_matrix_is_valid`: the joint sums to 1 and, for every class,
/// p(noisy = i)·p(true = i) < p(noisy = i, true = i).
pub fn is_valid(nm: &Matrix, py: &[f64]) -> bool {
    let k = py.len();
    let joint = |s: usize, y: usize| nm[s][y] * py[y];
    let total: f64 = (0..k)
        .flat_map(|s| (0..k).map(move |y| (s, y)))
        .map(|(s, y)| joint(s, y))
        .sum();
    if (total - 1.0).abs() >= EPS {
        return false;
    }
    (0..k).all(|i| {
        let p_noisy_i: f64 = (0..k).map(|y| nm[i][y] * py[y]).sum();
        p_noisy_i * py[i] < joint(i, i)
    })
}

/// Number of samples to flip from true class `y` to `s`: trunc(nm[s][y] · p(y) · N), off the
/// diagonal, evaluated in cleanlab's order of float operations.
pub fn flip_counts(nm: &Matrix, class_counts: &[usize]) -> Vec<Vec<usize>> {
    let n = class_counts.iter().sum::<usize>() as f64;
    let py: Vec<f64> = class_counts.iter().map(|&c| c as f64 / n).collect();
    let k = class_counts.len();
    (0..k)
        .map(|s| {
            (0..k)
                .map(|y| {
                    if s == y {
                        0
                    } else {
                        (nm[s][y] * py[y] * n) as usize
                    }
                })
                .collect()
        })
        .collect()
}

/// cleanlab's `generate_noisy_labels`: for each true class, exactly `flip_counts` distinct
/// samples of that class receive each other label.
pub fn flip_exact(labels: &[usize], nm: &Matrix, rng: &mut NoiseRng) -> Result<Vec<usize>> {
    let k = nm.len();
    let class_counts = super::class_counts(labels, k);
    let counts = flip_counts(nm, &class_counts);
    let (order, starts) = indices_by_class(labels, &class_counts);
    let mut order = order;
    let mut noisy = labels.to_vec();
    for y in 0..k {
        let members = &mut order[starts[y]..starts[y + 1]];
        let total: usize = (0..k).map(|s| counts[s][y]).sum();
        ensure!(
            total <= members.len(),
            "the noise matrix asks to flip {total} samples of class {y}, which has only {}",
            members.len()
        );
        // A uniformly random ordered subset of the class, handed out to the new labels in turn.
        let chosen = partial_shuffle(rng, members, total);
        let targets = (0..k).flat_map(|s| std::iter::repeat_n(s, counts[s][y]));
        for (&idx, s) in chosen.iter().zip(targets) {
            noisy[idx as usize] = s;
        }
    }
    Ok(noisy)
}

/// Sample indices grouped by class (a counting sort), with each class's start offset.
fn indices_by_class(labels: &[usize], class_counts: &[usize]) -> (Vec<u32>, Vec<usize>) {
    let mut starts = vec![0; class_counts.len() + 1];
    for (y, &c) in class_counts.iter().enumerate() {
        starts[y + 1] = starts[y] + c;
    }
    let mut next = starts.clone();
    let mut order = vec![0u32; labels.len()];
    for (i, &y) in labels.iter().enumerate() {
        order[next[y]] = i as u32;
        next[y] += 1;
    }
    (order, starts)
}
