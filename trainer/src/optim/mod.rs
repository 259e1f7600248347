//! Optimizers and the learning-rate schedule.
//!
//! tch's built-in optimizers keep their buffers inside libtorch where a checkpoint cannot reach
//! them, so a resumed run would restart momentum from zero. These optimizers keep every buffer in
//! plain tensors keyed by variable name ([`Optimizer::state`]), so a checkpoint can save them and
//! [`Optimizer::load_state`] can restore them bit-exactly. Each update follows PyTorch's (or, for
//! LARS, the VICReg reference's) formulas so that results compare with `torch.optim` directly.
//!
//! - [`lars`]: LARS as in the VICReg reference (the pretraining default);
//! - [`sgd`]: SGD with momentum (Nesterov optional); [`adam`]: Adam (L2 decay); [`adamw`]:
//!   AdamW; [`params`]: the shared bookkeeping and parameter groups;
//! - [`foreach`]: ATen's multi-tensor ops, so that one update formula is a few fused kernels
//!   for all variables on a GPU (LARS uses them);
//! - [`schedule`]: the pretraining warm-up + cosine learning rate per step;
//! - [`train_schedule`]: the supervised schedules (cosine, steps, restarts, constant);
//! - [`ema`]: an exponential moving average of the weights and BN statistics.

pub mod adam;
pub mod adamw;
pub mod ema;
pub mod foreach;
pub mod lars;
pub mod params;
pub mod schedule;
pub mod sgd;
pub mod train_schedule;

pub use adam::Adam;
pub use adamw::AdamW;
pub use ema::Ema;
pub use lars::Lars;
pub use params::{is_bias_or_norm, Param, PerVariable, UpdateRule};
pub use schedule::{LrSchedule, DEFAULT_WARMUP_EPOCHS};
pub use sgd::Sgd;
pub use train_schedule::{ScheduleKind, TrainSchedule};

use anyhow::{bail, Context};
use std::fmt;
use std::str::FromStr;
use tch::nn::VarStore;
use tch::Tensor;

/// An optimizer whose whole state can be taken out and put back.
pub trait Optimizer {
    /// Updates every trainable variable that has a gradient, with learning rate `lr`
    /// (the schedule lives outside, so a resumed run recomputes it from the step number).
    fn step(&mut self, lr: f64);

    /// Zeroes the gradients of the optimized variables.
    fn zero_grad(&mut self);

    /// Copies of every buffer, keyed `"<variable name>:<buffer>"`, in variable-name order;
    /// `"<variable name>:step"` counts the updates that variable has received.
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Replaces the whole state with `state` (as returned by [`Optimizer::state`]); variables
    /// without entries start fresh, as after construction. Errors on an unknown variable or
    /// buffer, or a shape that does not match the variable.
    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> anyhow::Result<()>;
}

/// The optimizer chosen on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Lars,
    Sgd,
    Adamw,
    /// torch.optim.Adam: L2 weight decay, added to the gradient.
    Adam,
}

/// How an optimizer is set up beyond its kind (see [`OptimizerKind::build_with`]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimSettings {
    pub weight_decay: f64,
    /// Momentum of SGD and LARS; `None` keeps the kind's default (0.9). Adam and AdamW have
    /// betas instead and refuse it.
    pub momentum: Option<f64>,
    /// Nesterov momentum (SGD only, with momentum > 0).
    pub nesterov: bool,
    /// No weight decay on biases and normalization parameters (every variable of at most one
    /// dimension or named `*.bias`, as timm and the seed papers do).
    pub no_decay_bn_bias: bool,
}

impl OptimSettings {
    /// The kind's defaults with weight decay `weight_decay`: what [`OptimizerKind::build`] uses.
    pub fn new(weight_decay: f64) -> Self {
        OptimSettings {
            weight_decay,
            momentum: None,
            nesterov: false,
            no_decay_bn_bias: false,
        }
    }

    /// Errors name the setting and what to do about it.
    pub fn check(&self, kind: OptimizerKind) -> anyhow::Result<()> {
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!(
                "weight decay must be a finite number >= 0, got {}",
                self.weight_decay
            );
        }
        let adam = matches!(kind, OptimizerKind::Adam | OptimizerKind::Adamw);
        if let Some(m) = self.momentum {
            if adam {
                bail!("{kind} has no momentum setting (its beta1 plays that role); leave momentum unset");
            }
            if !(0.0..1.0).contains(&m) {
                bail!("momentum must be in [0, 1), got {m}");
            }
        }
        if self.nesterov && kind != OptimizerKind::Sgd {
            bail!("Nesterov momentum is for sgd only, not {kind}");
        }
        if self.nesterov && self.momentum == Some(0.0) {
            bail!("Nesterov momentum needs a momentum > 0 (got 0)");
        }
        Ok(())
    }
}

/// The SGD/LARS momentum when none is given.
const DEFAULT_MOMENTUM: f64 = 0.9;

impl OptimizerKind {
    /// This optimizer over the trainable variables of `vs`, with the project's defaults
    /// (LARS: momentum 0.9, eta 0.001; SGD: momentum 0.9; Adam, AdamW: PyTorch's betas and eps).
    pub fn build(self, vs: &VarStore, weight_decay: f64) -> Box<dyn Optimizer> {
        self.assemble(vs, &OptimSettings::new(weight_decay))
    }

    /// This optimizer over the trainable variables of `vs` with `settings`, checked first.
    pub fn build_with(
        self,
        vs: &VarStore,
        settings: &OptimSettings,
    ) -> anyhow::Result<Box<dyn Optimizer>> {
        settings
            .check(self)
            .with_context(|| format!("optimizer {self}"))?;
        Ok(self.assemble(vs, settings))
    }

    fn assemble(self, vs: &VarStore, s: &OptimSettings) -> Box<dyn Optimizer> {
        let weight_decay = s.weight_decay;
        let momentum = s.momentum.unwrap_or(DEFAULT_MOMENTUM);
        let groups = s.no_decay_bn_bias;
        match self {
            OptimizerKind::Lars => boxed(
                vs,
                Lars {
                    weight_decay,
                    momentum,
                    ..Default::default()
                },
                groups,
            ),
            OptimizerKind::Sgd => boxed(
                vs,
                Sgd {
                    weight_decay,
                    momentum,
                    nesterov: s.nesterov,
                },
                groups,
            ),
            OptimizerKind::Adamw => boxed(
                vs,
                AdamW {
                    weight_decay,
                    ..Default::default()
                },
                groups,
            ),
            OptimizerKind::Adam => boxed(
                vs,
                Adam {
                    weight_decay,
                    ..Default::default()
                },
                groups,
            ),
        }
    }
}

/// `rule` over `vs`, in two groups when the biases and norms are exempt from weight decay.
fn boxed<R: UpdateRule + 'static>(
    vs: &VarStore,
    rule: R,
    no_decay_bn_bias: bool,
) -> Box<dyn Optimizer> {
    if no_decay_bn_bias {
        Box::new(PerVariable::no_decay_on_bias_and_norm(vs, rule))
    } else {
        Box::new(PerVariable::new(vs, rule))
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(s, false)
    }
}
