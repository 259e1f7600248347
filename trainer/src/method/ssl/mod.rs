//! Self-supervised pretraining losses on two projected views of the same images.
//!
//! Both losses see the *global* batch: embeddings are gathered from every rank with
//! [`ProcessGroup::all_gather_with_grad`], whose backward sums the gradient over ranks. Every
//! rank therefore computes the same global terms, and after data-parallel gradient averaging
//! the parameters receive exactly the gradient of one process on the whole batch.
//!
//! - [`vicreg`]: variance-invariance-covariance (the VICReg reference);
//! - [`simclr`]: NT-Xent (SimCLR), temperature-scaled cross-entropy over cosine similarities.

pub mod config;
pub mod model;
mod monitor;
pub mod pretrain;
pub mod simclr;
pub mod state;
pub mod vicreg;

pub use simclr::nt_xent;
pub use vicreg::{vicreg, VicregParts, VicregWeights};

use crate::distributed::{DistError, ProcessGroup};
use std::fmt;
use std::str::FromStr;
use tch::{Kind, Tensor};

/// The pretraining method chosen on the command line (`--method simclr|vicreg`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Simclr,
    Vicreg,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(s, false)
    }
}

/// A configured loss: the method and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SslLoss {
    /// NT-Xent with temperature `temperature` (`-T`, 0.5 for CIFAR-10).
    Simclr { temperature: f64 },
    /// VICReg with coefficients `-V -I -C`.
    Vicreg(VicregWeights),
}

/// The loss to back-propagate and its named parts for logging (detached scalars; converting
/// them to numbers is left to the logger so that a step need not wait for the device).
pub struct LossParts {
    pub total: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

impl LossParts {
    /// The parts as numbers (synchronizes with the device).
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        self.parts
            .iter()
            .map(|(name, t)| (*name, t.double_value(&[])))
            .collect()
    }
}

impl SslLoss {
    /// `method` with its hyperparameters; the other method's are ignored.
    pub fn new(method: Method, temperature: f64, weights: VicregWeights) -> SslLoss {
        match method {
            Method::Simclr => SslLoss::Simclr { temperature },
            Method::Vicreg => SslLoss::Vicreg(weights),
        }
    }

    pub fn method(&self) -> Method {
        match self {
            SslLoss::Simclr { .. } => Method::Simclr,
            SslLoss::Vicreg(_) => Method::Vicreg,
        }
    }

    /// The loss of this rank's two views `z1`, `z2` (`[local batch, dim]`, row i of both from
    /// the same image), over the global batch of `group`. Half-precision embeddings (from
    /// autocast) are promoted to f32 first: variances and 2N×2N softmaxes lose too much in f16.
    pub fn compute(
        &self,
        z1: &Tensor,
        z2: &Tensor,
        group: &ProcessGroup,
    ) -> Result<LossParts, DistError> {
        let (z1, z2) = (at_least_f32(z1), at_least_f32(z2));
        match *self {
            SslLoss::Simclr { temperature } => {
                let loss = nt_xent(&z1, &z2, group, temperature)?;
                Ok(LossParts {
                    parts: vec![("nt_xent", loss.detach())],
                    total: loss,
                })
            }
            SslLoss::Vicreg(weights) => {
                let v = vicreg(&z1, &z2, group, weights)?;
                Ok(LossParts {
                    parts: vec![
                        ("repr", v.repr.detach()),
                        ("std", v.std.detach()),
                        ("cov", v.cov.detach()),
                    ],
                    total: v.total,
                })
            }
        }
    }
}

fn at_least_f32(t: &Tensor) -> Tensor {
    match t.kind() {
        Kind::Half | Kind::BFloat16 => t.to_kind(Kind::Float),
        _ => t.shallow_clone(),
    }
}
