//! The VICReg loss exactly as the reference (`VICReg.forward` in facebookresearch/vicreg):
//!
//! - repr = MSE(x, y) on this rank's batch only (mean over its elements);
//! - x, y gathered over ranks (gradient kept) and centred over the global batch of N rows;
//! - std = √(var + 1e-4), var unbiased (÷ N−1) per feature; std_loss = mean(relu(1 − std_x))/2
//!   + mean(relu(1 − std_y))/2;
//! - cov = xᵀx/(N − 1); cov_loss = Σ offdiag(cov_x)²/D + Σ offdiag(cov_y)²/D;
//! - total = sim·repr + std·std_loss + cov·cov_loss.
//!
//! With equal local batches the ranks' repr terms average to the whole-batch MSE, so the
//! averaged gradient equals one process's on the whole batch, as it does for the global terms.

use crate::distributed::{DistError, ProcessGroup};
use tch::{Kind, Reduction, Tensor};

/// The coefficients of the three terms: invariance (`-I`/`--sim-coeff`), variance
/// (`-V`/`--std-coeff`) and covariance (`-C`/`--cov-coeff`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VicregWeights {
    pub sim: f64,
    pub std: f64,
    pub cov: f64,
}

impl Default for VicregWeights {
    /// The reference's 25 / 25 / 1.
    fn default() -> Self {
        VicregWeights {
            sim: 25.0,
            std: 25.0,
            cov: 1.0,
        }
    }
}

/// The weighted total and the three unweighted terms.
pub struct VicregParts {
    pub total: Tensor,
    pub repr: Tensor,
    pub std: Tensor,
    pub cov: Tensor,
}

/// Added to the variance before the square root, as in the reference.
const VAR_EPS: f64 = 1e-4;

/// VICReg of this rank's embeddings `x`, `y` (`[local batch, D]`) over the global batch.
pub fn vicreg(
    x: &Tensor,
    y: &Tensor,
    group: &ProcessGroup,
    weights: VicregWeights,
) -> Result<VicregParts, DistError> {
    let repr = x.mse_loss(y, Reduction::Mean);
    let x = centred(&group.all_gather_with_grad(x)?);
    let y = centred(&group.all_gather_with_grad(y)?);
    let std = (std_hinge(&x) + std_hinge(&y)) / 2.0;
    let cov = off_diagonal_penalty(&x) + off_diagonal_penalty(&y);
    let total = &repr * weights.sim + &std * weights.std + &cov * weights.cov;
    Ok(VicregParts {
        total,
        repr,
        std,
        cov,
    })
}

fn centred(t: &Tensor) -> Tensor {
    t - t.mean_dim(0, true, None::<Kind>)
}

/// mean over features of relu(1 − √(var + eps)): pushes each feature's std up to 1.
fn std_hinge(x: &Tensor) -> Tensor {
    let std = (x.var_dim(0, true, false) + VAR_EPS).sqrt();
    (-std + 1.0).relu().mean(None::<Kind>)
}

/// Σ of the squared off-diagonal covariances over D, for centred `x`: decorrelates features.
fn off_diagonal_penalty(x: &Tensor) -> Tensor {
    let (n, d) = x.size2().expect("embeddings are [batch, dim]");
    let cov = x.tr().matmul(x) / (n - 1) as f64;
    off_diagonal(&cov).square().sum(None::<Kind>) / d as f64
}

/// The off-diagonal elements of a square matrix in row order, as the reference's
/// `x.flatten()[:-1].view(n - 1, n + 1)[:, 1:]` picks them: the same elements in the same order
/// as a boolean mask would select, but by views, whose size the host knows (`masked_select`
/// would wait for the device to count them, every step).
fn off_diagonal(m: &Tensor) -> Tensor {
    let d = m.size()[0];
    m.flatten(0, -1)
        .narrow(0, 0, d * d - 1)
        .view([d - 1, d + 1])
        .narrow(1, 1, d)
        .contiguous()
        .flatten(0, -1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn off_diagonal_picks_what_the_mask_selects_in_the_same_order() {
        let m = Tensor::randn([5, 5], (Kind::Float, Device::Cpu));
        let mask = Tensor::eye(5, (Kind::Bool, Device::Cpu)).logical_not();
        let want = m.masked_select(&mask);
        let got = off_diagonal(&m);
        assert_eq!(got.size(), [20]);
        assert!(got.equal(&want), "{got} vs {want}");
    }
}
