//! SGD with momentum, as `torch.optim.SGD` (dampening 0), Nesterov's variant optional:
//! d = g + wd·p; buf = d on the first step, then buf = momentum·buf + d;
//! p −= lr·buf, or with Nesterov p −= lr·(d + momentum·buf).
//! With momentum 0 no buffer is kept and p −= lr·d.

use super::foreach;
use super::params::{variables, with_l2, Param, UpdateRule};
use std::collections::btree_map::Entry;
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sgd {
    pub momentum: f64,
    pub weight_decay: f64,
    /// Nesterov momentum (needs momentum > 0, as PyTorch requires).
    pub nesterov: bool,
}

impl Default for Sgd {
    /// The evaluation recipe's head optimizer: momentum 0.9, wd 1e-6.
    fn default() -> Self {
        Sgd {
            momentum: 0.9,
            weight_decay: 1e-6,
            nesterov: false,
        }
    }
}

/// The state key of a variable's momentum buffer (`"<variable>:momentum_buffer"`).
pub const MOMENTUM_BUFFER: &str = "momentum_buffer";

impl Sgd {
    /// Each variable's momentum buffer after this step, `d[i]` being its decayed gradient: a
    /// copy of `d[i]` on its first step, as in [`Sgd::update`], else momentum·buf + d[i].
    fn momentum_buffers(&self, params: &mut [&mut Param], d: &[Tensor]) -> Vec<Tensor> {
        let (old, old_d): (Vec<Tensor>, Vec<Tensor>) = params
            .iter()
            .zip(d)
            .filter_map(|(p, d)| {
                let buf = p.buffers.get(MOMENTUM_BUFFER)?;
                Some((buf.shallow_clone(), d.shallow_clone()))
            })
            .unzip();
        foreach::mul_scalar_(&old, self.momentum);
        foreach::add_(&old, &old_d);
        params
            .iter_mut()
            .zip(d)
            .map(|(p, d)| {
                p.buffers
                    .entry(MOMENTUM_BUFFER)
                    .or_insert_with(|| d.copy())
                    .shallow_clone()
            })
            .collect()
    }
}

impl UpdateRule for Sgd {
    const SLOTS: &'static [&'static str] = &[MOMENTUM_BUFFER];

    fn update(&self, p: &mut Param, g: &Tensor, lr: f64) {
        let d = if self.weight_decay != 0.0 {
            g + &p.var * self.weight_decay
        } else {
            g.shallow_clone()
        };
        let direction = if self.momentum == 0.0 {
            d
        } else {
            // PyTorch clones the first gradient rather than starting from zeros; a copy, since
            // `d` may be the gradient itself, which zero_grad overwrites.
            let buf = match p.buffers.entry(MOMENTUM_BUFFER) {
                Entry::Vacant(e) => e.insert(d.copy()).shallow_clone(),
                Entry::Occupied(mut e) => e.get_mut().g_mul_scalar_(self.momentum).g_add_(&d),
            };
            if self.nesterov {
                d + buf * self.momentum
            } else {
                buf
            }
        };
        let _ = p.var.g_sub_(&(direction * lr));
    }

    /// The same values as [`Sgd::update`] per variable, in multi-tensor ops (fused on a GPU).
    fn update_group(&self, params: &mut [&mut Param], grads: &[Tensor], lr: f64) {
        let vars = variables(params);
        let d = with_l2(grads, &vars, self.weight_decay);
        let direction = if self.momentum == 0.0 {
            d
        } else {
            let bufs = self.momentum_buffers(params, &d);
            if self.nesterov {
                foreach::add(&d, &foreach::mul_scalar(&bufs, self.momentum))
            } else {
                bufs
            }
        };
        foreach::sub_(&vars, &foreach::mul_scalar(&direction, lr));
    }

    fn without_weight_decay(&self) -> Self {
        Sgd {
            weight_decay: 0.0,
            ..*self
        }
    }
}
