//! One evaluation run from start (or checkpoint) to `results.json`: epochs of [`Probe`]
//! training, the clean test accuracy after each, early stopping, checkpoints at epoch ends and
//! on stop signals, and metrics lines.

use super::config::EvalConfig;
use super::probe::{EpochMetrics, EpochProgress, Probe};
use crate::checkpoint::{Checkpoint, CheckpointDir};
use crate::cluster::requeue::StopCounters;
use crate::cluster::signals::StopSignal;
use crate::distributed::ProcessGroup;
use crate::metrics::MetricsLog;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;

/// The loop's position and history, as checkpointed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EvalState {
    pub config_hash: String,
    /// Epochs completed.
    pub epoch: usize,
    pub progress: EpochProgress,
    pub best_acc1: f64,
    pub best_acc5: f64,
    pub best_epoch: usize,
    pub history: Vec<EpochMetrics>,
    pub stopped_early: bool,
    #[serde(flatten)]
    pub stops: StopCounters,
}

pub enum EvalOutcome {
    Finished(EvalState),
    Stopped {
        signal: StopSignal,
        state: EvalState,
        checkpoint: PathBuf,
    },
}

pub struct EvalRun<'a> {
    cfg: &'a EvalConfig,
    group: &'a ProcessGroup,
    probe: Probe<'a>,
    checkpoints: CheckpointDir,
    log: Option<MetricsLog>,
    pub state: EvalState,
}

impl<'a> EvalRun<'a> {
    /// Resumes from the newest valid checkpoint in `<exp-dir>/checkpoints`, if any.
    pub fn new(cfg: &'a EvalConfig, group: &'a ProcessGroup, mut probe: Probe<'a>) -> Result<Self> {
        let checkpoints = CheckpointDir::new(cfg.exp_dir.join("checkpoints"), 2);
        let found = checkpoints.load_agreed(group)?;
        let mut state = EvalState {
            config_hash: cfg.hash()?,
            ..Default::default()
        };
        if let Some((_, path, ckpt)) = found {
            let saved: EvalState = serde_json::from_value(ckpt.state)
                .with_context(|| format!("reading {}", path.display()))?;
            if saved.config_hash != state.config_hash {
                bail!(
                    "{} was written by an evaluation with another configuration; use a new \
                     --exp-dir, or the original settings to resume",
                    path.display()
                );
            }
            probe
                .restore(ckpt.tensors)
                .with_context(|| format!("resuming from {}", path.display()))?;
            log::info!(
                "resuming from {} (epoch {}, step {})",
                path.display(),
                saved.epoch,
                saved.progress.step
            );
            state = saved;
        }
        let log = if group.rank() == 0 {
            let resume = (state.epoch > 0 || state.progress.step > 0).then_some(state.epoch as u64);
            Some(MetricsLog::open(&cfg.exp_dir, resume)?)
        } else {
            None
        };
        Ok(EvalRun {
            cfg,
            group,
            probe,
            checkpoints,
            log,
            state,
        })
    }

    pub fn feature_seconds(&self) -> f64 {
        self.probe.feature_seconds
    }

    /// Images an epoch trains on (whole global batches; `--epoch-samples` draws fewer).
    pub fn epoch_images(&self) -> usize {
        self.probe.steps_per_epoch() * self.cfg.batch_size
    }

    /// Trains to the last epoch (or early stop, or a signal).
    pub fn run(
        mut self,
        mut on_stop: impl FnMut(StopSignal, &mut EvalState),
    ) -> Result<EvalOutcome> {
        while self.state.epoch < self.cfg.epochs && !self.state.stopped_early {
            let epoch = self.state.epoch;
            if let Some(signal) = self.probe.train_epoch(epoch, &mut self.state.progress)? {
                on_stop(signal, &mut self.state);
                let checkpoint = self.save()?;
                self.group.barrier()?;
                return Ok(EvalOutcome::Stopped {
                    signal,
                    state: self.state,
                    checkpoint,
                });
            }
            self.finish_epoch(epoch)?;
            self.save()?;
        }
        self.group.barrier()?;
        Ok(EvalOutcome::Finished(self.state))
    }

    fn finish_epoch(&mut self, epoch: usize) -> Result<()> {
        let ((acc1, acc5), imagenet) = self.probe.test()?;
        let s = &mut self.state;
        if acc1 > s.best_acc1 || s.history.is_empty() {
            (s.best_acc1, s.best_epoch) = (acc1, epoch + 1);
        }
        s.best_acc5 = s.best_acc5.max(acc5);
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            loss: s.progress.mean_loss(),
            acc1,
            acc5,
            best_acc1: s.best_acc1,
            best_acc5: s.best_acc5,
            noisy_predicted_true: s.progress.noisy_predicted_true(),
            lr_head: self.probe.lr_head_at(epoch),
            imagenet_acc1: imagenet.map(|(top1, _)| top1),
            imagenet_acc5: imagenet.map(|(_, top5)| top5),
            method: self.probe.take_method_metrics(),
        };
        log::info!(
            "epoch {}: loss {:.4}, test acc1 {:.2}% (best {:.2}%), acc5 {:.2}%",
            epoch + 1,
            metrics.loss,
            acc1 * 100.0,
            s.best_acc1 * 100.0,
            acc5 * 100.0
        );
        if let Some((top1, top5)) = imagenet {
            log::info!(
                "epoch {}: ImageNet val acc1 {:.2}%, acc5 {:.2}%",
                epoch + 1,
                top1 * 100.0,
                top5 * 100.0
            );
        }
        if let Some(log) = &mut self.log {
            let mut record = serde_json::to_value(&metrics)?;
            record["step"] = json!(epoch + 1);
            log.write(record)?;
        }
        s.history.push(metrics);
        s.epoch = epoch + 1;
        s.progress = EpochProgress::default();
        let patience = self.cfg.stopping;
        if patience > 0 && s.epoch - s.best_epoch >= patience {
            log::info!("no better top-1 for {patience} epochs: stopping early");
            s.stopped_early = true;
        }
        Ok(())
    }

    /// Rank 0 writes a checkpoint named by the epochs completed and steps into the next.
    fn save(&self) -> Result<PathBuf> {
        let id =
            (self.state.epoch * self.probe.steps_per_epoch() + self.state.progress.step) as u64;
        if self.group.rank() != 0 {
            return Ok(self.checkpoints.path_for(id));
        }
        let ckpt = Checkpoint {
            state: serde_json::to_value(&self.state)?,
            tensors: self.probe.tensors(),
        };
        self.checkpoints.save(id, &ckpt)
    }
}
