//! AdamW as `torch.optim.AdamW` (no amsgrad), step t counted per variable:
//! p ← p·(1 − lr·wd); m ← lerp(m, g, 1 − β1); v ← β2·v + (1 − β2)·g²;
//! p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps).

use super::params::{variables, Param, UpdateRule};
use super::{adam, foreach};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamW {
    /// PyTorch's defaults.
    fn default() -> Self {
        AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

impl UpdateRule for AdamW {
    const SLOTS: &'static [&'static str] = adam::SLOTS;

    fn update(&self, p: &mut Param, g: &Tensor, lr: f64) {
        let _ = p.var.g_mul_scalar_(1.0 - lr * self.weight_decay);
        adam::moments_step(p, g, lr, (self.beta1, self.beta2, self.eps));
    }

    /// The same values as [`AdamW::update`] per variable, in multi-tensor ops.
    fn update_group(&self, params: &mut [&mut Param], grads: &[Tensor], lr: f64) {
        foreach::mul_scalar_(&variables(params), 1.0 - lr * self.weight_decay);
        adam::moments_step_group(params, grads, lr, (self.beta1, self.beta2, self.eps));
    }

    fn without_weight_decay(&self) -> Self {
        AdamW {
            weight_decay: 0.0,
            ..*self
        }
    }
}
