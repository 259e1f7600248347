//! LARS exactly as the VICReg reference uses it (`LARS` with `exclude_bias_and_norm` as both
//! `weight_decay_filter` and `lars_adaptation_filter`).
//!
//! For a variable p with gradient g:
//! - if p.ndim != 1: g' = g + wd·p, then g' ← q·g' with q = eta·‖p‖/‖g'‖ (1 if either norm is 0);
//! - if p.ndim == 1 (biases, norm scales): g' = g, no decay and no scaling;
//! - mu = momentum·mu + g' (mu starts at zero), p −= lr·mu.

use super::foreach;
use super::params::{variables, zeros_buffers, Param, UpdateRule};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lars {
    pub weight_decay: f64,
    pub momentum: f64,
    pub eta: f64,
}

impl Default for Lars {
    /// The reference's defaults, with its pretraining weight decay 1e-6.
    fn default() -> Self {
        Lars {
            weight_decay: 1e-6,
            momentum: 0.9,
            eta: 0.001,
        }
    }
}

const MU: &str = "mu";

impl Lars {
    /// The reference's filter: 1-D variables are biases and normalization scales.
    fn adapts(p: &Param) -> bool {
        p.var.dim() != 1
    }

    /// g + wd·p scaled by the trust ratio eta·‖p‖/‖g + wd·p‖, computed on the device
    /// (no host round trip per variable).
    fn adapted(&self, p: &Tensor, g: &Tensor) -> Tensor {
        let dp = g + p * self.weight_decay;
        let (p_norm, dp_norm) = (p.norm(), dp.norm());
        let one = p_norm.ones_like();
        let q = (&p_norm * self.eta / &dp_norm)
            .where_self(&dp_norm.gt(0.0), &one)
            .where_self(&p_norm.gt(0.0), &one);
        dp * q
    }

    /// [`Lars::adapted`] for a list of variables, in a few multi-tensor ops: the same values
    /// (the same ATen ops in the same order on CPU), but on a GPU fused kernels instead of about
    /// a dozen launches per variable.
    fn adapted_all(&self, ps: &[Tensor], gs: &[Tensor]) -> Vec<Tensor> {
        let dp = foreach::add(gs, &foreach::mul_scalar(ps, self.weight_decay));
        let (p_norm, dp_norm) = (foreach::norms(ps), foreach::norms(&dp));
        let one = p_norm.ones_like();
        let q = (&p_norm * self.eta / &dp_norm)
            .where_self(&dp_norm.gt(0.0), &one)
            .where_self(&p_norm.gt(0.0), &one);
        foreach::mul_(&dp, &q.unbind(0));
        dp
    }
}

impl UpdateRule for Lars {
    const SLOTS: &'static [&'static str] = &[MU];

    fn update(&self, p: &mut Param, g: &Tensor, lr: f64) {
        let dp = if Self::adapts(p) {
            self.adapted(&p.var, g)
        } else {
            g.shallow_clone()
        };
        let mu = p.zeros_buffer(MU);
        let _ = mu.g_mul_scalar_(self.momentum).g_add_(&dp);
        let delta = &*mu * lr;
        let _ = p.var.g_sub_(&delta);
    }

    /// The same values as [`Lars::update`] per variable, in multi-tensor ops.
    fn update_group(&self, params: &mut [&mut Param], grads: &[Tensor], lr: f64) {
        let mut dp: Vec<Tensor> = grads.iter().map(Tensor::shallow_clone).collect();
        let adapt: Vec<usize> = (0..params.len())
            .filter(|&i| Self::adapts(params[i]))
            .collect();
        if !adapt.is_empty() {
            let vars: Vec<Tensor> = adapt
                .iter()
                .map(|&i| params[i].var.shallow_clone())
                .collect();
            let gs: Vec<Tensor> = adapt.iter().map(|&i| grads[i].shallow_clone()).collect();
            for (&i, d) in adapt.iter().zip(self.adapted_all(&vars, &gs)) {
                dp[i] = d;
            }
        }
        let mus = zeros_buffers(params, MU);
        foreach::mul_scalar_(&mus, self.momentum);
        foreach::add_(&mus, &dp);
        foreach::sub_(&variables(params), &foreach::mul_scalar(&mus, lr));
    }

    fn without_weight_decay(&self) -> Self {
        Lars {
            weight_decay: 0.0,
            ..*self
        }
    }
}
