//! Optimizers and the learning-rate schedule.
//!
//! tch's built-in optimizers keep their buffers inside libtorch where a checkpoint cannot reach
//! them, so a resumed run would restart momentum from zero. These optimizers keep every buffer in
//! plain tensors keyed by variable name ([`Optimizer::state`]), so a checkpoint can save them and
//! [`Optimizer::load_state`] can restore them bit-exactly. Each update follows PyTorch's (or, for
//! LARS, the VICReg reference's) formulas so that results compare with `torch.optim` directly.
//!
//! - [`lars`]: LARS as in the VICReg reference (the pretraining default);
//! - [`sgd`]: SGD with momentum; [`adamw`]: AdamW; [`params`]: the shared bookkeeping;
//! - [`schedule`]: warm-up + cosine learning rate per step.

pub mod adamw;
pub mod lars;
pub mod params;
pub mod schedule;
pub mod sgd;

pub use adamw::AdamW;
pub use lars::Lars;
pub use params::{Param, PerVariable, UpdateRule};
pub use schedule::{LrSchedule, DEFAULT_WARMUP_EPOCHS};
pub use sgd::Sgd;

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
}

impl OptimizerKind {
    /// This optimizer over the trainable variables of `vs`, with the project's defaults
    /// (LARS: momentum 0.9, eta 0.001; SGD: momentum 0.9; AdamW: PyTorch's betas and eps).
    pub fn build(self, vs: &VarStore, weight_decay: f64) -> Box<dyn Optimizer> {
        match self {
            OptimizerKind::Lars => Box::new(PerVariable::new(
                vs,
                Lars {
                    weight_decay,
                    ..Default::default()
                },
            )),
            OptimizerKind::Sgd => Box::new(PerVariable::new(
                vs,
                Sgd {
                    weight_decay,
                    ..Default::default()
                },
            )),
            OptimizerKind::Adamw => Box::new(PerVariable::new(
                vs,
                AdamW {
                    weight_decay,
                    ..Default::default()
                },
            )),
        }
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
