//! IEG-style meta re-weighting (Zhang et al. 2020, "Distilling effective supervision from
//! severe label noise"), reduced to the head on cached features. What is included:
//!
//! - **pseudo-labels**: the head's softmax averaged over two augmented views of each image
//!   (RandomResizedCrop + flip, each view's features computed once at the start) and sharpened
//!   with temperature `T` (`--ieg-temperature`), without gradient;
//! - **L2R re-weighting of both targets** (Ren et al. 2018): every step, per-sample weights
//!   `ε` for the noisy-label loss and `δ` for the pseudo-label loss start at zero, the head
//!   takes a differentiable look-ahead step on `Σ εᵢℓᵢ + δᵢℓ̃ᵢ`, and the weights become the
//!   clipped negative gradient of the trusted probe set's loss (`--meta-per-class` samples of
//!   each class with true labels) at the look-ahead, normalized to sum to one over both;
//! - **consistency**: `λ` (`--ieg-consistency`) times the KL divergence from the prediction on
//!   the first view (no gradient) to the prediction on the second.
//!
//! Left out: AutoAugment policies (the two views use the crop-and-flip of the probe), the
//! MixUp of labelled and pseudo-labelled batches, the entropy-minimization term and the
//! probe set's own supervised loss.

use super::functional::HeadParams;
use super::trusted::Trusted;
use super::{per_sample_ce, NoiseMethod, Setup, Step, WeightTally, TALLY_KEY};
use crate::augment::{augment_part, ViewKey};
use crate::distributed::ProcessGroup;
use crate::model::to_rgb;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use tch::Tensor;

/// Images embedded at once when computing the views.
const CHUNK: i64 = 512;

pub struct Ieg {
    /// `[2, N, emb]` features of two augmented views of every training image.
    views: Tensor,
    trusted: Trusted,
    consistency: f64,
    temperature: f64,
    tally: WeightTally,
}

impl Ieg {
    pub fn new(setup: &Setup) -> Result<Ieg> {
        let p = &setup.params;
        let trusted = Trusted::for_setup(setup)?;
        let views = Tensor::stack(&[augmented(setup, 0)?, augmented(setup, 1)?], 0);
        Ok(Ieg {
            views,
            trusted,
            consistency: p.ieg_consistency,
            temperature: p.ieg_temperature,
            tally: WeightTally::new(),
        })
    }
}

/// Backbone features of one augmented view of every training image (eval mode, no gradient),
/// the augmentation drawn per chunk from (seed, view).
fn augmented(setup: &Setup, view: u64) -> Result<Tensor> {
    let device = setup.features.device();
    let single = ProcessGroup::single(device);
    let n = setup.images.size()[0];
    let mut out = Vec::new();
    for (i, start) in (0..n).step_by(CHUNK as usize).enumerate() {
        let len = CHUNK.min(n - start);
        let images = to_rgb(&setup.images.narrow(0, start, len))?.to_device(device);
        let key = ViewKey {
            seed: setup.seed,
            epoch: u64::MAX,
            step: i as u64,
            rank: 0,
            view,
        };
        let x = augment_part(&images, setup.aug, key, len, 0);
        out.push(tch::no_grad(|| setup.backbone.forward(&x, false, &single))?);
    }
    Ok(Tensor::cat(&out, 0))
}

/// Soft-target cross-entropy `[B]`: `−Σ_k q_k log softmax(z)_k`.
pub fn soft_ce(logits: &Tensor, targets: &Tensor) -> Tensor {
    (logits.log_softmax(1, logits.kind()) * targets)
        .sum_dim_intlist(1, false, logits.kind())
        .neg()
}

/// `p^(1/T)` renormalized.
pub fn sharpen(p: &Tensor, temperature: f64) -> Tensor {
    let s = p.pow_tensor_scalar(1.0 / temperature);
    &s / s.sum_dim_intlist(1, true, s.kind())
}

impl Ieg {
    /// Pseudo-labels `[B, K]` of the batch and the two views' logits (the second with
    /// gradient, for the consistency term).
    fn pseudo_labels(&self, head: &HeadParams, ids: &Tensor) -> (Tensor, Tensor, Tensor) {
        let a = self.views.get(0).index_select(0, ids);
        let b = self.views.get(1).index_select(0, ids);
        let logits_b = head.forward(&b, None);
        let (pa, logits_a) = tch::no_grad(|| {
            let la = head.forward(&a, None);
            (la.softmax(1, la.kind()), la)
        });
        let pb = logits_b.detach().softmax(1, logits_b.kind());
        let q = sharpen(&((pa + pb) / 2.0), self.temperature);
        (q, logits_a, logits_b)
    }

    /// L2R weights `[2, B]` (noisy-label loss, pseudo-label loss): the clipped negative
    /// gradient of the probe loss after a look-ahead on `Σ εᵢℓᵢ + δᵢℓ̃ᵢ` at `ε = δ = 0`,
    /// normalized to sum to one (all zero when every entry clips).
    pub fn example_weights(&self, head: &HeadParams, batch: &Batch, lr: f64) -> Result<Tensor> {
        let w = self.probe_gradient(head, batch, lr)?.neg().clamp_min(0.0);
        let total = w.sum(w.kind()).double_value(&[]);
        Ok(if total > 0.0 { w / total } else { w })
    }

    /// `∂ L_probe(θ'(ε)) / ∂ε` at `ε = 0`, `[2, B]`.
    pub fn probe_gradient(&self, head: &HeadParams, batch: &Batch, lr: f64) -> Result<Tensor> {
        let f = batch.features;
        let eps = Tensor::zeros([2, f.size()[0]], (f.kind(), f.device())).set_requires_grad(true);
        let loss = self.probe_loss_at(head, batch, lr, &eps)?;
        let mut grads = Tensor::f_run_backward(&[loss], &[&eps], false, false)
            .context("L2R's example-weight gradient")?;
        Ok(grads.remove(0))
    }

    /// The probe set's loss after a look-ahead on the `eps`-weighted batch losses.
    pub fn probe_loss_at(
        &self,
        head: &HeadParams,
        batch: &Batch,
        lr: f64,
        eps: &Tensor,
    ) -> Result<Tensor> {
        let logits = head.forward(batch.features, batch.keep);
        let losses = Tensor::stack(
            &[
                per_sample_ce(&logits, batch.labels),
                soft_ce(&logits, batch.pseudo),
            ],
            0,
        );
        let weighted = (losses * eps).sum(logits.kind());
        Ok(self.trusted.loss(&head.look_ahead(&weighted, lr)?))
    }
}

/// The batch L2R weighs: cached features, noisy labels, pseudo-labels, dropout mask.
pub struct Batch<'a> {
    pub features: &'a Tensor,
    pub labels: &'a Tensor,
    pub pseudo: &'a Tensor,
    pub keep: Option<&'a Tensor>,
}

impl NoiseMethod for Ieg {
    fn loss(&mut self, step: &Step) -> Result<Tensor> {
        let (pseudo, logits_a, logits_b) = self.pseudo_labels(step.head, step.ids);
        let batch = Batch {
            features: step.features,
            labels: step.labels,
            pseudo: &pseudo,
            keep: Some(step.keep),
        };
        let w = self.example_weights(step.head, &batch, step.lr)?;
        self.tally.add(&w.get(0), step.labels, step.clean);
        let kind = step.logits.kind();
        let supervised = (per_sample_ce(step.logits, step.labels) * w.get(0)).sum(kind)
            + (soft_ce(step.logits, &pseudo) * w.get(1)).sum(kind);
        let target = logits_a.softmax(1, kind);
        let kl = (&target * (target.clamp_min(1e-12).log() - logits_b.log_softmax(1, kind)))
            .sum_dim_intlist(1, false, kind)
            .mean(kind);
        Ok(supervised + kl * self.consistency)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        vec![self.tally.state()]
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        for (name, t) in state {
            anyhow::ensure!(name == TALLY_KEY, "unexpected IEG state {name}");
            self.tally.load(&t)?;
        }
        Ok(())
    }

    fn epoch_metrics(&self) -> BTreeMap<String, f64> {
        self.tally.metrics("ieg")
    }

    fn end_epoch(&mut self) {
        self.tally.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// L2R's example-weight gradient from autograd (second order, through the look-ahead)
    /// equals central finite differences of the probe loss in each ε and δ.
    #[test]
    fn example_weight_gradient_matches_finite_differences() {
        let opts = (Kind::Double, Device::Cpu);
        let shapes: [&[i64]; 6] = [&[4, 3], &[4], &[4], &[4], &[3, 4], &[3]];
        let head = HeadParams(
            shapes
                .iter()
                .map(|s| (Tensor::randn(*s, opts) * 0.7).set_requires_grad(true))
                .collect(),
        );
        let ieg = Ieg {
            views: Tensor::zeros([2, 1, 3], opts),
            trusted: Trusted {
                features: Tensor::randn([6, 3], opts),
                labels: Tensor::from_slice(&[0i64, 0, 1, 1, 2, 2]),
                ids: Vec::new(),
            },
            consistency: 1.0,
            temperature: 0.5,
            tally: WeightTally::new(),
        };
        let x = Tensor::randn([5, 3], opts);
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1]);
        let pseudo = Tensor::randn([5, 3], opts).softmax(1, Kind::Double);
        let lr = 0.5;
        let batch = Batch {
            features: &x,
            labels: &y,
            pseudo: &pseudo,
            keep: None,
        };
        let grad = ieg.probe_gradient(&head, &batch, lr).unwrap();
        let h = 1e-6;
        for row in 0..2 {
            for i in 0..5 {
                let at = |delta: f64| {
                    let eps = Tensor::zeros([2, 5], opts);
                    let _ = eps.get(row).get(i).fill_(delta);
                    ieg.probe_loss_at(&head, &batch, lr, &eps)
                        .unwrap()
                        .double_value(&[])
                };
                let numeric = (at(h) - at(-h)) / (2.0 * h);
                let analytic = grad.double_value(&[row, i]);
                assert!(
                    (numeric - analytic).abs() <= 1e-7 + 1e-4 * numeric.abs(),
                    "[{row}, {i}]: autograd {analytic}, finite differences {numeric}"
                );
                assert!(numeric.abs() > 1e-9, "a zero gradient tests nothing");
            }
        }
        let w = ieg.example_weights(&head, &batch, lr).unwrap();
        let expected = grad.neg().clamp_min(0.0);
        let total = expected.sum(Kind::Double).double_value(&[]);
        assert!(total > 0.0);
        assert!(w.allclose(&(expected / total), 1e-12, 1e-12, false));
    }
}
