//! The projector ("expander") of the reference VICReg / Barlow Twins code.
//!
//! ```python
//! f = [embedding] + list(map(int, args.mlp.split("-")))
//! for i in range(len(f) - 2):
//!     layers += [nn.Linear(f[i], f[i + 1]), nn.BatchNorm1d(f[i + 1]), nn.ReLU(True)]
//! layers.append(nn.Linear(f[-2], f[-1], bias=False))
//! projector = nn.Sequential(*layers)
//! ```
//!
//! Variables are named by their index in that `nn.Sequential` (Linear at 0, BN at 1, ReLU at 2
//! owns nothing, Linear at 3, …), so with the path `vs.root() / "projector"` a checkpoint has the
//! reference's `projector.0.weight`, `projector.1.running_mean`, … names. The last Linear has no
//! bias: a bias would be cancelled by the centering in the SSL losses anyway.

use crate::distributed::sync_bn::SyncBatchNorm;
use crate::distributed::{DistError, ProcessGroup};
use anyhow::{bail, ensure, Result};
use tch::nn::{self, Init, Path};
use tch::Tensor;

/// Entries one hidden stage takes in the `nn.Sequential`: Linear, BatchNorm1d, ReLU.
const STAGE_LEN: usize = 3;

/// `"8192-8192-8192"` → `[8192, 8192, 8192]`: the widths after the embedding.
pub fn parse_mlp(spec: &str) -> Result<Vec<i64>> {
    ensure!(
        !spec.trim().is_empty(),
        "--mlp '{spec}' is empty: give widths like 2048-2048-2048"
    );
    spec.split('-')
        .map(|part| match part.trim().parse::<i64>() {
            Ok(w) if w > 0 => Ok(w),
            _ => bail!("--mlp '{spec}': '{part}' is not a positive integer"),
        })
        .collect()
}

/// Linear → SyncBatchNorm → ReLU stages, then a bias-free Linear.
#[derive(Debug)]
pub struct Projector {
    hidden: Vec<(nn::Linear, SyncBatchNorm)>,
    last: nn::Linear,
    dims: Vec<i64>,
}

impl Projector {
    /// `widths` are the layer outputs after the `embedding_dim` input (see [`parse_mlp`]).
    pub fn new(p: &Path, embedding_dim: i64, widths: &[i64]) -> Result<Projector> {
        ensure!(!widths.is_empty(), "the projector needs at least one layer");
        ensure!(
            embedding_dim > 0 && widths.iter().all(|&w| w > 0),
            "projector widths must be positive: {embedding_dim} then {widths:?}"
        );
        let dims: Vec<i64> = std::iter::once(embedding_dim)
            .chain(widths.iter().copied())
            .collect();
        let n = dims.len() - 1;
        let hidden = (0..n - 1)
            .map(|i| {
                let at = i * STAGE_LEN;
                let linear = torch_linear(p / at, dims[i], dims[i + 1], true);
                (linear, SyncBatchNorm::new(p / (at + 1), dims[i + 1]))
            })
            .collect();
        let last = torch_linear(p / ((n - 1) * STAGE_LEN), dims[n - 1], dims[n], false);
        Ok(Projector { hidden, last, dims })
    }

    /// [`parse_mlp`] then [`Projector::new`].
    pub fn from_spec(p: &Path, embedding_dim: i64, spec: &str) -> Result<Projector> {
        Projector::new(p, embedding_dim, &parse_mlp(spec)?)
    }

    /// Width of the projection.
    pub fn out_dim(&self) -> i64 {
        *self.dims.last().expect("at least one layer")
    }

    /// N×embedding_dim → N×out_dim; BN statistics over the global batch when `train`.
    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        self.check_input(x, group)?;
        let mut h = x.shallow_clone();
        for (linear, bn) in &self.hidden {
            h = bn.forward(&h.apply(linear), train, group)?.relu();
        }
        Ok(h.apply(&self.last))
    }

    fn check_input(&self, x: &Tensor, group: &ProcessGroup) -> Result<(), DistError> {
        let size = x.size();
        if size.len() == 2 && size[1] == self.dims[0] {
            return Ok(());
        }
        Err(DistError::BadTensor {
            op: "Projector::forward",
            rank: group.rank(),
            problem: format!("expected N×{} embeddings, got shape {size:?}", self.dims[0]),
        })
    }
}

/// `nn.Linear`'s own init (kaiming_uniform with a=√5, i.e. U(±1/√in) for weight and bias), not
/// tch's default (U(±√6/√in)), so training starts as in the reference.
pub(crate) fn torch_linear(p: Path, c_in: i64, c_out: i64, bias: bool) -> nn::Linear {
    let bound = 1.0 / (c_in as f64).sqrt();
    let uniform = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let config = nn::LinearConfig {
        ws_init: uniform,
        bs_init: Some(uniform),
        bias,
    };
    nn::linear(p, c_in, c_out, config)
}

/// Every Linear layer of `vs` (each 2-D `weight`, and the `bias` beside it) initialized as the
/// real-world SSR scripts' `init_weights`: weight N(0, `std`), bias 0. Normalization layers (1-D
/// weights) keep theirs.
pub fn init_linears_normal(vs: &tch::nn::VarStore, std: f64) {
    let vars = vs.variables();
    let is_linear = |prefix: &str| {
        vars.get(&format!("{prefix}weight"))
            .is_some_and(|w| w.dim() == 2)
    };
    tch::no_grad(|| {
        for (name, t) in &vars {
            let mut t = t.shallow_clone();
            if name.strip_suffix("weight").is_some_and(is_linear) {
                let _ = t.normal_(0.0, std);
            } else if name.strip_suffix("bias").is_some_and(is_linear) {
                let _ = t.zero_();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::Device;

    /// Linear weights get N(0, std) (sample std of 65,536 draws within 2%: its standard error
    /// is 0.3%), Linear biases 0; a BatchNorm's weight is left as it was (its bias starts at 0).
    #[test]
    fn linears_are_initialized_normal_and_norms_left_alone() {
        let vs = VarStore::new(Device::Cpu);
        let _first = torch_linear(vs.root() / "0", 256, 256, true);
        let _norm = nn::batch_norm1d(vs.root() / "1", 256, Default::default());
        let _last = torch_linear(vs.root() / "3", 256, 10, true);
        let norm_weight = vs.variables()["1.weight"].copy();
        init_linears_normal(&vs, 0.001);
        let v = vs.variables();
        let std = v["0.weight"].std(true).double_value(&[]);
        assert!((std - 0.001).abs() < 0.00002, "{std}");
        assert!(v["0.weight"].mean(tch::Kind::Float).double_value(&[]).abs() < 1e-5);
        for zero in ["0.bias", "3.bias", "1.bias"] {
            assert_eq!(v[zero].abs().max().double_value(&[]), 0.0, "{zero}");
        }
        assert!(
            v["1.weight"].equal(&norm_weight),
            "BatchNorm's weight changed"
        );
        assert!(v["3.weight"].std(true).double_value(&[]) < 0.0015);
    }

    #[test]
    fn linear_init_matches_torch_bounds() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Projector::new(&(vs.root() / "projector"), 64, &[32, 16]).unwrap();
        let vars = vs.variables();
        let w = &vars["projector.0.weight"];
        let max = w.abs().max().double_value(&[]);
        assert!(max <= 1.0 / 8.0 && max > 0.1, "{max}");
        assert!(!vars.contains_key("projector.3.bias"));
    }

    #[test]
    fn rejects_wrong_width() {
        let vs = VarStore::new(Device::Cpu);
        let proj = Projector::new(&vs.root(), 8, &[4]).unwrap();
        let x = Tensor::zeros([2, 5], (tch::Kind::Float, Device::Cpu));
        let err = proj
            .forward(&x, false, &ProcessGroup::single(Device::Cpu))
            .unwrap_err()
            .to_string();
        assert!(err.contains("N×8"), "{err}");
    }
}
