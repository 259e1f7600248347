//! Instance-dependent noise (Xia et al. 2020, "Part-dependent label noise"):
//! per-sample flip rate q_i ~ N(noise, 0.1²) truncated to [0, 1] (rejection sampling);
//! W ~ N(0, 1) of shape K×d×K; a = x_i·W[y_i]; a[y_i] = −∞; p = q_i·softmax(a);
//! p[y_i] += 1 − q_i; new label ~ Categorical(p).
//! `--instance-model cheng` (Cheng et al. 2023, seed paper 003): one W of shape d×K shared by
//! every class, a = x_i·W, the rest the same; a sample's flip target then depends on its image
//! only through x_i·W, whatever its class.
//! x_i is the image scaled to [0, 1] and flattened (d = C·H·W), as Cheng et al. 2023 use.
//! Noise 0 returns the clean labels: the truncated normal would otherwise still flip about 8%.
//! The mean of the truncated normal moves towards 0.5 near the ends of [0, 1], so requests below
//! about 0.2 or above 0.8 realize a little more or less than asked.

use super::decimal::Decimal;
use super::rng::{stream, NoiseRng, Stream};
use super::variants::InstanceModel;
use anyhow::{ensure, Result};
use rand::Rng;

use rand_distr::{Distribution, Normal, StandardNormal};

const RATE_STD: f64 = 0.1;

/// `pixels`: N·d bytes, sample-major.
pub fn flip(
    labels: &[usize],
    k: usize,
    pixels: &[u8],
    noise: Decimal,
    model: InstanceModel,
    seed: u64,
) -> Result<Vec<usize>> {
    let n = labels.len();
    ensure!(
        n > 0 && pixels.len().is_multiple_of(n),
        "instance noise needs one image per label"
    );
    if noise.is_zero() {
        return Ok(labels.to_vec());
    }
    let d = pixels.len() / n;
    let rates = flip_rates(n, noise.to_f64(), &mut stream(seed, Stream::InstanceRates));
    let blocks = match model {
        InstanceModel::Xia => k,
        InstanceModel::Cheng => 1,
    };
    let w = projection(blocks, d, k, &mut stream(seed, Stream::InstanceProjection));
    let mut draw = stream(seed, Stream::InstanceLabels);
    let noisy = (0..n)
        .map(|i| {
            let x = &pixels[i * d..(i + 1) * d];
            let block = if blocks == 1 { 0 } else { labels[i] };
            let probs = transition_row(
                x,
                &w[block * d * k..(block + 1) * d * k],
                k,
                labels[i],
                rates[i],
            );
            sample_categorical(&probs, draw.gen::<f64>())
        })
        .collect();
    Ok(noisy)
}

fn flip_rates(n: usize, mean: f64, rng: &mut NoiseRng) -> Vec<f64> {
    let normal = Normal::new(mean, RATE_STD).expect("valid normal");
    (0..n)
        .map(|_| loop {
            let q = normal.sample(rng);
            if (0.0..=1.0).contains(&q) {
                break q;
            }
        })
        .collect()
}

/// `blocks` blocks of d×K weights: K for Xia (block y used for samples of true class y), 1 for
/// Cheng (used for every sample). Xia's draws are those of before the Cheng variant existed.
fn projection(blocks: usize, d: usize, k: usize, rng: &mut NoiseRng) -> Vec<f32> {
    (0..blocks * d * k)
        .map(|_| StandardNormal.sample(rng))
        .collect()
}

/// The distribution of the noisy label of an image `x` (bytes) of true class `y` under the
/// projection `w_y` (d×K, row-major) and flip rate `rate`: `rate·softmax(x·w_y)` over the
/// other classes, `1 − rate` on `y`.
pub fn transition_row(x: &[u8], w_y: &[f32], k: usize, y: usize, rate: f64) -> Vec<f64> {
    let mut logits = vec![0f64; k];
    for (j, &px) in x.iter().enumerate() {
        let v = f64::from(px) / 255.0;
        for (l, wv) in logits.iter_mut().zip(&w_y[j * k..(j + 1) * k]) {
            *l += v * f64::from(*wv);
        }
    }
    logits[y] = f64::NEG_INFINITY;
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut probs: Vec<f64> = exp.iter().map(|e| rate * e / total).collect();
    probs[y] += 1.0 - rate;
    probs
}

fn sample_categorical(probs: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    for (c, p) in probs.iter().enumerate() {
        acc += p;
        if u < acc {
            return c;
        }
    }
    probs.len() - 1
}
