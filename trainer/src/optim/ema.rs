//! An exponential moving average of a model's weights *and* its BatchNorm running statistics
//! (timm's `ModelEmaV2`, the IEG recipe): after each optimizer step,
//! ema ← decay·ema + (1 − decay)·w for every floating-point variable of the VarStore, trainable
//! or not; other kinds (counters) are copied. Evaluating with the average: [`Ema::swap`] it into
//! the model and back (bit-exact both ways), or [`Ema::copy_to`] a second VarStore.

use super::foreach;
use super::params::copy_like;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::Tensor;

/// One variable: the model's (sharing its storage) and its average.
struct Tracked {
    name: String,
    live: Tensor,
    shadow: Tensor,
}

pub struct Ema {
    /// In variable-name order (a VarStore is a HashMap).
    vars: Vec<Tracked>,
}

impl Ema {
    /// Starts the average at the current values of every variable of `vs`.
    pub fn new(vs: &VarStore) -> Ema {
        let mut vars: Vec<Tracked> = vs
            .variables()
            .into_iter()
            .map(|(name, live)| Tracked {
                shadow: live.detach().copy(),
                name,
                live,
            })
            .collect();
        vars.sort_by(|a, b| a.name.cmp(&b.name));
        Ema { vars }
    }

    /// Moves the average towards the model's current values, as timm's
    /// `ema_v * decay + (1 - decay) * model_v`.
    /// In multi-tensor ops (fused on a GPU): the same values as one variable at a time.
    pub fn update(&mut self, decay: f64) {
        tch::no_grad(|| {
            let (float, counters): (Vec<&Tracked>, Vec<&Tracked>) =
                self.vars.iter().partition(|v| v.shadow.is_floating_point());
            let shadows: Vec<Tensor> = float.iter().map(|v| v.shadow.shallow_clone()).collect();
            let live: Vec<Tensor> = float.iter().map(|v| v.live.shallow_clone()).collect();
            foreach::mul_scalar_(&shadows, decay);
            foreach::add_(&shadows, &foreach::mul_scalar(&live, 1.0 - decay));
            for v in counters {
                v.shadow.shallow_clone().copy_(&v.live);
            }
        })
    }

    /// Exchanges the model's values with the average: call once to evaluate with the average,
    /// again to continue training where it was.
    pub fn swap(&mut self) {
        tch::no_grad(|| {
            for v in &mut self.vars {
                let model = v.live.detach().copy();
                v.live.copy_(&v.shadow);
                v.shadow.copy_(&model);
            }
        })
    }

    /// Writes the average into the same-named variables of `target` (a copy of the model).
    pub fn copy_to(&self, target: &VarStore) -> anyhow::Result<()> {
        let mut vars = target.variables();
        tch::no_grad(|| {
            for v in &self.vars {
                let t = vars
                    .get_mut(&v.name)
                    .with_context(|| format!("the EMA target has no variable {:?}", v.name))?;
                check_shape(&v.name, t, &v.shadow)?;
                t.copy_(&v.shadow);
            }
            Ok(())
        })
    }

    /// Copies of the averages, keyed by variable name, in name order.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.vars
            .iter()
            .map(|v| (v.name.clone(), v.shadow.detach().copy()))
            .collect()
    }

    /// Replaces the averages with `state` (as [`Ema::state`] returns); it must name every
    /// variable, each with its shape. Checked before anything changes.
    pub fn load_state(&mut self, state: Vec<(String, Tensor)>) -> anyhow::Result<()> {
        let mut by_name: BTreeMap<String, Tensor> = state.into_iter().collect();
        let mut loaded = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            let value = by_name
                .remove(&v.name)
                .with_context(|| format!("EMA state has no average for {:?}", v.name))?;
            check_shape(&v.name, &v.live, &value)?;
            loaded.push(copy_like(&value, &v.live));
        }
        if let Some(name) = by_name.keys().next() {
            bail!("EMA state names an unknown variable {name:?}");
        }
        for (v, value) in self.vars.iter_mut().zip(loaded) {
            v.shadow = value;
        }
        Ok(())
    }
}

fn check_shape(name: &str, var: &Tensor, value: &Tensor) -> anyhow::Result<()> {
    if var.size() != value.size() {
        bail!(
            "EMA of {name}: shape {:?}, the variable {:?}",
            value.size(),
            var.size()
        );
    }
    Ok(())
}
