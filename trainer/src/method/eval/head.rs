//! The reference classification head: Linear(emb, 512) → BatchNorm1d → ReLU → Dropout(0.4) →
//! Linear(512, K), named as its `nn.Sequential` (`0.weight`, `1.running_mean`, `4.bias`, …).

use crate::distributed::sync_bn::SyncBatchNorm;
use crate::distributed::{DistError, ProcessGroup};
use crate::model::projector::torch_linear;
use tch::nn::{self, Module, Path};
use tch::Tensor;

pub const HIDDEN: i64 = 512;
pub const DROPOUT: f64 = 0.4;

#[derive(Debug)]
pub struct Head {
    first: nn::Linear,
    bn: SyncBatchNorm,
    last: nn::Linear,
}

impl Head {
    pub fn new(p: &Path, embedding_dim: i64, classes: i64) -> Head {
        Head {
            first: torch_linear(p / 0, embedding_dim, HIDDEN, true),
            bn: SyncBatchNorm::new(p / 1, HIDDEN),
            last: torch_linear(p / 4, HIDDEN, classes, true),
        }
    }

    /// Features `[B, emb]` → logits `[B, K]`. `keep` (training only) is the dropout mask,
    /// `[B, HIDDEN]` of 0/1; `None` evaluates (running BN statistics, no dropout).
    pub fn forward(
        &self,
        x: &Tensor,
        keep: Option<&Tensor>,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        let train = keep.is_some();
        let h = self
            .bn
            .forward(&self.first.forward(x), train, group)?
            .relu();
        let h = match keep {
            Some(mask) => h * mask / (1.0 - DROPOUT),
            None => h,
        };
        Ok(self.last.forward(&h))
    }
}
