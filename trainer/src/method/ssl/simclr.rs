//! NT-Xent (SimCLR's normalized temperature-scaled cross-entropy) over the global batch.
//!
//! Arrangement: each rank L2-normalizes its views z1, z2 (`[n, d]`) and gathers them with
//! gradient, giving Z1, Z2 of N = n·world rows in rank order. The 2N rows are
//! Z = [Z1; Z2] (row i < N: view 1 of image i; row N + i: view 2 of image i), and
//! logits = Z·Zᵀ / T with the diagonal (self-pairs) set to −∞. Row i's target is its other view
//! (i + N for i < N, i − N otherwise), and the loss is the cross-entropy averaged over all 2N
//! rows: −(1/2N) Σᵢ log(exp(s_i,pos/T) / Σ_{j≠i} exp(s_ij/T)). The positive stays in the
//! denominator, as in the reference; every other row of either view is a negative.
//!
//! The arrangement over ranks equals one process's on the concatenated batch, so every rank
//! computes the same value, and the gradient after averaging over ranks is the one-process one.

use crate::distributed::{DistError, ProcessGroup};
use tch::{Kind, Reduction, Tensor};

/// F.normalize's floor on the norm, so that a zero embedding gives zeros, not NaN.
const NORM_EPS: f64 = 1e-12;

/// NT-Xent of this rank's views `z1`, `z2` (row i of both from the same image) at temperature
/// `temperature`, over the global batch of `group`.
pub fn nt_xent(
    z1: &Tensor,
    z2: &Tensor,
    group: &ProcessGroup,
    temperature: f64,
) -> Result<Tensor, DistError> {
    let z1 = group.all_gather_with_grad(&normalized(z1))?;
    let z2 = group.all_gather_with_grad(&normalized(z2))?;
    let n = z1.size()[0];
    let z = Tensor::cat(&[z1, z2], 0);
    let self_pairs = Tensor::eye(2 * n, (Kind::Bool, z.device()));
    let logits = (z.matmul(&z.tr()) / temperature).masked_fill(&self_pairs, f64::NEG_INFINITY);
    Ok(logits.cross_entropy_loss::<Tensor>(
        &positive_index(n, z.device()),
        None,
        Reduction::Mean,
        -100,
        0.0,
    ))
}

/// Each row scaled to unit L2 norm, as `F.normalize(z, dim=1)`.
fn normalized(z: &Tensor) -> Tensor {
    z / z.norm_scalaropt_dim(2, [1], true).clamp_min(NORM_EPS)
}

/// For rows 0..2N of [Z1; Z2], the row holding the other view of the same image.
fn positive_index(n: i64, device: tch::Device) -> Tensor {
    let index = Tensor::arange(2 * n, (Kind::Int64, device));
    (index + n).remainder(2 * n)
}
