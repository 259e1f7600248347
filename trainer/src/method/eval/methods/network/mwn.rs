//! Meta-Weight-Net (Shu et al. 2019) on the whole network, as the paper's code trains it. Each
//! step, on the global batch:
//!
//! 1. the per-sample losses `ℓᵢ(θ)` of the training view, and their weights `wᵢ = V(ℓᵢ; φ)`;
//! 2. the look-ahead `θ′ = θ − α·∇θ (1/B)Σ wᵢℓᵢ` through backbone + head at the network's
//!    current rate (`--meta-lr` for seed 001's constant one), and the meta loss: cross-entropy
//!    of `θ′` on `--meta-batch` images of the held-out trusted set (MW-Net: 100 of 1,000), in
//!    training mode as the reference's meta model;
//! 3. `φ` updated by `--mwn-optimizer` (the paper's Adam 1e-3 with L2 1e-4, or seed 001's
//!    Nesterov SGD) on the exact meta-gradient ([`super::lookahead`]);
//! 4. the network trained on `(1/B)·Σ V(ℓᵢ; φ_new)·ℓᵢ`, the weights taken without gradient.
//!
//! The look-ahead is a plain gradient step, as the reference's `update_params`.
//!
//! With `--mwn-normalize` the batch's weights are divided by their sum in steps 2 and 4 (times
//! the batch size, so that the mean of the weighted losses is `Σ wᵢℓᵢ / Σ wᵢ`), as the
//! reference's WRN-28-10 script, the one its README runs, does: the meta-gradient can then only
//! move weight between samples, not scale the whole step.

use super::lookahead::{per_sample_loss, LookAhead, NetParams};
use super::{
    look_ahead_rate, trusted_batch, Net, NetSetup, NetStep, NetworkMethod, Recipe, StepLoss,
    TrustedImages,
};
use crate::augment::ViewKey;
use crate::distributed::ProcessGroup;
use crate::method::eval::methods::mwn::{load_with_tally, WeightingNet};
use crate::method::eval::methods::{Method, WeightTally};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// The `view` of the meta batch's draw and of its augmentation.
const META_VIEW: u64 = 0x4d57_4e00;

pub struct NetworkMetaWeightNet {
    net: WeightingNet,
    lookahead: LookAhead,
    trusted: TrustedImages,
    meta_batch: usize,
    meta_lr: f64,
    normalize: bool,
    tally: WeightTally,
}

impl NetworkMetaWeightNet {
    pub fn new(mut setup: NetSetup) -> Result<NetworkMetaWeightNet> {
        let p = setup.params;
        let trusted = setup.take_trusted(Method::Mwn)?;
        Ok(NetworkMetaWeightNet {
            net: WeightingNet::new(setup.device, p.mwn_optimizer, p.mwn_lr)?,
            lookahead: LookAhead::new(&setup),
            trusted,
            meta_batch: p.meta_batch,
            meta_lr: p.meta_lr,
            normalize: p.mwn_normalize,
            tally: WeightTally::new(),
        })
    }

    /// The weighting network (for tests).
    pub fn weighting(&mut self) -> &mut WeightingNet {
        &mut self.net
    }

    /// Steps 1–3: the weighting network learns from the look-ahead. Returns the meta loss.
    pub fn meta_step(&mut self, step: &NetStep) -> Result<f64> {
        let x = step.global_view(Recipe::Train, 0)?;
        let meta = trusted_batch(&self.trusted, step, self.meta_batch, META_VIEW)?;
        let rate = look_ahead_rate(self.meta_lr, step);
        self.meta_update(
            step.net,
            step.params,
            (&x, step.labels),
            (&meta.0, &meta.1),
            rate,
            step.solo,
        )
    }

    /// Steps 1–3 on given inputs: the global batch's training view and noisy labels, the meta
    /// batch's view and true labels, the look-ahead's rate; every batch norm in training mode
    /// over `solo`, the live network's running statistics left as they were.
    pub fn meta_update(
        &mut self,
        net: Net,
        params: &NetParams,
        (x, labels): (&Tensor, &Tensor),
        (meta_x, meta_y): (&Tensor, &Tensor),
        rate: f64,
        solo: &ProcessGroup,
    ) -> Result<f64> {
        let (losses, grad) = params.keeping_buffers(|| -> Result<_> {
            let losses = per_sample_loss(&net.logits(x, true, solo)?, labels);
            let b = losses.size()[0] as f64;
            let weights = tch::no_grad(|| self.batch_weights(&losses.detach()));
            let grad = self.lookahead.meta_gradient(
                params,
                &(&losses / b),
                &weights,
                rate,
                0.0,
                |shadow| {
                    Ok(shadow
                        .logits(meta_x, true, solo)?
                        .cross_entropy_for_logits(meta_y))
                },
            )?;
            Ok((losses.detach(), grad))
        })?;
        self.net.zero_grad();
        let w = self.batch_weights(&losses);
        (w * grad.du.detach().to_kind(Kind::Float))
            .sum(Kind::Float)
            .f_backward()
            .context("Meta-Weight-Net's meta gradient")?;
        self.net.step();
        Ok(grad.meta_loss)
    }

    /// The weights the batch's losses are multiplied by (then averaged): `V(ℓ; φ)`, divided by
    /// its mean over the batch with `--mwn-normalize`.
    pub fn batch_weights(&self, losses: &Tensor) -> Tensor {
        self.scaled(self.net.weights(losses))
    }

    /// `w`, or `w·B / Σw` with `--mwn-normalize`. Where every weight underflows to 0 the sum
    /// is 0 and the weights stay 0, as the reference's `if norm != 0` (without its host read).
    fn scaled(&self, w: Tensor) -> Tensor {
        if !self.normalize {
            return w;
        }
        let b = w.size()[0] as f64;
        let sum = w.sum(w.kind()).clamp_min(1e-30);
        w * b / sum
    }
}

impl NetworkMethod for NetworkMetaWeightNet {
    fn prefetch(&self, key: ViewKey, _global_n: usize, _rows: (usize, usize)) {
        (self.trusted).prefetch_batch(key, self.meta_batch, META_VIEW);
    }

    fn loss(&mut self, step: &NetStep) -> Result<StepLoss> {
        self.meta_step(step)?;
        let x = step.local_view(Recipe::Train, 0)?;
        let logits = step.gather(&step.net.logits(&x, true, step.group)?)?;
        let losses = per_sample_loss(&logits, step.labels);
        let w = tch::no_grad(|| self.net.weights(&losses.detach())).to_kind(losses.kind());
        self.tally.add(&w, step.labels, step.clean);
        let w = self.scaled(w);
        Ok(StepLoss {
            loss: (w * losses).mean(None),
            logits: logits.detach(),
        })
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = self.net.state();
        out.push(self.tally.state());
        out
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        load_with_tally(&mut self.net, &mut self.tally, state)
    }

    fn epoch_metrics(&self) -> BTreeMap<String, f64> {
        self.tally.metrics("mwn")
    }

    fn end_epoch(&mut self) {
        self.tally.reset();
    }
}
