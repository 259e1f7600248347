//! Methods of the seed papers for learning with noisy labels, each on top of the evaluation
//! head trained on cached backbone features:
//!
//! - [`mwn`]: Meta-Weight-Net (Shu et al. 2019): an MLP maps each sample's loss to its weight,
//!   learnt through a one-step look-ahead on a small clean meta set.
//! - [`ssr`]: SSR (Feng et al. 2022): a kNN vote on normalized features selects the samples to
//!   train on; the classifier relabels those it is confident about.
//! - [`rkd`]: the representation regularizer of Cheng et al. (2023): an RKD-distance term
//!   between the self-supervised projection and the classifier's output.
//! - [`ieg`]: IEG-style meta re-weighting (Zhang et al. 2020): L2R weights for the noisy label
//!   and a pseudo-label of each sample against a trusted probe set, plus consistency between
//!   augmented views.
//!
//! Every method computes the loss of the *global* batch, as the plain losses do: logits come
//! gathered with their gradient, and the meta steps run on the global batch's cached features
//! on every rank, so all ranks reach the same weights without communicating.
//! [`functional`] is the head as a function of explicit parameters (for the look-aheads);
//! [`trusted`] picks the clean meta / probe set.

pub mod functional;
pub mod ieg;
pub mod mwn;
pub mod network;
pub mod rkd;
pub mod ssr;
pub mod trusted;

use crate::augment::AugmentConfig;
use crate::method::eval::backbone::BackboneSource;
use crate::model::Backbone;
use anyhow::{ensure, Result};
use functional::HeadParams;
use std::collections::BTreeMap;
use std::fmt;
use tch::{Kind, Tensor};

/// `--method`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// The plain `--loss`.
    None,
    /// Meta-Weight-Net.
    Mwn,
    /// Sample selection and relabelling.
    Ssr,
    /// Representation regularizer (RKD distance).
    Rkd,
    /// IEG-style L2R re-weighting, consistency and pseudo-labels.
    Ieg,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

/// The methods' hyper-parameters (each used by its own method); defaults as published where
/// the papers give one (SSR θr = 0.9, θs = 1, k = 200; MW-Net Adam 1e-3; IEG 10 trusted
/// images per class).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MethodParams {
    pub meta_per_class: usize,
    pub mwn_lr: f64,
    pub theta_r: f64,
    pub theta_s: f64,
    pub ssr_k: usize,
    pub rkd_weight: f64,
    pub ieg_consistency: f64,
    pub ieg_temperature: f64,
    pub meta_batch: usize,
    pub meta_lr: f64,
    pub meta_momentum: f64,
    pub mwn_optimizer: crate::optim::OptimizerKind,
    pub ssr_consistency: f64,
    pub ssr_mixup_alpha: f64,
    pub ssr_hidden: i64,
    pub ssr_projection: i64,
    pub ssr_balance_votes: bool,
    /// MW-Net: the batch's weights divided by their sum (the reference's WRN-28-10 script).
    pub mwn_normalize: bool,
    /// The start of the methods' own Linear layers (SSR's heads): N(0, std), bias 0.
    pub linear_init_std: Option<f64>,
    pub ieg_mixup: f64,
    pub ieg_eps0: f64,
    pub rkd_temperature: f64,
    pub rkd_infonce: f64,
}

impl Default for MethodParams {
    fn default() -> Self {
        MethodParams {
            meta_per_class: 10,
            mwn_lr: 1e-3,
            theta_r: 0.9,
            theta_s: 1.0,
            ssr_k: 200,
            rkd_weight: 1.0,
            ieg_consistency: 1.0,
            ieg_temperature: 0.5,
            meta_batch: 0,
            meta_lr: 0.0,
            meta_momentum: 0.9,
            mwn_optimizer: crate::optim::OptimizerKind::Adam,
            ssr_consistency: 1.0,
            ssr_mixup_alpha: 4.0,
            ssr_hidden: 256,
            ssr_projection: 128,
            ssr_balance_votes: true,
            mwn_normalize: false,
            linear_init_std: None,
            ieg_mixup: 5.0,
            ieg_eps0: 0.9,
            rkd_temperature: 0.5,
            rkd_infonce: 1.0,
        }
    }
}

impl MethodParams {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.meta_per_class > 0,
            "--meta-per-class must be at least 1"
        );
        ensure!(self.ssr_k > 0, "--ssr-k must be at least 1");
        for (flag, v) in [("--theta-r", self.theta_r), ("--theta-s", self.theta_s)] {
            ensure!(
                (0.0..=1.0).contains(&v),
                "{flag} must be in [0, 1], got {v}"
            );
        }
        for (flag, v) in [
            ("--mwn-lr", self.mwn_lr),
            ("--rkd-weight", self.rkd_weight),
            ("--ieg-consistency", self.ieg_consistency),
            ("--meta-lr", self.meta_lr),
            ("--ssr-consistency", self.ssr_consistency),
            ("--ieg-mixup", self.ieg_mixup),
            ("--rkd-infonce", self.rkd_infonce),
        ] {
            ensure!(
                v.is_finite() && v >= 0.0,
                "{flag} must be a finite number >= 0, got {v}"
            );
        }
        ensure!(
            self.ssr_mixup_alpha > 0.0 && self.ssr_mixup_alpha.is_finite(),
            "--ssr-mixup-alpha must be > 0 (mixup's Beta(α, α)), got {}",
            self.ssr_mixup_alpha
        );
        ensure!(
            self.ssr_hidden > 0 && self.ssr_projection > 0,
            "--ssr-hidden and --ssr-projection must be at least 1, got {} and {}",
            self.ssr_hidden,
            self.ssr_projection
        );
        ensure!(
            (0.0..1.0).contains(&self.meta_momentum),
            "--meta-momentum must be in [0, 1), got {}",
            self.meta_momentum
        );
        ensure!(
            (0.0..=1.0).contains(&self.ieg_eps0),
            "--ieg-eps0 must be in [0, 1], got {}",
            self.ieg_eps0
        );
        ensure!(
            matches!(
                self.mwn_optimizer,
                crate::optim::OptimizerKind::Adam | crate::optim::OptimizerKind::Sgd
            ),
            "--mwn-optimizer must be adam (the paper's) or sgd (seed 001's, Nesterov), got {}",
            self.mwn_optimizer
        );
        ensure!(
            self.rkd_temperature > 0.0 && self.rkd_temperature.is_finite(),
            "--rkd-temperature must be > 0, got {}",
            self.rkd_temperature
        );
        let t = self.ieg_temperature;
        ensure!(
            t > 0.0 && t <= 1.0,
            "--ieg-temperature must be in (0, 1], got {t}"
        );
        Ok(())
    }
}

/// One training step as a method sees it: the global batch, identical on every rank.
pub struct Step<'a> {
    /// `[B, K]`, with gradient (gathered from the ranks).
    pub logits: &'a Tensor,
    /// `[B]` sample ids.
    pub ids: &'a Tensor,
    /// `[B]` noisy labels.
    pub labels: &'a Tensor,
    /// `[B]` true labels, for diagnostics only.
    pub clean: &'a Tensor,
    /// `[B, emb]` cached backbone features.
    pub features: &'a Tensor,
    /// `[B, HIDDEN]` the step's dropout mask.
    pub keep: &'a Tensor,
    /// The head's parameters (the variables themselves, with gradient).
    pub head: &'a HeadParams,
    /// The head's learning rate at this step (the look-ahead's step size).
    pub lr: f64,
    /// A random stream keyed by (seed, epoch, step), the same on every rank and on resume.
    pub key: crate::augment::ViewKey,
}

/// A method: its loss for each step, and what it keeps between steps.
pub trait NoiseMethod {
    /// Called before an epoch's first step with the classifier's probabilities over every
    /// training sample (eval mode), when [`NoiseMethod::wants_predictions`].
    fn start_epoch(&mut self, _probs: &Tensor) -> Result<()> {
        Ok(())
    }

    fn wants_predictions(&self) -> bool {
        false
    }

    /// The loss of the step's global batch (a scalar with gradient to the head).
    fn loss(&mut self, step: &Step) -> Result<Tensor>;

    /// Tensors to checkpoint, by name.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Puts back what [`NoiseMethod::state`] returned.
    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        ensure!(state.is_empty(), "this method keeps no state");
        Ok(())
    }

    /// Figures for the epoch's metrics line (method-prefixed names).
    fn epoch_metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// Called after an epoch's metrics were taken.
    fn end_epoch(&mut self) {}
}

/// What methods may need when they are built.
pub struct Setup<'a> {
    pub params: MethodParams,
    pub seed: u64,
    /// `[N, emb]` cached features of the training images.
    pub features: &'a Tensor,
    pub noisy: &'a [usize],
    pub clean: &'a [usize],
    pub classes: i64,
    /// For IEG's augmented views: the backbone, the training images and the augmentation.
    pub backbone: &'a Backbone,
    pub images: &'a Tensor,
    pub aug: &'a AugmentConfig,
    /// For the representation regularizer's projector.
    pub source: &'a BackboneSource,
    /// The trusted images held out of training (`--holdout-trusted`), if any.
    pub held_out: Option<trusted::HeldOutFeatures<'a>>,
}

/// The method `method`, or None for the plain loss.
pub fn build(method: Method, setup: &Setup) -> Result<Option<Box<dyn NoiseMethod>>> {
    Ok(match method {
        Method::None => None,
        Method::Mwn => Some(Box::new(mwn::MetaWeightNet::new(setup)?)),
        Method::Ssr => Some(Box::new(ssr::Ssr::new(setup)?)),
        Method::Rkd => Some(Box::new(rkd::RepresentationRegularizer::new(setup)?)),
        Method::Ieg => Some(Box::new(ieg::Ieg::new(setup)?)),
    })
}

/// Per-sample cross-entropy `[B]` of logits `[B, K]` against integer labels `[B]`.
pub fn per_sample_ce(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::None, -100, 0.0)
}

/// Mean weight given to correctly and to wrongly labelled samples over an epoch: the evidence
/// that a re-weighting method tells them apart. Kept as a tensor so it is checkpointed.
pub struct WeightTally {
    /// f64 `[4]`: weight sum and count of clean samples, then of mislabelled ones.
    sums: Tensor,
}

pub const TALLY_KEY: &str = "weight_tally";

impl WeightTally {
    pub fn new() -> WeightTally {
        WeightTally {
            sums: Tensor::zeros([4], (Kind::Double, tch::Device::Cpu)),
        }
    }

    /// Adds a batch's weights `[B]` (any scale; rescaled to a mean of 1 over the batch).
    pub fn add(&mut self, weights: &Tensor, labels: &Tensor, clean: &Tensor) {
        let w = weights
            .detach()
            .to_kind(Kind::Double)
            .to_device(tch::Device::Cpu);
        let mean = w.mean(Kind::Double).double_value(&[]);
        let w = if mean > 0.0 { w / mean } else { w };
        let right = labels
            .eq_tensor(clean)
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double);
        let wrong = right.neg() + 1.0;
        let parts = [
            (&w * &right).sum(Kind::Double),
            right.sum(Kind::Double),
            (&w * &wrong).sum(Kind::Double),
            wrong.sum(Kind::Double),
        ];
        self.sums += Tensor::stack(&parts, 0);
    }

    /// `{prefix}_weight_clean`, `{prefix}_weight_noisy`: mean relative weights.
    pub fn metrics(&self, prefix: &str) -> BTreeMap<String, f64> {
        let v: Vec<f64> = Vec::try_from(&self.sums).unwrap_or_default();
        let mut out = BTreeMap::new();
        if v.len() == 4 {
            if v[1] > 0.0 {
                out.insert(format!("{prefix}_weight_clean"), v[0] / v[1]);
            }
            if v[3] > 0.0 {
                out.insert(format!("{prefix}_weight_noisy"), v[2] / v[3]);
            }
        }
        out
    }

    pub fn reset(&mut self) {
        let _ = self.sums.zero_();
    }

    pub fn state(&self) -> (String, Tensor) {
        (TALLY_KEY.to_string(), self.sums.copy())
    }

    pub fn load(&mut self, t: &Tensor) -> Result<()> {
        ensure!(
            t.size() == [4],
            "{TALLY_KEY}: expected [4], got {:?}",
            t.size()
        );
        self.sums = t.to_kind(Kind::Double).to_device(tch::Device::Cpu);
        Ok(())
    }
}

impl Default for WeightTally {
    fn default() -> Self {
        WeightTally::new()
    }
}
