//! The resolved configuration of one evaluation: defaults ← `--config` TOML ← flags, as for
//! pretraining (see [`crate::method::ssl::config`]), with the reference recipe's defaults.

use super::losses::{LossKind, LossParams};
use super::methods::{Method, MethodParams};
use super::protocol::Protocol;
use crate::augment::train::{
    AutoaugmentPolicy, Geometry, Policy, TrainAugment, RESIZED_CROP_RATIO, RESIZED_CROP_SCALE,
};
use crate::data::normalization::Choice as NormalizeChoice;
use crate::data::normalization::Normalization;
use crate::data::resident::{BadImages, ImageOptions};
use crate::data::stream::{Cut, CutShape, DecodeScale};
use crate::model::{Arch, Stem};
use crate::noise::symmetric::Convention;
use crate::noise::variants::{AsymClasses, Flips, InstanceModel, Variants};
use crate::noise::Kind as NoiseKind;
use crate::optim::train_schedule::{ScheduleKind, TrainSchedule};
use crate::optim::{OptimSettings, OptimizerKind};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Train the head on a frozen backbone, or the whole network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Weights {
    Freeze,
    Finetune,
}

/// The classifier on the backbone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Seed 000's Linear → BatchNorm1d → ReLU → Dropout(0.4) → Linear.
    #[default]
    Mlp,
    /// One linear layer (the seed papers' classifier; `--head-zero-init` as seed 001).
    Linear,
}

/// Whether the head trains in training mode (dropout, batch statistics) or, as seed 000's
/// `model.eval()` does under a frozen backbone, in eval mode (no dropout, running statistics
/// that are never updated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeadMode {
    #[default]
    Train,
    Eval,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// A published recipe whose defaults sit under `--config` and the flags.
    pub protocol: Protocol,
    pub data_dir: PathBuf,
    pub exp_dir: PathBuf,
    /// `backbone.safetensors` (an export), a pretraining checkpoint, or "none" (random init).
    pub backbone: String,
    /// Architecture for `backbone = "none"`; checked against the backbone's card otherwise.
    pub arch: Option<Arch>,
    pub stem: Option<Stem>,
    pub width: Option<i64>,
    /// `wrn` only. Left out of the serialized form when unset, so the hash of a configuration
    /// without it is what it was before the key existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<i64>,
    /// A noisy-label file written by `trainer noise`; when empty, labels are generated from
    /// `kind`, `noise`, `sparsity`, `seed`, `convention`.
    pub labels: Option<PathBuf>,
    /// Image files only: the square side images are resized and centre-cropped to (see
    /// [`crate::data::resident`]). Unset keys stay out of the serialized form and the hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_images: Option<BadImages>,
    /// Image files only: the shorter side test images are resized to before the centre crop of
    /// `image_size` (torchvision's `Resize(256)` + `CenterCrop(224)`); unset, `image_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_resize: Option<usize>,
    /// Streamed only: the shorter side training images are resized to before the crop
    /// (`Resize(256)` + `RandomCrop(224)`); unset, the crop is cut from the file's own size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_resize: Option<usize>,
    /// Read the training images from their files batch by batch (crop + flip on worker
    /// threads), never holding the split in memory; `image_size` is the crops' side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streamed JPEGs: full or reduced DCT scale ([`DecodeScale`]); unset: full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_scale: Option<DecodeScale>,
    /// Where resident splits are shared by the node's processes ([`crate::data::shared`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_dir: Option<PathBuf>,
    /// Expected dataset ([`crate::data::Source::as_dataset`]): `webvision` trains a WebVision
    /// release whole rather than as mini-WebVision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    pub kind: NoiseKind,
    pub noise: String,
    pub sparsity: String,
    /// Seed of the generated noise (default: `seed`, as the original tools use one seed).
    pub noise_seed: Option<u64>,
    pub convention: Convention,
    /// The seed papers' noise variants.
    pub flips: Flips,
    pub asym_classes: AsymClasses,
    pub instance_model: InstanceModel,
    /// Clean training images (balanced over classes) removed from training to become the
    /// trusted set of mwn and ieg (0: none; the trusted set is then drawn from the training
    /// images, which keep their noisy labels).
    pub holdout_trusted: usize,
    pub weights: Weights,
    pub head: HeadKind,
    /// Linear head only: weights and bias start at zero (seed 001).
    pub head_zero_init: bool,
    /// Every Linear of the head (and of SSR's heads) starts at N(0, std), bias 0; None:
    /// PyTorch's init.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linear_init_std: Option<f64>,
    pub head_mode: HeadMode,
    /// What the images are normalized with (default: as the backbone was trained).
    pub normalize: NormalizeChoice,
    pub loss: LossKind,
    pub elr_beta: f64,
    pub elr_lambda: f64,
    pub gce_q: f64,
    pub sce_alpha: f64,
    pub sce_beta: f64,
    /// A method of the seed papers on top of the head (`none`: the plain `loss`).
    pub method: Method,
    /// Trusted samples per class with their true labels (MWN's meta set, IEG's probe set).
    pub meta_per_class: usize,
    /// Adam learning rate of Meta-Weight-Net's weighting network.
    pub mwn_lr: f64,
    /// SSR: relabel a sample when the classifier's confidence exceeds this.
    pub theta_r: f64,
    /// SSR: select a sample when its label's kNN vote is at least this fraction of the top vote.
    pub theta_s: f64,
    /// SSR: neighbours of the kNN vote.
    pub ssr_k: usize,
    /// Weight of the representation regularizer (RKD distance, Cheng et al. 2023).
    pub rkd_weight: f64,
    /// IEG: weight of the consistency term between two augmented views.
    pub ieg_consistency: f64,
    /// IEG: temperature that sharpens the pseudo-labels.
    pub ieg_temperature: f64,
    /// Whole-network mwn/ieg: trusted images per meta step (0: the whole trusted set).
    pub meta_batch: usize,
    /// Whole-network mwn/ieg: the look-ahead's rate (0: the network's current rate).
    pub meta_lr: f64,
    /// Whole-network ieg: the look-ahead adds this times the live optimizer's momentum buffer.
    pub meta_momentum: f64,
    /// Whole-network mwn: the weighting network's optimizer (adam, or seed 001's Nesterov sgd).
    pub mwn_optimizer: OptimizerKind,
    /// Whole-network ssr: weight of the feature-consistency term.
    pub ssr_consistency: f64,
    /// Whole-network ssr: mixup's Beta(α, α), the projector's and predictor's widths (hidden,
    /// out), and whether the kNN vote is divided by the class prior.
    pub ssr_mixup_alpha: f64,
    pub ssr_hidden: i64,
    pub ssr_projection: i64,
    pub ssr_balance_votes: bool,
    /// Whole-network mwn: each batch's weights divided by their sum.
    pub mwn_normalize: bool,
    /// Whole-network ieg: weight of the MixUp term.
    pub ieg_mixup: f64,
    /// Whole-network ieg: the initial mixing weight of the noisy label.
    pub ieg_eps0: f64,
    /// Whole-network rkd: InfoNCE temperature, and the InfoNCE term's weight.
    pub rkd_temperature: f64,
    pub rkd_infonce: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr_head: f64,
    pub lr_backbone: f64,
    pub wd: f64,
    pub optimizer: OptimizerKind,
    /// SGD momentum (default 0.9).
    pub momentum: Option<f64>,
    pub nesterov: bool,
    /// No weight decay on biases and normalization parameters.
    pub no_decay_bn_bias: bool,
    pub schedule: ScheduleKind,
    /// The final rate as a fraction of the base (cosine, restarts).
    pub lr_end: f64,
    /// Linear warm-up from 0 (fractions of an epoch allowed unless per epoch).
    pub warmup_epochs: f64,
    /// Step schedule: the epochs where the rate is multiplied by `gamma`.
    pub milestones: Vec<f64>,
    pub gamma: f64,
    /// Cosine with restarts: the first cycle's length and each next one's growth factor.
    pub restart_epochs: f64,
    pub restart_mult: f64,
    /// Change the rate at epoch boundaries only (seed 000's per-epoch CosineAnnealingLR).
    pub schedule_per_epoch: bool,
    /// Exponential moving average of the weights (0: off), used for testing (IEG).
    pub ema_decay: f64,
    /// The training images' augmentation: geometry, then an automatic policy.
    pub geometry: Geometry,
    pub policy: Policy,
    /// AutoAugment's table, for `--policy autoaugment` and the methods' strong views.
    pub autoaugment_policy: AutoaugmentPolicy,
    pub padding: i64,
    /// RandAugment: operations per image and magnitude bin (of 31).
    pub randaugment_ops: usize,
    pub randaugment_magnitude: i64,
    /// Input mixup's Beta(α, α) (0: off); partners within each rank's share of the batch.
    pub mixup_alpha: f64,
    /// Stop after this many epochs without a new best top-1 accuracy (0: never).
    pub stopping: usize,
    /// Seed of the head's initialization, the data order and the augmentations.
    pub seed: u64,
    /// Augment the training images (RandomResizedCrop + flip). Finetuning always does; with a
    /// frozen backbone, off means features are computed once and cached.
    pub augment: bool,
    pub train_samples: usize,
    pub test_samples: usize,
    /// Train each epoch on this many images drawn afresh, at most an equal share of each noisy
    /// class (the Clothing1M sampler of DivideMix, ELR and SSR); unset or 0: every image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch_samples: Option<usize>,
    pub max_timeouts: u32,
}

impl EvalConfig {
    pub fn streams(&self) -> bool {
        self.stream == Some(true)
    }

    /// What a streamed run supports: the crops are cut on the CPU (resized crop or crop, then
    /// flip), and the training images are never all in memory.
    fn check_stream(&self) -> Result<()> {
        if !self.streams() {
            ensure!(
                self.train_resize.is_none(),
                "--train-resize applies to streamed training images: add --stream"
            );
            ensure!(
                self.decode_scale.is_none(),
                "--decode-scale applies to streamed training images: add --stream"
            );
            return Ok(());
        }
        let fails = [
            (
                self.image_size.is_none(),
                "needs --image-size S, the side of the training crops",
            ),
            (
                self.cached_features(),
                "trains through the backbone: add --weights finetune or --augment",
            ),
            (
                !matches!(self.geometry, Geometry::ResizedCrop | Geometry::Crop)
                    || self.policy != Policy::None,
                "cuts resized crops or crops, and flips: --geometry resized-crop or crop, and \
                 no --policy",
            ),
            (
                self.geometry == Geometry::Crop && self.padding != 0,
                "cuts crops without padding (torchvision's RandomCrop(S) after Resize): add \
                 --padding 0, and --train-resize R for the resize",
            ),
            (
                self.labels.is_none() && self.kind == NoiseKind::Instance,
                "cannot generate instance noise, which reads every image (write --labels with \
                 `trainer noise` on the decoded split)",
            ),
        ];
        if let Some((_, why)) = fails.iter().find(|(fails, _)| *fails) {
            anyhow::bail!("--stream {why}");
        }
        Ok(())
    }

    /// Images a class-balanced epoch draws (`epoch_samples`), when set and not 0.
    pub fn balanced_epoch(&self) -> Option<usize> {
        self.epoch_samples.filter(|&n| n > 0)
    }

    /// How image files become the in-memory tensor.
    pub fn image_options(&self) -> ImageOptions {
        ImageOptions {
            test_resize: self.test_resize,
            ..ImageOptions::from_keys(self.image_size, self.bad_images)
        }
    }

    /// How a streamed run cuts its training view: `--geometry` at `image_size` after
    /// `train_resize`, flipped with probability ½.
    pub fn stream_cut(&self) -> Option<Cut> {
        let size = self.image_size.filter(|_| self.streams())?;
        let shape = match self.geometry {
            Geometry::Crop => CutShape::Crop,
            _ => CutShape::ResizedCrop {
                scale: RESIZED_CROP_SCALE,
                ratio: RESIZED_CROP_RATIO,
            },
        };
        Some(Cut {
            size,
            shape,
            flip_p: 0.5,
            resize: self.train_resize,
        })
    }

    /// The test split's resize comes before a centre crop of `image_size`, no smaller.
    fn check_test_resize(&self) -> Result<()> {
        let Some(resize) = self.test_resize else {
            return Ok(());
        };
        let Some(size) = self.image_size else {
            bail!("--test-resize {resize} needs --image-size, the side of the centre crop");
        };
        ensure!(
            resize >= size,
            "--test-resize {resize} is smaller than the centre crop of --image-size {size}: \
             the crop would not fit (the ImageNet recipe resizes to 256 and crops 224)"
        );
        Ok(())
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        let losses = LossParams::default();
        let methods = MethodParams::default();
        EvalConfig {
            protocol: Protocol::None,
            data_dir: PathBuf::new(),
            exp_dir: PathBuf::new(),
            backbone: String::new(),
            arch: None,
            stem: None,
            width: None,
            depth: None,
            labels: None,
            image_size: None,
            bad_images: None,
            test_resize: None,
            train_resize: None,
            stream: None,
            decode_scale: None,
            shared_dir: None,
            dataset: None,
            kind: NoiseKind::Symmetric,
            noise: "0".into(),
            sparsity: "0".into(),
            noise_seed: None,
            convention: Convention::Any,
            flips: Flips::default(),
            asym_classes: AsymClasses::default(),
            instance_model: InstanceModel::default(),
            holdout_trusted: 0,
            weights: Weights::Freeze,
            head: HeadKind::Mlp,
            head_zero_init: false,
            linear_init_std: None,
            head_mode: HeadMode::Train,
            normalize: NormalizeChoice::Backbone,
            loss: LossKind::Ce,
            elr_beta: losses.elr_beta,
            elr_lambda: losses.elr_lambda,
            gce_q: losses.gce_q,
            sce_alpha: losses.sce_alpha,
            sce_beta: losses.sce_beta,
            method: Method::None,
            meta_per_class: methods.meta_per_class,
            mwn_lr: methods.mwn_lr,
            theta_r: methods.theta_r,
            theta_s: methods.theta_s,
            ssr_k: methods.ssr_k,
            rkd_weight: methods.rkd_weight,
            ieg_consistency: methods.ieg_consistency,
            ieg_temperature: methods.ieg_temperature,
            meta_batch: methods.meta_batch,
            meta_lr: methods.meta_lr,
            meta_momentum: methods.meta_momentum,
            mwn_optimizer: methods.mwn_optimizer,
            ssr_consistency: methods.ssr_consistency,
            ssr_mixup_alpha: methods.ssr_mixup_alpha,
            ssr_hidden: methods.ssr_hidden,
            ssr_projection: methods.ssr_projection,
            ssr_balance_votes: methods.ssr_balance_votes,
            mwn_normalize: methods.mwn_normalize,
            ieg_mixup: methods.ieg_mixup,
            ieg_eps0: methods.ieg_eps0,
            rkd_temperature: methods.rkd_temperature,
            rkd_infonce: methods.rkd_infonce,
            epochs: 100,
            batch_size: 256,
            lr_head: 0.1,
            lr_backbone: 0.0,
            wd: 1e-6,
            optimizer: OptimizerKind::Sgd,
            momentum: None,
            nesterov: false,
            no_decay_bn_bias: false,
            schedule: ScheduleKind::Cosine,
            lr_end: DEFAULT_LR_END,
            warmup_epochs: 0.0,
            milestones: Vec::new(),
            gamma: DEFAULT_GAMMA,
            restart_epochs: DEFAULT_RESTART_EPOCHS,
            restart_mult: 1.0,
            schedule_per_epoch: false,
            ema_decay: 0.0,
            geometry: Geometry::ResizedCrop,
            policy: Policy::None,
            autoaugment_policy: AutoaugmentPolicy::Cifar10,
            padding: DEFAULT_PADDING,
            randaugment_ops: DEFAULT_NUM_OPS,
            randaugment_magnitude: DEFAULT_MAGNITUDE,
            mixup_alpha: 0.0,
            stopping: 20,
            seed: 0,
            augment: false,
            train_samples: 0,
            epoch_samples: None,
            test_samples: 0,
            max_timeouts: 3,
        }
    }
}

/// The evaluation's rate ends at 0.1 × the base, as seed 000's `eta_min = lr × 0.1`.
const DEFAULT_LR_END: f64 = 0.1;
const DEFAULT_GAMMA: f64 = 0.1;
const DEFAULT_RESTART_EPOCHS: f64 = 10.0;
const DEFAULT_PADDING: i64 = 4;
const DEFAULT_NUM_OPS: usize = 2;
const DEFAULT_MAGNITUDE: i64 = 9;

/// Keys that may differ between a run and its resumption.
const BOOKKEEPING: [&str; 3] = ["data_dir", "exp_dir", "max_timeouts"];

/// Keys added after runs existed: left out of the hash while at their default, so that a
/// configuration without them hashes (and resumes) as it did before they existed.
const LATER_KEYS: [&str; 43] = [
    "flips",
    "asym_classes",
    "instance_model",
    "holdout_trusted",
    "protocol",
    "head",
    "head_zero_init",
    "head_mode",
    "normalize",
    "optimizer",
    "momentum",
    "nesterov",
    "no_decay_bn_bias",
    "schedule",
    "lr_end",
    "warmup_epochs",
    "milestones",
    "gamma",
    "restart_epochs",
    "restart_mult",
    "schedule_per_epoch",
    "ema_decay",
    "geometry",
    "policy",
    "padding",
    "randaugment_ops",
    "randaugment_magnitude",
    "mixup_alpha",
    "meta_batch",
    "meta_lr",
    "meta_momentum",
    "mwn_optimizer",
    "ssr_consistency",
    "ieg_mixup",
    "ieg_eps0",
    "rkd_temperature",
    "rkd_infonce",
    "autoaugment_policy",
    "ssr_mixup_alpha",
    "ssr_hidden",
    "ssr_projection",
    "ssr_balance_votes",
    "mwn_normalize",
];

impl EvalConfig {
    pub fn resolve(file: Option<&Path>, flags: toml::Table) -> Result<EvalConfig> {
        let preset = |given: &toml::Table| Protocol::chosen(given)?.preset();
        let config: EvalConfig =
            crate::method::layers::resolve_over(preset, file, flags, "evaluation")?;
        config.check_values()?;
        Ok(config)
    }

    fn check_values(&self) -> Result<()> {
        crate::method::layers::check_dirs(&self.data_dir, &self.exp_dir)?;
        ensure!(
            !self.backbone.is_empty(),
            "--backbone is required: a backbone.safetensors export, a pretraining checkpoint, \
             or none"
        );
        if self.labels.is_some() {
            ensure!(
                self.variants() == Variants::default(),
                "--flips, --asym-classes and --instance-model choose generated noise: drop them \
                 with --labels (the file's labels are used as they are)"
            );
        } else {
            self.variants().check(self.kind)?;
        }
        ensure!(self.epochs > 0, "--epochs must be at least 1");
        ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        for (name, v) in [
            ("--lr-head", self.lr_head),
            ("--lr-backbone", self.lr_backbone),
            ("--wd", self.wd),
        ] {
            ensure!(v >= 0.0 && v.is_finite(), "{name} must be ≥ 0, not {v}");
        }
        ensure!(
            self.weights == Weights::Finetune || self.lr_backbone == 0.0,
            "--lr-backbone applies only to --weights finetune"
        );
        ensure!(
            !self.head_zero_init || self.head == HeadKind::Linear,
            "--head-zero-init applies to --head linear (a zero MLP would never train)"
        );
        if let Some(std) = self.linear_init_std {
            ensure!(
                std > 0.0 && std.is_finite(),
                "--linear-init-std must be > 0 (the weights' standard deviation), not {std}"
            );
            ensure!(
                !self.head_zero_init,
                "--linear-init-std and --head-zero-init both set the head's start: choose one"
            );
        }
        ensure!(
            self.head_mode == HeadMode::Train || self.weights == Weights::Freeze,
            "--head-mode eval is seed 000's frozen-backbone protocol; with --weights finetune \
             the network trains in training mode"
        );
        self.loss_params().validate()?;
        self.check_training_recipe()?;
        self.check_stream()?;
        self.check_test_resize()?;
        let whole_network_ssr = self.method == Method::Ssr && !self.cached_features();
        ensure!(
            self.balanced_epoch().is_none() || self.method == Method::None || whole_network_ssr,
            "--epoch-samples draws each epoch's images for plain training and whole-network SSR \
             (which selects within them, as its Clothing1M script); got --method {}{}, which \
             visits every image each epoch",
            self.method,
            if self.method == Method::Ssr {
                " on cached features"
            } else {
                ""
            }
        );
        self.method_params().validate()?;
        if self.method != Method::None {
            if self.cached_features() {
                ensure!(
                    self.head == HeadKind::Mlp && self.head_mode == HeadMode::Train,
                    "--method {} on cached features works on the MLP head in training mode \
                     (--head mlp --head-mode train)",
                    self.method
                );
            } else {
                ensure!(
                    self.head == HeadKind::Linear,
                    "--method {} on the whole network trains a linear classifier, as its paper: \
                     add --head linear",
                    self.method
                );
                ensure!(
                    self.holdout_trusted > 0 || !matches!(self.method, Method::Mwn | Method::Ieg),
                    "--method {} on the whole network learns from trusted images held out of \
                     training: give --holdout-trusted N (MW-Net's paper: 1000; IEG: 10 a class)",
                    self.method
                );
                ensure!(
                    self.mixup_alpha == 0.0,
                    "--method {} mixes its own inputs where its paper does: leave --mixup-alpha \
                     at 0",
                    self.method
                );
            }
            // The regularizer's paper adds it to CE (CE_Reg.py) and to GCE (GCE_Reg.py).
            let regularized_gce =
                self.method == Method::Rkd && self.loss == LossKind::Gce && !self.cached_features();
            ensure!(
                self.loss == LossKind::Ce || regularized_gce,
                "--method {} brings its own loss: leave --loss at ce (only --method rkd on the \
                 whole network also takes --loss gce, as its paper's GCE_Reg)",
                self.method
            );
        }
        Ok(())
    }

    /// The optimizer settings of both the head's and the backbone's optimizer.
    pub fn optim_settings(&self) -> OptimSettings {
        OptimSettings {
            weight_decay: self.wd,
            momentum: self.momentum,
            nesterov: self.nesterov,
            no_decay_bn_bias: self.no_decay_bn_bias,
        }
    }

    pub fn train_schedule(&self) -> TrainSchedule {
        TrainSchedule {
            schedule: self.schedule,
            lr_end: self.lr_end,
            warmup_epochs: self.warmup_epochs,
            milestones: self.milestones.clone(),
            gamma: self.gamma,
            restart_epochs: self.restart_epochs,
            restart_mult: self.restart_mult,
            per_epoch: self.schedule_per_epoch,
        }
    }

    /// The supervised recipe with `normalization` (the `--augment` path's other geometries and
    /// the policies; `resized-crop` without a policy keeps the SSL pipeline's implementation).
    pub fn train_augment(&self, normalization: Normalization) -> TrainAugment {
        TrainAugment {
            geometry: self.geometry,
            policy: self.policy,
            autoaugment_policy: self.autoaugment_policy,
            padding: self.padding,
            num_ops: self.randaugment_ops,
            magnitude: self.randaugment_magnitude,
            mean: normalization.mean,
            std: normalization.std,
            ..TrainAugment::default()
        }
    }

    /// The optimizer, schedule, weight average and augmentation settings.
    fn check_training_recipe(&self) -> Result<()> {
        self.optim_settings()
            .check(self.optimizer)
            .context("--optimizer, --momentum, --nesterov, --wd")?;
        self.train_schedule()
            .validate(self.epochs)
            .context("the schedule (--schedule and its options)")?;
        self.train_augment(Normalization::IDENTITY)
            .validate(32, 32)
            .context("the augmentation (--geometry, --policy and their options)")?;
        ensure!(
            !self.cached_features()
                || (self.geometry == Geometry::ResizedCrop && self.policy == Policy::None),
            "--geometry and --policy augment the training images, but a frozen backbone without \
             --augment trains on features computed once: add --augment (or --weights finetune)"
        );
        ensure!(
            (0.0..1.0).contains(&self.ema_decay),
            "--ema-decay must be in [0, 1) (0: no average), not {}",
            self.ema_decay
        );
        ensure!(
            self.mixup_alpha >= 0.0 && self.mixup_alpha.is_finite(),
            "--mixup-alpha must be ≥ 0 (0: off), not {}",
            self.mixup_alpha
        );
        ensure!(
            self.mixup_alpha == 0.0 || (self.loss != LossKind::Elr && !self.cached_features()),
            "--mixup-alpha mixes images: it needs images through the backbone (--weights \
             finetune or --augment) and a loss without per-sample state (not elr)"
        );
        Ok(())
    }

    pub fn method_params(&self) -> MethodParams {
        MethodParams {
            meta_per_class: self.meta_per_class,
            mwn_lr: self.mwn_lr,
            theta_r: self.theta_r,
            theta_s: self.theta_s,
            ssr_k: self.ssr_k,
            rkd_weight: self.rkd_weight,
            ieg_consistency: self.ieg_consistency,
            ieg_temperature: self.ieg_temperature,
            meta_batch: self.meta_batch,
            meta_lr: self.meta_lr,
            meta_momentum: self.meta_momentum,
            mwn_optimizer: self.mwn_optimizer,
            ssr_consistency: self.ssr_consistency,
            ssr_mixup_alpha: self.ssr_mixup_alpha,
            ssr_hidden: self.ssr_hidden,
            ssr_projection: self.ssr_projection,
            ssr_balance_votes: self.ssr_balance_votes,
            mwn_normalize: self.mwn_normalize,
            linear_init_std: self.linear_init_std,
            ieg_mixup: self.ieg_mixup,
            ieg_eps0: self.ieg_eps0,
            rkd_temperature: self.rkd_temperature,
            rkd_infonce: self.rkd_infonce,
        }
    }

    pub fn loss_params(&self) -> LossParams {
        LossParams {
            elr_beta: self.elr_beta,
            elr_lambda: self.elr_lambda,
            gce_q: self.gce_q,
            sce_alpha: self.sce_alpha,
            sce_beta: self.sce_beta,
        }
    }

    pub fn variants(&self) -> Variants {
        Variants {
            flips: self.flips,
            asym_classes: self.asym_classes,
            instance_model: self.instance_model,
        }
    }

    pub fn noise_seed(&self) -> u64 {
        self.noise_seed.unwrap_or(self.seed)
    }

    /// How results name this run's protocol: the preset, or what this project's defaults
    /// amount to (`cached-features`: the fast path, not seed 000's protocol).
    pub fn protocol_label(&self) -> String {
        match self.protocol {
            Protocol::None if self.cached_features() => "cached-features".into(),
            Protocol::None if self.weights == Weights::Finetune => "whole-network".into(),
            Protocol::None => "frozen-augmented".into(),
            preset => preset.to_string(),
        }
    }

    /// Features computed once: a frozen backbone and no augmentation.
    pub fn cached_features(&self) -> bool {
        self.weights == Weights::Freeze && !self.augment
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("serializing the configuration")
    }

    /// SHA-256 of the keys that decide the result (a checkpoint of another run is refused).
    pub fn hash(&self) -> Result<String> {
        let serde_json::Value::Object(mut map) = serde_json::to_value(self)? else {
            anyhow::bail!("the configuration did not serialize to an object");
        };
        for key in BOOKKEEPING {
            map.remove(key);
        }
        let defaults = serde_json::to_value(EvalConfig::default())?;
        for key in LATER_KEYS {
            if map.get(key) == defaults.get(key) {
                map.remove(key);
            }
        }
        Ok(hex::encode(Sha256::digest(
            serde_json::to_string(&map)?.as_bytes(),
        )))
    }
}
