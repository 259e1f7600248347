//! IEG (Zhang et al. 2020, "Distilling effective supervision from severe label noise") on the
//! whole network, as the reference's `ieg/models/model.py` trains it. Each step, on the global
//! batch of `B` images with their noisy labels `y`:
//!
//! 1. **pseudo-labels** `g`: the softmax of the training view's and of an AutoAugment view's
//!    logits, each logit-normalized over its whole view (`v/√(mean v² + 1e-8)`, the
//!    reference's `logit_norm`), averaged and sharpened with `T` (`--ieg-temperature`);
//! 2. **the meta step** (L2R through backbone + head, [`super::lookahead`], exact): per-sample
//!    weights `t = 1/B` and mixing weights `ε = ε₀` (`--ieg-eps0`) of the target
//!    `ε·onehot(y) + (1−ε)·g`. The look-ahead loss is linear in `ε`, so one look-ahead on the
//!    stacked losses `[CE(y); CE(g)]` with weights `[t·ε; t·(1−ε)]` gives both meta-gradients.
//!    `θ′ = θ − α(∇θ Σ tᵢ·CEᵢ + λθ + μ·m)` at `α` = `--meta-lr` (the reference's 0.1), `λ` the
//!    run's decay, `m` the live optimizer's momentum buffer and `μ` = `--meta-momentum` (the
//!    reference's `meta_momentum_update`, 0.9; a constant, so the meta-gradient's formula is
//!    unchanged, only where `θ′` lies); the meta loss is the mean cross-entropy of `θ′` on `--meta-batch` trusted
//!    images (training mode) plus `λ/2‖θ′‖²`, as the reference's. Then `w = max(−∂/∂t, 0)`
//!    normalized (sum + 1e-5), and `εᵢ = 1` where `∂/∂εᵢ < 0`, else 0;
//! 3. **the loss**: `(mean CE(ε·onehot + (1−ε)·g) + Σ wᵢ·CE(ε₀·onehot + (1−ε₀)·g))/2`
//!    `+ MixUp + κ·K·KL`: the MixUp of `B` trusted images (drawn with replacement) with both
//!    views under their pseudo-labels (one permutation over all `3B`, weights `max(m, 1−m)`
//!    with `m = u^(1/β)/2`, `β = 0.5`; each third's logits logit-normalized), its trusted third's
//!    CE plus `--ieg-mixup` times the rest's; `κ` = `--ieg-consistency` (the paper's 20), the
//!    KL from the training view's prediction (no gradient) to the AutoAugment view's.
//!
//! Where this departs from the reference, and why: the pseudo-labels are targets without
//! gradient everywhere; the reference stops their gradient in the MixUp term only, its
//! look-ahead and final loss differentiate through them (by all appearances unintended: the
//! paper treats them as labels).
//!
//! Before the optimizer's first step there is no buffer and the look-ahead is plain, as in the
//! reference: its "pre-initialize optimizer momentum states" builds a throw-away
//! `apply_gradients` on the batch's plain CE only to create the momentum slots, which start at
//! zero; in TF1's graph mode no fetched op depends on it, so it never runs.
//!
//! Meta-step forwards run on every rank over the whole global batch (a group of one) and leave
//! batch-norm running statistics as they were; the training forwards run on each rank's share.

use super::lookahead::{per_sample_loss, LookAhead};
use super::{
    look_ahead_rate, trusted_batch, Net, NetSetup, NetStep, NetworkMethod, Recipe, StepLoss,
    TrustedImages,
};
use crate::augment::ViewKey;
use crate::distributed::ProcessGroup;
use crate::method::eval::methods::ieg::{sharpen, soft_ce};
use crate::method::eval::methods::{Method, WeightTally, TALLY_KEY};
use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// The `view`s of the meta batch's draw, of MixUp's draws, and of the AutoAugment view.
const META_VIEW: u64 = 0x4945_4700;
const MIX_VIEW: u64 = 0x4945_4701;
const AUG_VIEW: u64 = 1;
/// MixUp's Beta parameter (the reference's `self.beta`).
const MIX_BETA: f64 = 0.5;
/// Checkpoint key of the ε and pseudo-label tallies.
const EXTRA_KEY: &str = "ieg_tally";

/// One step's inputs on the global batch, every random draw made (tests pass their own).
pub struct IegBatch {
    /// The training view and the AutoAugment view (normalized), the noisy labels.
    pub x: Tensor,
    pub x_aug: Tensor,
    pub labels: Tensor,
    /// The meta step's trusted images (training view) and their labels.
    pub meta_x: Tensor,
    pub meta_y: Tensor,
    pub mix: MixDraw,
}

/// MixUp's draws over the `3B` rows `[trusted; training view; AutoAugment view]`.
pub struct MixDraw {
    /// `B` trusted images (training view) and labels.
    pub probe_x: Tensor,
    pub probe_y: Tensor,
    /// `[3B]` weights of each row itself (≥ 0.5), `[3B]` its partner rows.
    pub coef: Tensor,
    pub perm: Tensor,
}

/// What the meta step decided for the batch.
pub struct MetaDecision {
    /// `[B, K]` pseudo-labels (no gradient).
    pub guess: Tensor,
    /// `[B]` normalized sample weights and new mixing weights (0 or 1).
    pub weights: Tensor,
    pub eps: Tensor,
    pub meta_loss: f64,
}

/// `∂L_meta/∂t` and `∂L_meta/∂ε` `[B]` at `t = 1/B`, `ε = ε₀`.
pub struct MetaGradients {
    pub d_target: Tensor,
    pub d_eps: Tensor,
    pub meta_loss: f64,
}

/// The reference's `logit_norm`: `v / √(mean(v²) + 1e-8)`, the mean over the whole tensor.
pub fn logit_norm(v: &Tensor) -> Tensor {
    v / (v.square().mean(v.kind()) + 1e-8).sqrt()
}

/// Pseudo-labels `[B, K]`: the two views' softmax of normalized logits, averaged, sharpened.
pub fn guess_labels(logits: &Tensor, aug_logits: &Tensor, temperature: f64) -> Tensor {
    let kind = logits.kind();
    let p = (logit_norm(logits).softmax(1, kind) + logit_norm(aug_logits).softmax(1, kind)) / 2.0;
    sharpen(&p, temperature).detach()
}

/// `ε·onehot(y) + (1−ε)·g`, `eps` `[B]`.
fn mixed_target(labels: &Tensor, guess: &Tensor, eps: &Tensor) -> Tensor {
    let onehot = labels.onehot(guess.size()[1]).to_kind(guess.kind());
    let e = eps.unsqueeze(1);
    &e * onehot + (e.neg() + 1.0) * guess
}

/// The meta-gradients of the look-ahead on `Σ tᵢ·CE(εᵢ·onehot + (1−εᵢ)·g)` at `t = 1/B`,
/// `ε = eps0`: one look-ahead on `[CE(y); CE(g)]` weighted `[t·ε; t·(1−ε)]`.
#[allow(clippy::too_many_arguments)]
pub fn meta_gradients(
    lookahead: &mut LookAhead,
    params: &super::lookahead::NetParams,
    logits: &Tensor,
    labels: &Tensor,
    guess: &Tensor,
    eps0: f64,
    (rate, wd): (f64, f64),
    meta: impl FnOnce(Net) -> Result<Tensor>,
) -> Result<MetaGradients> {
    let b = logits.size()[0];
    let opts = (logits.kind(), logits.device());
    let target = Tensor::full([b], 1.0 / b as f64, opts);
    let eps = Tensor::full([b], eps0, opts);
    let losses = Tensor::cat(
        &[per_sample_loss(logits, labels), soft_ce(logits, guess)],
        0,
    );
    let u = Tensor::cat(&[&target * &eps, &target * (eps.neg() + 1.0)], 0);
    let grad = lookahead.meta_gradient(params, &losses, &u, rate, wd, meta)?;
    let parts = grad.du.split(b, 0);
    let (d_noisy, d_guess) = (&parts[0], &parts[1]);
    Ok(MetaGradients {
        d_target: &eps * d_noisy + (eps.neg() + 1.0) * d_guess,
        d_eps: target * (d_noisy - d_guess),
        meta_loss: grad.meta_loss,
    })
}

/// The reference's weights `max(−∂/∂t, 0)/(Σ + 1e-5)` and mixing weights `1[∂/∂ε < 0]`.
pub fn decide(grads: &MetaGradients) -> (Tensor, Tensor) {
    let w = grads.d_target.neg().clamp_min(0.0);
    let total = w.sum(w.kind()) + 1e-5;
    let eps = grads.d_eps.lt(0.0).to_kind(grads.d_eps.kind());
    (w / total, eps)
}

/// Rows `start..start+len` of each of the `parts` equal parts of `t`, concatenated.
fn rows_of_parts(t: &Tensor, parts: i64, start: i64, len: i64) -> Tensor {
    let n = t.size()[0] / parts;
    Tensor::cat(
        &(0..parts)
            .map(|p| t.narrow(0, p * n + start, len))
            .collect::<Vec<_>>(),
        0,
    )
}

/// A gathered `[world·parts·len, K]` of per-rank `[parts·len]` rows back in part-major order.
fn part_major(t: &Tensor, world: i64, parts: i64) -> Tensor {
    let k = t.size()[1];
    t.view([world, parts, -1, k])
        .transpose(0, 1)
        .reshape([-1, k])
}

pub struct NetworkIeg {
    lookahead: LookAhead,
    trusted: TrustedImages,
    classes: i64,
    meta_batch: usize,
    meta_lr: f64,
    meta_momentum: f64,
    eps0: f64,
    temperature: f64,
    mixup: f64,
    consistency: f64,
    tally: WeightTally,
    /// f64 `[3]`: the sum of new ε, pseudo-labels equal to the true label, samples.
    extra: Tensor,
}

impl NetworkIeg {
    pub fn new(mut setup: NetSetup) -> Result<NetworkIeg> {
        let p = setup.params;
        let trusted = setup.take_trusted(Method::Ieg)?;
        Ok(NetworkIeg {
            lookahead: LookAhead::new(&setup),
            trusted,
            classes: setup.classes,
            meta_batch: p.meta_batch,
            meta_lr: p.meta_lr,
            meta_momentum: p.meta_momentum,
            eps0: p.ieg_eps0,
            temperature: p.ieg_temperature,
            mixup: p.ieg_mixup,
            consistency: p.ieg_consistency,
            tally: WeightTally::new(),
            extra: new_extra(),
        })
    }

    /// The look-ahead's shadow network (tests: `var_store().double()`).
    pub fn lookahead(&mut self) -> &mut LookAhead {
        &mut self.lookahead
    }

    /// The step's views and draws.
    fn batch(&self, step: &NetStep) -> Result<IegBatch> {
        let (meta_x, meta_y) = trusted_batch(&self.trusted, step, self.meta_batch, META_VIEW)?;
        Ok(IegBatch {
            x: step.global_view(Recipe::Train, 0)?,
            x_aug: step.global_view(Recipe::AutoAugment, AUG_VIEW)?,
            labels: step.labels.shallow_clone(),
            meta_x,
            meta_y,
            mix: self.mix_draw(step)?,
        })
    }

    /// The `b` trusted images of step `key`'s MixUp, drawn with replacement, and the stream
    /// the rest of its draws continue.
    fn mix_ids(&self, key: ViewKey, b: usize) -> (Vec<i64>, rand_xoshiro::Xoshiro256PlusPlus) {
        let mut rng = key.with_view(MIX_VIEW).rng();
        let m = self.trusted.labels.size()[0];
        let ids = (0..b).map(|_| rng.gen_range(0..m)).collect();
        (ids, rng)
    }

    /// `B` trusted images with replacement, `3B` MixUp weights and a permutation of `3B`.
    fn mix_draw(&self, step: &NetStep) -> Result<MixDraw> {
        let b = step.global_n() as usize;
        let (ids, mut rng) = self.mix_ids(step.key, b);
        let coef: Vec<f32> = (0..3 * b)
            .map(|_| {
                let half = rng.gen::<f64>().powf(1.0 / MIX_BETA) / 2.0;
                half.max(1.0 - half) as f32
            })
            .collect();
        let mut perm: Vec<i64> = (0..3 * b as i64).collect();
        perm.shuffle(&mut rng);
        let device = self.trusted.labels.device();
        let (probe_x, probe_y) = self.trusted.train_view(step, &ids, MIX_VIEW)?;
        Ok(MixDraw {
            probe_x,
            probe_y,
            coef: Tensor::from_slice(&coef).to_device(device),
            perm: Tensor::from_slice(&perm).to_device(device),
        })
    }

    /// The look-ahead's shadow network (the tests run the meta step in float64).
    pub fn shadow_store(&mut self) -> &mut tch::nn::VarStore {
        self.lookahead.var_store()
    }

    /// Steps 1–2 on the whole batch with a group of one; running statistics left as found.
    /// `momentum`: the live optimizer's buffers `m` in `params.trainable` order (see
    /// [`super::LiveOptimizers::momentum_buffers`]), scaled here by `--meta-momentum`.
    pub fn meta_step(
        &mut self,
        net: Net,
        params: &super::lookahead::NetParams,
        solo: &ProcessGroup,
        batch: &IegBatch,
        (rate, wd): (f64, f64),
        momentum: Vec<Tensor>,
    ) -> Result<MetaDecision> {
        let mu = self.meta_momentum;
        let offset = momentum
            .into_iter()
            .map(|m| if m.defined() { m * mu } else { m })
            .collect();
        self.lookahead.set_offset(offset);
        params.keeping_buffers(|| {
            let logits = net.logits(&batch.x, true, solo)?;
            let aug = tch::no_grad(|| net.logits(&batch.x_aug, true, solo))?;
            let guess = guess_labels(&logits.detach(), &aug, self.temperature);
            self.lookahead.set_meta_decay(wd);
            let (meta_x, meta_y) = (&batch.meta_x, &batch.meta_y);
            let grads = meta_gradients(
                &mut self.lookahead,
                params,
                &logits,
                &batch.labels,
                &guess,
                self.eps0,
                (rate, wd),
                |shadow| {
                    let logits = shadow.logits(meta_x, true, solo)?;
                    Ok(per_sample_loss(&logits, meta_y).mean(logits.kind()))
                },
            )?;
            let (weights, eps) = decide(&grads);
            Ok(MetaDecision {
                guess,
                weights: weights.detach(),
                eps: eps.detach(),
                meta_loss: grads.meta_loss,
            })
        })
    }

    /// Step 3: the loss of the global batch through this rank's rows `start..start+len`,
    /// and the training view's logits `[B, K]`.
    pub fn train_loss(
        &self,
        net: Net,
        group: &ProcessGroup,
        (start, len): (i64, i64),
        batch: &IegBatch,
        meta: &MetaDecision,
    ) -> Result<StepLoss> {
        let forward = |x: &Tensor, parts: i64| -> Result<Tensor> {
            let local = net.logits(&rows_of_parts(x, parts, start, len), true, group)?;
            let all = group.all_gather_with_grad(&local)?;
            Ok(part_major(&all, group.world_size() as i64, parts))
        };
        let logits = forward(&batch.x, 1)?;
        let kind = logits.kind();
        let init_eps = Tensor::full_like(&meta.eps, self.eps0);
        let new_mix = mixed_target(&batch.labels, &meta.guess, &meta.eps);
        let init_mix = mixed_target(&batch.labels, &meta.guess, &init_eps);
        let supervised = soft_ce(&logits, &new_mix).mean(kind)
            + (soft_ce(&logits, &init_mix) * &meta.weights).sum(kind);
        let mut loss = supervised / 2.0;
        if self.consistency > 0.0 {
            let aug_logits = forward(&batch.x_aug, 1)?;
            loss += consistency_kl(&logits.detach(), &aug_logits) * self.consistency;
        }
        if self.mixup > 0.0 {
            let (x, targets) = self.mixed(batch, &meta.guess);
            let parts = forward(&x, 3)?.chunk(3, 0);
            let probe = soft_ce(
                &logit_norm(&parts[0]),
                &targets.narrow(0, 0, parts[0].size()[0]),
            );
            let rest = Tensor::cat(&[logit_norm(&parts[1]), logit_norm(&parts[2])], 0);
            let unlabelled = soft_ce(
                &rest,
                &targets.narrow(0, parts[0].size()[0], rest.size()[0]),
            );
            loss += probe.mean(kind) + unlabelled.mean(kind) * self.mixup;
        }
        Ok(StepLoss {
            loss,
            logits: logits.detach(),
        })
    }

    /// MixUp's images `[3B, …]` and targets `[3B, K]`.
    fn mixed(&self, batch: &IegBatch, guess: &Tensor) -> (Tensor, Tensor) {
        let d = &batch.mix;
        let onehot = d.probe_y.onehot(self.classes).to_kind(guess.kind());
        let targets = Tensor::cat(&[&onehot, guess, guess], 0);
        let images = Tensor::cat(&[&d.probe_x, &batch.x, &batch.x_aug], 0);
        let c = d.coef.to_kind(images.kind());
        let ci = c.view([-1, 1, 1, 1]);
        let x = &images * &ci + images.index_select(0, &d.perm) * (ci.neg() + 1.0);
        let ct = c.to_kind(guess.kind()).unsqueeze(1);
        let t = &targets * &ct + targets.index_select(0, &d.perm) * (ct.neg() + 1.0);
        (x, t)
    }

    fn count(&mut self, step: &NetStep, meta: &MetaDecision) {
        self.tally.add(&meta.weights, step.labels, step.clean);
        let right = meta.guess.argmax(1, false).eq_tensor(step.clean);
        let sums = [
            meta.eps.sum(Kind::Double).double_value(&[]),
            right.sum(Kind::Double).double_value(&[]),
            step.global_n() as f64,
        ];
        self.extra += Tensor::from_slice(&sums);
    }
}

/// The reference's consistency: `mean over B·K of q(log q − log p)` times `K`, i.e. the mean
/// over samples of KL(q‖p), `q` the training view's prediction.
fn consistency_kl(logits: &Tensor, aug_logits: &Tensor) -> Tensor {
    let kind = logits.kind();
    let log_q = logits.log_softmax(1, kind);
    (log_q.exp() * (&log_q - aug_logits.log_softmax(1, kind)))
        .sum_dim_intlist(1, false, kind)
        .mean(kind)
}

fn new_extra() -> Tensor {
    Tensor::zeros([3], (Kind::Double, tch::Device::Cpu))
}

impl NetworkMethod for NetworkIeg {
    fn step_views(&self) -> Vec<(Recipe, u64)> {
        vec![(Recipe::Train, 0), (Recipe::AutoAugment, AUG_VIEW)]
    }

    fn prefetch(&self, key: ViewKey, global_n: usize, _rows: (usize, usize)) {
        (self.trusted).prefetch_batch(key, self.meta_batch, META_VIEW);
        self.trusted
            .prefetch(key, &self.mix_ids(key, global_n).0, MIX_VIEW);
    }

    fn loss(&mut self, step: &NetStep) -> Result<StepLoss> {
        let batch = self.batch(step)?;
        let rate = look_ahead_rate(self.meta_lr, step);
        let momentum = match self.meta_momentum > 0.0 {
            true => step.optimizers.momentum_buffers(step.params),
            false => Vec::new(),
        };
        let meta = self.meta_step(
            step.net,
            step.params,
            step.solo,
            &batch,
            (rate, step.wd),
            momentum,
        )?;
        self.count(step, &meta);
        self.train_loss(step.net, step.group, (step.start, step.len), &batch, &meta)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        vec![
            self.tally.state(),
            (EXTRA_KEY.to_string(), self.extra.copy()),
        ]
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        for (name, t) in state {
            if name == TALLY_KEY {
                self.tally.load(&t)?;
            } else {
                ensure!(name == EXTRA_KEY, "unexpected IEG state {name}");
                ensure!(
                    t.size() == [3],
                    "{EXTRA_KEY}: expected [3], got {:?}",
                    t.size()
                );
                self.extra = t.to_kind(Kind::Double).to_device(tch::Device::Cpu);
            }
        }
        Ok(())
    }

    /// `ieg_weight_clean`, `ieg_weight_noisy`, `ieg_eps` (mean new ε: the share of samples kept
    /// on their noisy label), `ieg_pseudo_acc` (pseudo-labels equal to the true label).
    fn epoch_metrics(&self) -> BTreeMap<String, f64> {
        let mut out = self.tally.metrics("ieg");
        let v: Vec<f64> = Vec::try_from(&self.extra).unwrap_or_default();
        if v.len() == 3 && v[2] > 0.0 {
            out.insert("ieg_eps".into(), v[0] / v[2]);
            out.insert("ieg_pseudo_acc".into(), v[1] / v[2]);
        }
        out
    }

    fn end_epoch(&mut self) {
        self.tally.reset();
        self.extra = new_extra();
    }
}
