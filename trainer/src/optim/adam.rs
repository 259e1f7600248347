//! Adam as `torch.optim.Adam` (no amsgrad, single-tensor path), step t counted per variable.
//! Unlike AdamW its weight decay is L2: added to the gradient, so it passes through the moments:
//! g ← g + wd·p; m ← lerp(m, g, 1 − β1); v ← β2·v + (1 − β2)·g²;
//! p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps).

use super::foreach;
use super::params::{variables, with_l2, zeros_buffers, Param, UpdateRule};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for Adam {
    /// PyTorch's defaults (no weight decay).
    fn default() -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

pub(super) const EXP_AVG: &str = "exp_avg";
pub(super) const EXP_AVG_SQ: &str = "exp_avg_sq";
pub(super) const SLOTS: &[&str] = &[EXP_AVG, EXP_AVG_SQ];

/// The moment update and parameter step Adam and AdamW share, from gradient `g`.
pub(super) fn moments_step(
    p: &mut Param,
    g: &Tensor,
    lr: f64,
    (beta1, beta2, eps): (f64, f64, f64),
) {
    // Python's `beta ** step` with a float step: powf, not powi.
    let t = p.step as f64;
    let m = p.zeros_buffer(EXP_AVG);
    let _ = m.lerp_(g, 1.0 - beta1);
    let m = m.shallow_clone();
    let v = p.zeros_buffer(EXP_AVG_SQ);
    let _ = v.g_mul_scalar_(beta2).addcmul_(&(g * (1.0 - beta2)), g);
    let step_size = lr / (1.0 - beta1.powf(t));
    let denom = v.sqrt() / (1.0 - beta2.powf(t)).sqrt() + eps;
    let _ = p.var.addcdiv_(&(m * -step_size), &denom);
}

/// [`moments_step`] for a parameter group in multi-tensor ops (fused on a GPU), the same
/// values; one variable at a time where the group's variables have taken different numbers of
/// steps (one without a gradient at first), since the bias corrections then differ.
pub(super) fn moments_step_group(
    params: &mut [&mut Param],
    g: &[Tensor],
    lr: f64,
    (beta1, beta2, eps): (f64, f64, f64),
) {
    let t = params.first().map_or(0, |p| p.step);
    if params.iter().any(|p| p.step != t) {
        for (p, g) in params.iter_mut().zip(g) {
            moments_step(p, g, lr, (beta1, beta2, eps));
        }
        return;
    }
    let (m, v) = (
        zeros_buffers(params, EXP_AVG),
        zeros_buffers(params, EXP_AVG_SQ),
    );
    foreach::lerp_(&m, g, 1.0 - beta1);
    foreach::mul_scalar_(&v, beta2);
    foreach::addcmul_(&v, &foreach::mul_scalar(g, 1.0 - beta2), g, 1.0);
    let t = t as f64;
    let step_size = lr / (1.0 - beta1.powf(t));
    let denom = foreach::sqrt(&v);
    foreach::div_scalar_(&denom, (1.0 - beta2.powf(t)).sqrt());
    foreach::add_scalar_(&denom, eps);
    let step = foreach::mul_scalar(&m, -step_size);
    foreach::addcdiv_(&variables(params), &step, &denom, 1.0);
}

impl UpdateRule for Adam {
    const SLOTS: &'static [&'static str] = SLOTS;

    fn update(&self, p: &mut Param, g: &Tensor, lr: f64) {
        let g = if self.weight_decay != 0.0 {
            g + &p.var * self.weight_decay
        } else {
            g.shallow_clone()
        };
        moments_step(p, &g, lr, (self.beta1, self.beta2, self.eps));
    }

    /// The same values as [`Adam::update`] per variable, in multi-tensor ops.
    fn update_group(&self, params: &mut [&mut Param], grads: &[Tensor], lr: f64) {
        let g = with_l2(grads, &variables(params), self.weight_decay);
        moments_step_group(params, &g, lr, (self.beta1, self.beta2, self.eps));
    }

    fn without_weight_decay(&self) -> Self {
        Adam {
            weight_decay: 0.0,
            ..*self
        }
    }
}
