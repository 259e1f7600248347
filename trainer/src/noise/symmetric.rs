//! Symmetric ("uniform") noise. Exactly ⌊noise·N⌋ samples, chosen uniformly without replacement,
//! are relabelled (`--flips exact`; ELR draws ⌈noise·N⌉), or each sample independently with
//! probability noise (`--flips bernoulli`: IEG's `rand <= noise`, new label over all classes).
//! The two conventions of the literature differ in the new label:
//! - `any`: uniformly random over all K classes, possibly the true one (ELR, Ghosh & Lan);
//!   the realized flip rate is about noise·(K−1)/K.
//! - `other`: uniformly random over the K−1 other classes (Active-Passive Losses);
//!   the realized flip rate is exactly ⌊noise·N⌋/N.

use super::decimal::Decimal;
use super::rng::{below, NoiseRng};
use super::variants::{select, Flips};
use clap::ValueEnum;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Convention {
    /// New label uniform over all classes (may equal the true label).
    Any,
    /// New label uniform over the other classes (always a real flip).
    Other,
}

pub fn flip(
    labels: &[usize],
    k: usize,
    noise: Decimal,
    convention: Convention,
    flips: Flips,
    rng: &mut NoiseRng,
) -> Vec<usize> {
    let all: Vec<usize> = (0..labels.len()).collect();
    let mut noisy = labels.to_vec();
    for idx in select(rng, &all, noise, flips) {
        noisy[idx] = match convention {
            Convention::Any => below(rng, k),
            Convention::Other => {
                let r = below(rng, k - 1);
                if r >= labels[idx] {
                    r + 1
                } else {
                    r
                }
            }
        };
    }
    noisy
}
