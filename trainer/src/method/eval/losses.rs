//! Noise-robust classification losses for finetuning on noisy labels.
//!
//! Every loss is the mean over the batch of a per-sample loss of the logits `z` (`[B, K]`) and
//! the (noisy) label `y`, with `p = softmax(z)`:
//!
//! - [`LossKind::Ce`]: cross-entropy `−log p_y` (`F.cross_entropy`).
//! - [`LossKind::Gce`]: generalized cross-entropy (Lq, Zhang & Sabuncu 2018) `(1 − p_y^q)/q`,
//!   `q` = `--gce-q`. `p_y^q` is computed as `exp(q·log_softmax(z)_y)`, which equals the plain
//!   formula but stays finite (and has a finite gradient) when `p_y` underflows, so no clamp is
//!   applied (some implementations clamp `p` to `[1e-7, 1]`, which only differs once
//!   `p_y < 1e-7`).
//! - [`LossKind::Mae`]: mean absolute error `1 − p_y`, **unscaled**. `Σ_k |p_k − onehot_k| =
//!   2(1 − p_y)`, and some papers/code (e.g. the Active-Passive-Losses `scale = 2`) use that;
//!   here the scale is 1 (uniform logits give `1 − 1/K`).
//! - [`LossKind::Sce`]: symmetric cross-entropy (Wang et al. 2019) `α·CE + β·RCE`, `α` =
//!   `--sce-alpha`, `β` = `--sce-beta`, as in the reference code (HanxunH/SCELoss-Reproduce,
//!   `SCELoss.forward`): CE is the unclamped `F.cross_entropy`, and
//!   `RCE = −Σ_k p_k·log(clamp(onehot_k, 1e-4, 1))` with `p = clamp(softmax(z), 1e-7, 1)`.
//!   Since `log 1 = 0`, RCE is `−log(1e-4)·Σ_{k≠y} p_k ≈ 9.21·(1 − p_y)`.
//! - [`LossKind::Elr`]: early-learning regularization (Liu et al. 2020), as the reference code
//!   computes it (shengliu66/ELR, `elr_loss.forward`): with `p = clamp(softmax(z), 1e-4,
//!   1 − 1e-4)`, first the per-sample targets are updated from the detached `p̂ = p`,
//!   `t[i] ← β·t[i] + (1 − β)·p̂/Σ_k p̂_k`, then the loss is
//!   `CE + λ·mean_i log(1 − Σ_k t[i]_k·p_k)`, CE unclamped, the clamped `p` (gradient zero where
//!   the clamp is active) in the regularizer, `β` = `--elr-beta`, `λ` = `--elr-lambda`.
//!
//! Half-precision logits (from autocast) are promoted to f32 before anything is computed;
//! f32 and f64 logits are used as they are. The ELR targets are always f32.

use anyhow::{bail, ensure, Result};
use std::fmt;
use std::str::FromStr;
use tch::{Device, Kind, Reduction, Tensor};

/// The checkpoint entry under which [`RobustLoss::state`] is saved.
pub const ELR_TARGETS_KEY: &str = "elr_targets";

/// The finetuning loss chosen on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Cross-entropy.
    Ce,
    /// Early-learning regularization (CE + λ·log(1 − ⟨t, p⟩)).
    Elr,
    /// Generalized cross-entropy (Lq).
    Gce,
    /// Mean absolute error 1 − p_y.
    Mae,
    /// Symmetric cross-entropy α·CE + β·RCE.
    Sce,
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

impl FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(s, false)
    }
}

/// Hyper-parameters of the robust losses, each used only by its own loss. The defaults are the
/// published CIFAR-10 (symmetric noise) settings: ELR β = 0.7, λ = 3 (asymmetric noise: β = 0.9,
/// λ = 1); GCE q = 0.7; SCE α = 0.1, β = 1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossParams {
    /// ELR target momentum β (`--elr-beta`), in [0, 1).
    pub elr_beta: f64,
    /// ELR regularization weight λ (`--elr-lambda`), ≥ 0.
    pub elr_lambda: f64,
    /// GCE exponent q (`--gce-q`), in (0, 1].
    pub gce_q: f64,
    /// SCE cross-entropy weight α (`--sce-alpha`), ≥ 0.
    pub sce_alpha: f64,
    /// SCE reverse cross-entropy weight β (`--sce-beta`), ≥ 0.
    pub sce_beta: f64,
}

impl Default for LossParams {
    fn default() -> Self {
        LossParams {
            elr_beta: 0.7,
            elr_lambda: 3.0,
            gce_q: 0.7,
            sce_alpha: 0.1,
            sce_beta: 1.0,
        }
    }
}

impl LossParams {
    /// Checks every parameter (whichever loss is used), naming the offending flag.
    pub fn validate(&self) -> Result<()> {
        let q = self.gce_q;
        ensure!(q > 0.0 && q <= 1.0, "--gce-q must be in (0, 1], got {q}");
        let beta = self.elr_beta;
        ensure!(
            (0.0..1.0).contains(&beta),
            "--elr-beta must be in [0, 1), got {beta}"
        );
        for (flag, value) in [
            ("--elr-lambda", self.elr_lambda),
            ("--sce-alpha", self.sce_alpha),
            ("--sce-beta", self.sce_beta),
        ] {
            ensure!(
                value.is_finite() && value >= 0.0,
                "{flag} must be a finite number >= 0, got {value}"
            );
        }
        Ok(())
    }
}

/// A configured loss. ELR keeps one target distribution per training sample, `t` (`[num_samples,
/// K]` f32, zeros initially), indexed by the sample ids passed to [`RobustLoss::compute`]; the
/// other losses are stateless.
#[derive(Debug)]
pub struct RobustLoss {
    kind: LossKind,
    params: LossParams,
    num_classes: i64,
    /// ELR's targets (None for the other losses).
    targets: Option<Tensor>,
}

impl RobustLoss {
    /// `kind` with `params` (checked separately by [`LossParams::validate`]); `num_samples` and
    /// `device` size and place ELR's targets and are unused by the other losses.
    pub fn new(
        kind: LossKind,
        params: LossParams,
        num_samples: usize,
        num_classes: i64,
        device: Device,
    ) -> RobustLoss {
        let targets = (kind == LossKind::Elr)
            .then(|| Tensor::zeros([num_samples as i64, num_classes], (Kind::Float, device)));
        RobustLoss {
            kind,
            params,
            num_classes,
            targets,
        }
    }

    pub fn kind(&self) -> LossKind {
        self.kind
    }

    pub fn params(&self) -> LossParams {
        self.params
    }

    pub fn num_classes(&self) -> i64 {
        self.num_classes
    }

    /// The mean loss over the batch: `logits` `[B, K]` (any float kind; half precision is
    /// computed in f32), `labels` `[B]` (the noisy labels, integer), `ids` `[B]` (integer sample
    /// ids in `[0, num_samples)`, used by ELR only; unique within a batch, or which update wins
    /// is unspecified, as in the reference). ELR updates the targets of `ids` as part of the
    /// call. Panics on mismatched shapes; see [`RobustLoss::try_compute`].
    pub fn compute(&mut self, logits: &Tensor, labels: &Tensor, ids: &Tensor) -> Tensor {
        self.try_compute(logits, labels, ids)
            .unwrap_or_else(|e| panic!("{} loss: {e:#}", self.kind))
    }

    /// [`RobustLoss::compute`], with shape mismatches returned as errors.
    pub fn try_compute(
        &mut self,
        logits: &Tensor,
        labels: &Tensor,
        ids: &Tensor,
    ) -> Result<Tensor> {
        let size = logits.size();
        ensure!(
            size.len() == 2 && size[1] == self.num_classes,
            "logits must be [batch, {}], got {size:?}",
            self.num_classes
        );
        let batch = size[0];
        ensure!(
            labels.size() == [batch],
            "labels must be [{batch}], got {:?}",
            labels.size()
        );
        let logits = match logits.kind() {
            Kind::Half | Kind::BFloat16 => logits.to_kind(Kind::Float),
            Kind::Float | Kind::Double => logits.shallow_clone(),
            other => bail!("logits must be floating point, got {other:?}"),
        };
        let kind = logits.kind();
        let labels = labels.to_kind(Kind::Int64).to_device(logits.device());
        let ce = || logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, -100, 0.0);
        let log_p_y = || {
            logits
                .log_softmax(1, kind)
                .gather(1, &labels.unsqueeze(1), false)
                .squeeze_dim(1)
        };
        let loss = match self.kind {
            LossKind::Ce => ce(),
            LossKind::Gce => {
                let q = self.params.gce_q;
                ((log_p_y() * q).exp().neg() + 1.0).mean(kind) / q
            }
            LossKind::Mae => (log_p_y().exp().neg() + 1.0).mean(kind),
            LossKind::Sce => {
                let p = logits.softmax(1, kind).clamp(1e-7, 1.0);
                let log_onehot = labels
                    .one_hot(self.num_classes)
                    .to_kind(kind)
                    .clamp(1e-4, 1.0)
                    .log();
                let rce = (p * log_onehot)
                    .sum_dim_intlist(1, false, kind)
                    .neg()
                    .mean(kind);
                ce() * self.params.sce_alpha + rce * self.params.sce_beta
            }
            LossKind::Elr => {
                ensure!(
                    ids.size() == [batch],
                    "ids must be [{batch}], got {:?}",
                    ids.size()
                );
                let targets = self.targets.as_mut().expect("ELR has targets");
                let ids = ids.to_kind(Kind::Int64).to_device(targets.device());
                let p = logits.softmax(1, kind).clamp(1e-4, 1.0 - 1e-4);
                let beta = self.params.elr_beta;
                tch::no_grad(|| {
                    let p_hat = p.detach().to_device(targets.device());
                    let p_hat = &p_hat / p_hat.sum_dim_intlist(1, true, kind);
                    // β·t in the targets' f32 and the sum in the promoted kind, as the
                    // reference's type promotion does (it only matters for f64 logits).
                    let new = targets.index_select(0, &ids) * beta + p_hat * (1.0 - beta);
                    let _ = targets.index_copy_(0, &ids, &new.to_kind(Kind::Float));
                });
                let t = targets
                    .index_select(0, &ids)
                    .to_device(p.device())
                    .to_kind(kind);
                let reg = ((t * &p).sum_dim_intlist(1, false, kind).neg() + 1.0)
                    .log()
                    .mean(kind);
                ce() + reg * self.params.elr_lambda
            }
        };
        Ok(loss)
    }

    /// ELR's targets (a copy, `[num_samples, K]` f32) for checkpointing under
    /// [`ELR_TARGETS_KEY`]; None for the stateless losses.
    pub fn state(&self) -> Option<Tensor> {
        self.targets.as_ref().map(|t| t.detach().copy())
    }

    /// Restores what [`RobustLoss::state`] returned (onto this loss's device, as f32).
    pub fn load_state(&mut self, t: &Tensor) -> Result<()> {
        let Some(targets) = self.targets.as_mut() else {
            bail!("the {} loss keeps no state to restore", self.kind);
        };
        ensure!(
            t.size() == targets.size(),
            "{ELR_TARGETS_KEY}: expected shape {:?} ([num_samples, num_classes]), got {:?}",
            targets.size(),
            t.size()
        );
        ensure!(
            t.is_floating_point(),
            "{ELR_TARGETS_KEY}: expected a float tensor, got {:?}",
            t.kind()
        );
        tch::no_grad(|| targets.copy_(t));
        Ok(())
    }
}
