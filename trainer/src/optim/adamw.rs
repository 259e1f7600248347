//! AdamW as `torch.optim.AdamW` (no amsgrad), step t counted per variable:
//! p ← p·(1 − lr·wd); m ← lerp(m, g, 1 − β1); v ← β2·v + (1 − β2)·g²;
//! p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps).

use super::params::{Param, UpdateRule};
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

const EXP_AVG: &str = "exp_avg";
const EXP_AVG_SQ: &str = "exp_avg_sq";

impl UpdateRule for AdamW {
    const SLOTS: &'static [&'static str] = &[EXP_AVG, EXP_AVG_SQ];

    fn update(&self, p: &mut Param, g: &Tensor, lr: f64) {
        // Python's `beta ** step` with a float step: powf, not powi.
        let t = p.step as f64;
        let _ = p.var.g_mul_scalar_(1.0 - lr * self.weight_decay);
        let m = p.zeros_buffer(EXP_AVG);
        let _ = m.lerp_(g, 1.0 - self.beta1);
        let m = m.shallow_clone();
        let v = p.zeros_buffer(EXP_AVG_SQ);
        let _ = v
            .g_mul_scalar_(self.beta2)
            .addcmul_(&(g * (1.0 - self.beta2)), g);
        let step_size = lr / (1.0 - self.beta1.powf(t));
        let denom = v.sqrt() / (1.0 - self.beta2.powf(t)).sqrt() + self.eps;
        let _ = p.var.addcdiv_(&(m * -step_size), &denom);
    }
}
