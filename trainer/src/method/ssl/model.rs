//! The network being pretrained: a backbone (`backbone.*`) and the projector
//! (`projector.*`) in one VarStore, so one optimizer, one gradient sync and one checkpoint cover
//! both; the export strips the `backbone.` prefix to get the reference module's names.

use super::config::PretrainConfig;
use crate::distributed::{DistError, ProcessGroup};
use crate::model::{Backbone, Projector};
use anyhow::Result;
use tch::nn::VarStore;
use tch::{Device, Tensor};

pub const BACKBONE: &str = "backbone";
pub const PROJECTOR: &str = "projector";

pub struct SslModel {
    pub vs: VarStore,
    pub backbone: Backbone,
    pub projector: Projector,
}

impl SslModel {
    /// Initialized from `cfg.seed`, so every rank starts from the same weights (rank 0's are
    /// broadcast anyway).
    pub fn new(cfg: &PretrainConfig, device: Device) -> Result<SslModel> {
        tch::manual_seed(cfg.seed as i64);
        let vs = VarStore::new(device);
        let backbone = Backbone::new(&(vs.root() / BACKBONE), &cfg.net()?);
        let projector =
            Projector::from_spec(&(vs.root() / PROJECTOR), backbone.embedding_dim(), &cfg.mlp)?;
        Ok(SslModel {
            vs,
            backbone,
            projector,
        })
    }

    /// Normalized N×3×S×S views → projections (training mode: BN over the global batch).
    pub fn project(&self, views: &Tensor, group: &ProcessGroup) -> Result<Tensor, DistError> {
        let h = self.backbone.forward(views, true, group)?;
        self.projector.forward(&h, true, group)
    }

    /// The backbone's state_dict with torchvision names (what `backbone.safetensors` holds).
    pub fn backbone_state_dict(&self, batches_tracked: i64) -> Vec<(String, Tensor)> {
        let prefix = format!("{BACKBONE}.");
        crate::model::torchvision_state_dict(&self.vs, batches_tracked)
            .into_iter()
            .filter_map(|(name, t)| name.strip_prefix(&prefix).map(|n| (n.to_string(), t)))
            .collect()
    }
}
