//! The classifier on the backbone:
//! - [`HeadKind::Mlp`], seed 000's head: Linear(emb, 512) → BatchNorm1d → ReLU → Dropout(0.4) →
//!   Linear(512, K), named as its `nn.Sequential` (`0.weight`, `1.running_mean`, `4.bias`, …);
//! - [`HeadKind::Linear`], the seed papers' `nn.Linear(emb, K)` (`weight`, `bias`), initialized
//!   as PyTorch does or, as seed 001's, at zero; a network trained from scratch re-initializes it
//!   as its architecture's reference does ([`Head::init_as`]).

use super::config::HeadKind;
use crate::distributed::sync_bn::SyncBatchNorm;
use crate::distributed::{DistError, ProcessGroup};
use crate::model::projector::torch_linear;
use crate::model::ClassifierInit;
use tch::nn::{self, Module, Path};
use tch::Tensor;

pub const HIDDEN: i64 = 512;
pub const DROPOUT: f64 = 0.4;

#[derive(Debug)]
pub enum Head {
    Mlp {
        first: nn::Linear,
        bn: SyncBatchNorm,
        last: nn::Linear,
    },
    Linear(nn::Linear),
}

impl Head {
    pub fn new(
        p: &Path,
        kind: HeadKind,
        zero_init: bool,
        embedding_dim: i64,
        classes: i64,
    ) -> Head {
        match kind {
            HeadKind::Mlp => Head::Mlp {
                first: torch_linear(p / 0, embedding_dim, HIDDEN, true),
                bn: SyncBatchNorm::new(p / 1, HIDDEN),
                last: torch_linear(p / 4, HIDDEN, classes, true),
            },
            HeadKind::Linear if zero_init => Head::Linear(nn::linear(
                p,
                embedding_dim,
                classes,
                nn::LinearConfig {
                    ws_init: nn::Init::Const(0.0),
                    bs_init: Some(nn::Init::Const(0.0)),
                    bias: true,
                },
            )),
            HeadKind::Linear => Head::Linear(torch_linear(p.clone(), embedding_dim, classes, true)),
        }
    }

    /// Re-initializes a linear head as `init` says (an MLP head is left as built).
    pub fn init_as(&self, init: ClassifierInit) {
        let Head::Linear(linear) = self else { return };
        tch::no_grad(|| match init {
            ClassifierInit::Torch => {}
            ClassifierInit::KaimingNormalWeight => {
                let fan_in = linear.ws.size()[1] as f64;
                let _ = linear
                    .ws
                    .shallow_clone()
                    .normal_(0.0, (2.0 / fan_in).sqrt());
            }
            ClassifierInit::ZeroBias => {
                if let Some(bs) = &linear.bs {
                    let _ = bs.shallow_clone().zero_();
                }
            }
        });
    }

    /// Whether training draws a dropout mask for this head.
    pub fn has_dropout(&self) -> bool {
        matches!(self, Head::Mlp { .. })
    }

    /// Features `[B, emb]` → logits `[B, K]`. `keep` (training mode) is the MLP's dropout mask,
    /// `[B, HIDDEN]` of 0/1; `None` evaluates: running BN statistics (not updated), no dropout.
    pub fn forward(
        &self,
        x: &Tensor,
        keep: Option<&Tensor>,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        match self {
            Head::Linear(linear) => Ok(linear.forward(x)),
            Head::Mlp { first, bn, last } => {
                let h = bn.forward(&first.forward(x), keep.is_some(), group)?.relu();
                let h = match keep {
                    Some(mask) => h * mask / (1.0 - DROPOUT),
                    None => h,
                };
                Ok(last.forward(&h))
            }
        }
    }
}
