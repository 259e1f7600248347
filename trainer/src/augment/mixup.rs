//! Mixup (Zhang et al. 2018, as in facebookresearch/mixup-cifar10): one λ ~ Beta(α, α) per
//! batch and a random partner for every image.
//!
//! Partners come from the rank's own slice of the global batch, as DDP training does when each
//! process mixes its own batch: the partners (and so the result) depend on the world size. λ
//! and the permutation come from the keyed stream, so a key repeats them exactly.

use super::ViewKey;
use crate::model::precision::upload_slice;
use crate::noise::rng::below;
use anyhow::{ensure, Result};
use rand_distr::{Beta, Distribution};
use tch::{Kind, Tensor};

/// The mixed batch, the partner of each image (`[N]` int64 indices into `local`) and λ:
/// `mixed = λ·x + (1 − λ)·x[partner]`, `x` = `local` as float (uint8 is scaled to `[0, 1]`).
/// Mix the targets the same way: `λ·loss(y) + (1 − λ)·loss(y[partner])`.
pub fn mixup(local: &Tensor, key: ViewKey, alpha: f64) -> Result<(Tensor, Tensor, f64)> {
    ensure!(
        alpha > 0.0 && alpha.is_finite(),
        "mixup alpha must be positive (got {alpha})"
    );
    let n = local.size().first().copied().unwrap_or(0);
    ensure!(n > 0, "mixup needs a non-empty batch");
    let mut rng = key.rng();
    let lambda = Beta::new(alpha, alpha)?.sample(&mut rng);
    let partner = permutation(&mut rng, n as usize);
    let partner = upload_slice(&partner, local.device());
    let x = super::to_unit_float(local);
    let mixed = &x * lambda + x.index_select(0, &partner) * (1.0 - lambda);
    Ok((mixed.to_kind(Kind::Float), partner, lambda))
}

/// A uniform permutation of `0..n` (Fisher–Yates).
fn permutation(rng: &mut rand_xoshiro::Xoshiro256PlusPlus, n: usize) -> Vec<i64> {
    let mut p: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        p.swap(i, below(rng, i + 1));
    }
    p
}
