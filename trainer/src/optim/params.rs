//! The bookkeeping every optimizer shares: the trainable variables in name order, each with
//! its named buffers and update count, and the conversion of those to and from a flat state.

use super::{foreach, Optimizer};
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// One trainable variable and what an optimizer remembers about it.
pub struct Param {
    /// The variable's VarStore name (`"layer1.0.conv1.weight"`).
    pub name: String,
    /// Shares storage with the VarStore's variable: in-place updates reach the model.
    pub var: Tensor,
    /// Updates received (PyTorch counts per parameter: one without a gradient is skipped).
    pub step: i64,
    /// Buffers shaped like `var` (momentum, moments), created lazily as in PyTorch.
    pub buffers: BTreeMap<&'static str, Tensor>,
    /// The parameter group (index into the optimizer's rules) that updates this variable.
    pub group: usize,
}

impl Param {
    /// The buffer `slot`, created as zeros on first use.
    pub fn zeros_buffer(&mut self, slot: &'static str) -> &mut Tensor {
        let var = &self.var;
        self.buffers.entry(slot).or_insert_with(|| var.zeros_like())
    }
}

/// A group's variables for multi-tensor ops, sharing storage: in-place ops reach the model.
pub fn variables(params: &[&mut Param]) -> Vec<Tensor> {
    params.iter().map(|p| p.var.shallow_clone()).collect()
}

/// Each of a group's buffers `slot` ([`Param::zeros_buffer`]), sharing storage.
pub fn zeros_buffers(params: &mut [&mut Param], slot: &'static str) -> Vec<Tensor> {
    let each = params.iter_mut();
    each.map(|p| p.zeros_buffer(slot).shallow_clone()).collect()
}

/// `grads[i] + wd·vars[i]` (L2 decay in the gradient, as torch.optim's SGD and Adam), or the
/// gradients themselves when `wd` is 0.
pub fn with_l2(grads: &[Tensor], vars: &[Tensor], wd: f64) -> Vec<Tensor> {
    if wd == 0.0 {
        return grads.iter().map(Tensor::shallow_clone).collect();
    }
    foreach::add(grads, &foreach::mul_scalar(vars, wd))
}

/// The trainable variables of a VarStore, sorted by name: the VarStore is a HashMap, and the
/// order must not change between runs (reductions and checkpoints depend on it).
pub struct Params {
    params: Vec<Param>,
    /// The buffer names this optimizer may hold, checked when loading a state.
    slots: &'static [&'static str],
}

const STEP: &str = "step";

impl Params {
    /// The trainable variables of `vs`, each in the group `group_of(name, var)` says.
    pub fn new(
        vs: &VarStore,
        slots: &'static [&'static str],
        group_of: impl Fn(&str, &Tensor) -> usize,
    ) -> Params {
        let mut params: Vec<Param> = vs
            .variables()
            .into_iter()
            .filter(|(_, var)| var.requires_grad())
            .map(|(name, var)| Param {
                group: group_of(&name, &var),
                name,
                var,
                step: 0,
                buffers: BTreeMap::new(),
            })
            .collect();
        params.sort_by(|a, b| a.name.cmp(&b.name));
        Params { params, slots }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| p.name.as_str())
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.var.zero_grad();
        }
    }

    /// Runs `update(params, grads)` without autograd once per parameter group, on the group's
    /// variables that have a gradient (in name order), after counting their step; variables
    /// without one are left alone, as PyTorch does.
    pub fn update_groups(&mut self, mut update: impl FnMut(usize, &mut [&mut Param], &[Tensor])) {
        let groups = self.params.iter().map(|p| p.group + 1).max().unwrap_or(0);
        tch::no_grad(|| {
            for group in 0..groups {
                let (mut params, grads): (Vec<&mut Param>, Vec<Tensor>) = self
                    .params
                    .iter_mut()
                    .filter(|p| p.group == group)
                    .map(|p| (p.var.grad(), p))
                    .filter(|(grad, _)| grad.defined())
                    .map(|(grad, p)| {
                        p.step += 1;
                        (p, grad)
                    })
                    .unzip();
                if !params.is_empty() {
                    update(group, &mut params, &grads);
                }
            }
        })
    }

    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for p in self.params.iter().filter(|p| p.step > 0) {
            out.push((format!("{}:{STEP}", p.name), Tensor::from(p.step)));
            for (slot, t) in &p.buffers {
                out.push((format!("{}:{slot}", p.name), t.detach().copy()));
            }
        }
        out
    }

    /// Validates every entry before touching anything, so a bad state leaves this one intact.
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> anyhow::Result<()> {
        let mut fresh: Vec<(i64, BTreeMap<&'static str, Tensor>)> =
            self.params.iter().map(|_| (0, BTreeMap::new())).collect();
        for (key, value) in state {
            let (index, slot) = self.locate(&key)?;
            let (step, buffers) = &mut fresh[index];
            match slot {
                None => *step = scalar_step(&key, &value)?,
                Some(slot) => {
                    buffers.insert(slot, self.like_var(index, &key, &value)?);
                }
            }
        }
        for (p, (step, buffers)) in self.params.iter_mut().zip(fresh) {
            if step == 0 && !buffers.is_empty() {
                bail!(
                    "optimizer state has buffers for {} but no step count",
                    p.name
                );
            }
            p.step = step;
            p.buffers = buffers;
        }
        Ok(())
    }

    /// The variable index and buffer slot (`None` for the step count) that `key` names.
    fn locate(&self, key: &str) -> anyhow::Result<(usize, Option<&'static str>)> {
        let (name, slot) = key.rsplit_once(':').with_context(|| {
            format!("optimizer state key {key:?} is not \"<variable>:<buffer>\"")
        })?;
        let index = self
            .params
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .map_err(|_| anyhow::anyhow!("optimizer state names an unknown variable {name:?}"))?;
        if slot == STEP {
            return Ok((index, None));
        }
        match self.slots.iter().find(|s| **s == slot) {
            Some(s) => Ok((index, Some(*s))),
            None => bail!(
                "optimizer state has buffer {slot:?} for {name}; this optimizer keeps {:?}",
                self.slots
            ),
        }
    }

    /// A private copy of `value` with the variable's shape checked, on its device and kind.
    fn like_var(&self, index: usize, key: &str, value: &Tensor) -> anyhow::Result<Tensor> {
        let var = &self.params[index].var;
        if value.size() != var.size() {
            bail!(
                "optimizer state {key} has shape {:?}, the variable {:?}",
                value.size(),
                var.size()
            );
        }
        Ok(copy_like(value, var))
    }
}

/// A private copy of `value` on `like`'s device, in its kind and memory layout. A checkpoint's
/// tensors are contiguous; a GPU's convolution weights are channels-last, and ATen's multi-tensor
/// ops run fused only over lists whose tensors have equal strides, so restored state must take
/// its variable's layout or every step after a resume falls back to a kernel per tensor.
pub fn copy_like(value: &Tensor, like: &Tensor) -> Tensor {
    let mut out = like.empty_like();
    tch::no_grad(|| out.copy_(value));
    out
}

fn scalar_step(key: &str, value: &Tensor) -> anyhow::Result<i64> {
    if value.numel() != 1 || value.is_floating_point() {
        bail!("optimizer state {key} must be one integer");
    }
    let step = value.to_kind(Kind::Int64).reshape([-1]).int64_value(&[0]);
    if step < 0 {
        bail!("optimizer state {key} is negative ({step})");
    }
    Ok(step)
}

/// How one variable is updated from its gradient; LARS, SGD and AdamW all update each variable
/// independently, so one [`PerVariable`] drives any of them.
pub trait UpdateRule: Clone {
    /// The buffers the rule keeps per variable (the names used in the state).
    const SLOTS: &'static [&'static str];
    /// Updates `p.var` in place; runs without autograd, after `p.step` was incremented.
    fn update(&self, p: &mut Param, grad: &Tensor, lr: f64);
    /// Updates a group's variables, `grads[i]` being the gradient of `params[i]`: by default
    /// one by one with [`UpdateRule::update`]; a rule may override it with multi-tensor ops
    /// ([`super::foreach`]) that compute the same values.
    fn update_group(&self, params: &mut [&mut Param], grads: &[Tensor], lr: f64) {
        for (p, g) in params.iter_mut().zip(grads) {
            self.update(p, g, lr);
        }
    }
    /// The same rule with weight decay 0 (the group of biases and normalization parameters).
    fn without_weight_decay(&self) -> Self;
}

/// timm's and the seed papers' rule for the group without weight decay: biases and
/// normalization parameters, i.e. every variable of at most one dimension or named `*.bias`.
pub fn is_bias_or_norm(name: &str, var: &Tensor) -> bool {
    var.dim() <= 1 || name.ends_with(".bias")
}

/// An [`Optimizer`] applying one rule per parameter group to every trainable variable, in name
/// order.
pub struct PerVariable<R> {
    params: Params,
    /// Indexed by [`Param::group`].
    rules: Vec<R>,
}

impl<R: UpdateRule> PerVariable<R> {
    /// `rule` for every variable.
    pub fn new(vs: &VarStore, rule: R) -> PerVariable<R> {
        PerVariable {
            params: Params::new(vs, R::SLOTS, |_, _| 0),
            rules: vec![rule],
        }
    }

    /// `rule`, but without weight decay on biases and normalization parameters
    /// ([`is_bias_or_norm`]).
    pub fn no_decay_on_bias_and_norm(vs: &VarStore, rule: R) -> PerVariable<R> {
        PerVariable {
            params: Params::new(vs, R::SLOTS, |name, var| {
                usize::from(is_bias_or_norm(name, var))
            }),
            rules: vec![rule.clone(), rule.without_weight_decay()],
        }
    }

    /// The optimized variables' names, in update order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.names()
    }
}

impl<R: UpdateRule> Optimizer for PerVariable<R> {
    fn step(&mut self, lr: f64) {
        let rules = &self.rules;
        self.params
            .update_groups(|group, params, grads| rules[group].update_group(params, grads, lr));
    }
    fn zero_grad(&mut self) {
        self.params.zero_grad()
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        self.params.state()
    }
    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> anyhow::Result<()> {
        self.params.load_state(state)
    }
}
