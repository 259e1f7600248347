//! What a pretraining checkpoint holds and how it goes in and out of the model and optimizer.
//!
//! Tensors: `model/<variable>` (parameters and BN running statistics) and `optim/<buffer>`.
//! State (JSON): the position (step, epoch), the configuration that decides the weights and its
//! hash, and the requeue counters. There is no random-generator state to save: every random
//! draw (data order, augmentations) is keyed by (seed, epoch, step), so the position is enough
//! to continue bit for bit.

use super::config::{differing_keys, PretrainConfig};
use crate::checkpoint::Checkpoint;
use crate::cluster::requeue::StopCounters;
use crate::data::normalization::Normalization;
use crate::optim::Optimizer;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;

const MODEL: &str = "model/";
const OPTIM: &str = "optim/";
const FORMAT: u32 = 1;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    /// Optimizer steps done: the next step to run.
    pub step: u64,
    pub epoch: u64,
    pub steps_per_epoch: u64,
    pub config_hash: String,
    pub config: serde_json::Map<String, serde_json::Value>,
    /// Time limits and preemptions so far.
    #[serde(flatten)]
    pub stops: StopCounters,
    /// Mean loss over the last logging interval (NaN before the first).
    pub last_loss: Option<f64>,
    pub last_knn: Option<f64>,
    /// What the views were normalized with: evaluations of this checkpoint use it too.
    #[serde(default)]
    pub normalization: Option<Normalization>,
}

impl TrainState {
    pub fn fresh(
        cfg: &PretrainConfig,
        steps_per_epoch: u64,
        normalization: Normalization,
    ) -> Result<TrainState> {
        Ok(TrainState {
            format: FORMAT,
            steps_per_epoch,
            normalization: Some(normalization),
            config_hash: cfg.hash()?,
            config: cfg.trajectory()?,
            ..Default::default()
        })
    }

    /// Refuses a checkpoint written by another configuration, naming the keys that differ.
    pub fn check_matches(&self, cfg: &PretrainConfig) -> Result<()> {
        if self.format != FORMAT {
            bail!("checkpoint format {} is not {FORMAT}", self.format);
        }
        if self.config_hash != cfg.hash()? {
            let keys = differing_keys(&self.config, &cfg.trajectory()?);
            bail!(
                "the checkpoint was written by a run with a different configuration (differs in: \
                 {}); use a new --exp-dir, or the original settings to resume",
                keys.join(", ")
            );
        }
        Ok(())
    }
}

/// Model variables and optimizer buffers, with the state, ready to write.
pub fn capture(state: &TrainState, vs: &VarStore, opt: &dyn Optimizer) -> Result<Checkpoint> {
    let mut tensors: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (format!("{MODEL}{name}"), t.detach()))
        .collect();
    tensors.extend(
        opt.state()
            .into_iter()
            .map(|(name, t)| (format!("{OPTIM}{name}"), t)),
    );
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Checkpoint {
        state: serde_json::to_value(state)?,
        tensors,
    })
}

/// Puts a checkpoint back: every model variable must be present with its shape.
pub fn restore(ckpt: Checkpoint, vs: &VarStore, opt: &mut dyn Optimizer) -> Result<TrainState> {
    let state: TrainState =
        serde_json::from_value(ckpt.state).context("reading the checkpoint's state")?;
    let mut model = std::collections::HashMap::new();
    let mut optim = Vec::new();
    for (name, t) in ckpt.tensors {
        if let Some(n) = name.strip_prefix(MODEL) {
            model.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix(OPTIM) {
            optim.push((n.to_string(), t));
        }
    }
    for (name, mut var) in vs.variables() {
        let saved = model
            .remove(&name)
            .with_context(|| format!("the checkpoint has no variable {name}"))?;
        if saved.size() != var.size() {
            bail!(
                "variable {name} is {:?} in the checkpoint but {:?} in the model",
                saved.size(),
                var.size()
            );
        }
        tch::no_grad(|| var.copy_(&saved));
    }
    if let Some(extra) = model.keys().next() {
        bail!("the checkpoint has a variable the model lacks: {extra}");
    }
    opt.load_state(
        optim
            .into_iter()
            .map(|(n, t)| (n, t.to_device(vs.device())))
            .collect(),
    )
    .context("restoring the optimizer")?;
    Ok(state)
}
