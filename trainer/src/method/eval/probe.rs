//! The evaluation loop: a head (and, when finetuning, the backbone) trained on noisy labels with
//! a robust loss, tested on the clean test split after every epoch.
//!
//! Every rank computes the loss over the *global* batch: logits are gathered with
//! `all_gather_with_grad` and the labels and sample ids of the global batch are known from the
//! seeded order, so ELR's per-sample targets evolve identically on every rank and the gradient
//! (summed back by the gather, averaged by the gradient sync) equals one process's.
//!
//! With a frozen backbone and no augmentation the backbone runs once: its features are cached
//! and the head trains on them (the reference runs the backbone every epoch).

use super::backbone::BackboneSource;
use super::config::{EvalConfig, HeadMode, Weights};
use super::head::{Head, DROPOUT, HIDDEN};
use super::labels::NoisyLabels;
use super::losses::RobustLoss;
use super::methods::functional::HeadParams;
use super::methods::network::images::{StreamSource, StreamedImages};
use super::methods::network::lookahead::NetParams;
use super::methods::network::views::with_autoaugment;
use super::methods::network::{
    self, EpochStart, LiveOptimizers, Net, NetSetup, NetStep, NetworkMethod, Recipe, TrainImages,
    TrustedImages, Views,
};
use super::methods::trusted::HeldOutFeatures;
use super::methods::{self, NoiseMethod, Setup, Step};
use crate::augment::train::{Geometry, Policy};
use crate::augment::{mixup, AugmentConfig, ViewKey};
use crate::cluster::signals::StopSignal;
use crate::data::normalization::Normalization;
use crate::data::order::{BalancedSubset, EpochOrder};
use crate::data::stream::{self, Cut, Streamed};
use crate::data::SplitData;
use crate::distributed::agree::StopPoll;
use crate::distributed::ddp::{broadcast_variables, GradSync};
use crate::distributed::ProcessGroup;
use crate::long_step::LongStep;
use crate::method::embed::embed;
use crate::model::precision::{upload, upload_slice};
use crate::model::projector::init_linears_normal;
use crate::model::{to_rgb, Backbone};
use crate::optim::train_schedule::TrainSchedule;
use crate::optim::{Ema, Optimizer};
use anyhow::{ensure, Context, Result};
use std::sync::Arc;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Images embedded at once when caching features or testing.
const CHUNK: i64 = 512;
/// The view key of streamed crops (apart from the device-side views' keys).
const STREAM_VIEW: u64 = 7;

/// The key of a step's streamed crops.
fn stream_key(cfg: &EvalConfig, epoch: usize, step: usize) -> ViewKey {
    step_key(cfg.seed, epoch, step, 0).with_view(STREAM_VIEW)
}

/// What the head trains on: cached features, or images through the backbone, held on the
/// device or read from their files batch by batch (`--stream`, training split only).
enum Inputs {
    Features(Tensor),
    Images(Tensor),
    Stream(Streamed),
}

/// Where an epoch stands: the next step and the sums so far (kept in checkpoints, so an epoch
/// interrupted by a signal reports the same figures once resumed).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EpochProgress {
    pub step: usize,
    pub loss_sum: f64,
    pub fit: i64,
    pub wrong: i64,
}

impl EpochProgress {
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.step.max(1) as f64
    }

    /// Of the noisy samples seen, the fraction predicted as their true class.
    pub fn noisy_predicted_true(&self) -> Option<f64> {
        (self.wrong > 0).then(|| self.fit as f64 / self.wrong as f64)
    }
}

/// One epoch's figures.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, Default)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub loss: f64,
    pub acc1: f64,
    pub acc5: f64,
    pub best_acc1: f64,
    pub best_acc5: f64,
    /// Of the training samples whose label is wrong, the fraction the model predicted as their
    /// true class during the epoch (training-mode predictions).
    pub noisy_predicted_true: Option<f64>,
    pub lr_head: f64,
    /// Top-1 and top-5 on ImageNet val, mini-WebVision's second test set, where it is tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imagenet_acc1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imagenet_acc5: Option<f64>,
    /// The method's own figures (SSR's selection precision, re-weighting diagnostics, …).
    #[serde(flatten)]
    pub method: std::collections::BTreeMap<String, f64>,
}

pub struct Probe<'a> {
    cfg: &'a EvalConfig,
    group: &'a ProcessGroup,
    backbone: Backbone,
    backbone_vs: VarStore,
    head: Head,
    head_vs: VarStore,
    head_opt: Box<dyn Optimizer>,
    backbone_opt: Option<Box<dyn Optimizer>>,
    head_sync: GradSync,
    backbone_sync: Option<GradSync>,
    loss: RobustLoss,
    method: Option<Box<dyn NoiseMethod>>,
    /// The MLP head's variables as plain tensors, for the methods' look-ahead steps.
    head_params: Option<HeadParams>,
    /// A method on the whole network, with the network's variables and a group of one for
    /// the computations it repeats on every rank.
    net_method: Option<(Box<dyn NetworkMethod>, NetParams)>,
    /// The training images as the whole-network method reads them.
    net_images: Option<TrainImages>,
    solo: ProcessGroup,
    train: Inputs,
    test: TestSet,
    /// ImageNet val, mini-WebVision's second test set, where the release has it.
    imagenet_test: Option<TestSet>,
    noisy: Tensor,
    clean: Tensor,
    /// The training views (the supervised recipe, or the SSL pipeline's crop + flip) and the
    /// methods' other views.
    views: Views,
    schedule: TrainSchedule,
    /// Weight averages (head, then backbone when it trains), tested instead of the weights.
    emas: Vec<(&'static str, Ema)>,
    /// `--epoch-samples`: each epoch a class-balanced subset; None: every image.
    balanced: Option<BalancedSubset>,
    steps_per_epoch: usize,
    stop: StopPoll,
    pub feature_seconds: f64,
}

/// Images tested on (features or images on the device) and their labels.
struct TestSet {
    inputs: Inputs,
    labels: Tensor,
}

/// Top-1 and top-5 accuracy.
pub type Accuracy = (f64, f64);

/// What a probe trains and tests on.
pub struct ProbeData<'d> {
    pub train: &'d SplitData,
    pub test: &'d SplitData,
    /// ImageNet val, mini-WebVision's second test set.
    pub imagenet_test: Option<&'d SplitData>,
    pub labels: &'d NoisyLabels,
    pub classes: i64,
    /// What every image is normalized with, after augmentation.
    pub normalization: Normalization,
    /// Where a streamed split's files are read from (its folder, or its pack).
    pub files: crate::data::files::Files,
    /// Counts a streamed split's files that do not decode (`--bad-images skip`).
    pub streamed_bad: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<'a> Probe<'a> {
    pub fn new(
        cfg: &'a EvalConfig,
        group: &'a ProcessGroup,
        source: &BackboneSource,
        data: ProbeData,
    ) -> Result<Probe<'a>> {
        let ProbeData {
            train,
            test,
            imagenet_test,
            labels,
            classes,
            normalization,
            files,
            streamed_bad,
        } = data;
        let device = group.device();
        // Seeded before anything is initialized: the `none` baseline's random backbone and the
        // head must be the same in every run (and every rank) with this seed.
        tch::manual_seed(cfg.seed as i64);
        let mut backbone_vs = VarStore::new(device);
        let backbone = source.build(&backbone_vs)?;
        let head_vs = VarStore::new(device);
        let head = Head::new(
            &head_vs.root(),
            cfg.head,
            cfg.head_zero_init,
            backbone.embedding_dim(),
            classes,
        );
        if let Some(std) = cfg.linear_init_std {
            init_linears_normal(&head_vs, std);
        } else if source.weights.is_none() && !cfg.head_zero_init {
            head.init_as(source.net.arch.classifier_init());
        }
        broadcast_variables(group, &head_vs)?;
        if source.weights.is_none() {
            broadcast_variables(group, &backbone_vs)?;
        }
        let (_, _, side, _) = train.images.size4()?;
        let aug = eval_augment(side, normalization);
        let started = Instant::now();
        let cache = |what: &str, images: &Tensor| -> Result<Tensor> {
            let mut step = LongStep::new(
                format!("caching features of the {what}"),
                images.size()[0] as usize,
            );
            embed(&backbone, images, &aug, device, CHUNK, &mut |done| {
                step.advance(done)
            })
        };
        let test_set = |what: &str, split: &SplitData| -> Result<TestSet> {
            let inputs = match cfg.cached_features() {
                true => Inputs::Features(cache(what, &split.images)?),
                false => Inputs::Images(to_rgb(&split.images)?.to_device(device)),
            };
            let labels = Tensor::from_slice(&split.labels).to_device(device);
            Ok(TestSet { inputs, labels })
        };
        // One copy of a streamed split's paths, for every stream of it.
        let train_paths: Option<Arc<[String]>> = train.paths.as_deref().map(Arc::from);
        let train_in = match &train_paths {
            _ if cfg.cached_features() => Inputs::Features(cache("training split", &train.images)?),
            Some(paths) if train.streamed => Inputs::Stream(
                Streamed::with_views(
                    files.clone(),
                    paths.clone(),
                    &[cfg
                        .stream_cut()
                        .context("a streamed split has --image-size")?],
                    cfg.image_options().bad,
                    streamed_bad.clone(),
                )
                .with_decode_scale(cfg.decode_scale.unwrap_or_default())
                .for_device(device),
            ),
            _ => Inputs::Images(to_rgb(&train.images)?.to_device(device)),
        };
        let test_in = test_set("test split", test)?;
        let imagenet_test = imagenet_test
            .map(|split| test_set("ImageNet val", split))
            .transpose()?;
        let held_out = match (&train_in, &labels.held_out) {
            (Inputs::Features(_), Some(held)) => Some(HeldOutFeatures {
                features: cache("held-out trusted images", &held.images)?,
                labels: &held.labels,
                ids: &held.ids,
            }),
            _ => None,
        };
        let method = match &train_in {
            Inputs::Features(features) => methods::build(
                cfg.method,
                &Setup {
                    params: cfg.method_params(),
                    seed: cfg.seed,
                    features,
                    noisy: &labels.noisy,
                    clean: &labels.clean,
                    classes,
                    backbone: &backbone,
                    images: &train.images,
                    aug: &aug,
                    source,
                    held_out,
                },
            )?,
            Inputs::Images(_) | Inputs::Stream(_) => None,
        };
        let views = Views {
            crop_flip: aug.clone(),
            train: (cfg.geometry != Geometry::ResizedCrop || cfg.policy != Policy::None)
                .then(|| cfg.train_augment(normalization)),
            autoaugment: with_autoaugment(&cfg.train_augment(normalization)),
            contrastive: contrastive_augment(side, normalization),
        };
        let feature_seconds = started.elapsed().as_secs_f64();
        let head_params = method
            .is_some()
            .then(|| HeadParams::of(&head_vs))
            .transpose()?;
        let finetune = cfg.weights == Weights::Finetune;
        if !finetune {
            backbone_vs.freeze();
        }
        // The network method's loss (RKD's CE or GCE) and the plain loss are separate instances:
        // a stateful loss (ELR) keeps per-sample state for whichever uses it.
        let robust_loss =
            || RobustLoss::new(cfg.loss, cfg.loss_params(), train.len(), classes, device);
        let net_images = match &train_in {
            _ if cfg.method == methods::Method::None => None,
            Inputs::Images(images) => Some(TrainImages::Resident(images.shallow_clone())),
            Inputs::Stream(_) => {
                let paths = train_paths
                    .clone()
                    .context("a streamed split has its files")?;
                let source = stream_source(cfg, paths, files, &views, streamed_bad, device)?;
                Some(StreamedImages::images(source))
            }
            Inputs::Features(_) => None,
        };
        let net_method = match &net_images {
            Some(images) => network::build(
                cfg.method,
                NetSetup {
                    params: cfg.method_params(),
                    seed: cfg.seed,
                    classes,
                    noisy: &labels.noisy,
                    clean: &labels.clean,
                    images: images.clone(),
                    spec: &source.net,
                    head: cfg.head,
                    device,
                    trusted: trusted_images(labels, device, images)?,
                    projector: source.projector.as_ref(),
                    embedding_dim: backbone.embedding_dim(),
                    loss: robust_loss(),
                    optimizer: cfg.optimizer,
                    optim: cfg.optim_settings(),
                },
            )?
            .map(|m| (m, NetParams::of(&backbone_vs, &head_vs))),
            None => None,
        };
        let balanced = cfg.balanced_epoch().map(|n| {
            let labels = labels.noisy.iter().map(|&l| l as i64).collect();
            BalancedSubset::new(labels, classes as usize, n)
        });
        let epoch_len = balanced.as_ref().map_or(train.len(), BalancedSubset::len);
        ensure!(
            epoch_len >= cfg.batch_size,
            "an epoch of {epoch_len} images is less than one batch of {}: raise \
             --epoch-samples or lower --batch-size",
            cfg.batch_size
        );
        let long = |v: &[usize]| {
            Tensor::from_slice(&v.iter().map(|&x| x as i64).collect::<Vec<_>>()).to_device(device)
        };
        Ok(Probe {
            cfg,
            group,
            head_opt: cfg.optimizer.build_with(&head_vs, &cfg.optim_settings())?,
            backbone_opt: finetune
                .then(|| {
                    cfg.optimizer
                        .build_with(&backbone_vs, &cfg.optim_settings())
                })
                .transpose()?,
            emas: weight_averages(cfg, &head_vs, finetune.then_some(&backbone_vs)),
            head_sync: GradSync::new(&head_vs, 25.0),
            backbone_sync: finetune.then(|| GradSync::new(&backbone_vs, 25.0)),
            loss: robust_loss(),
            method,
            head_params,
            net_method,
            net_images,
            solo: ProcessGroup::single(device),
            backbone,
            backbone_vs,
            head,
            head_vs,
            train: train_in,
            test: test_in,
            imagenet_test,
            noisy: long(&labels.noisy),
            clean: long(&labels.clean),
            views,
            schedule: cfg.train_schedule(),
            steps_per_epoch: epoch_len / cfg.batch_size,
            stop: StopPoll::default(),
            balanced,
            feature_seconds,
        })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// The rate of `step` for a base rate (by default cosine from `base` to `base × 0.1`).
    fn lr(&self, base: f64, step: usize) -> f64 {
        self.schedule
            .lr(base, step, self.steps_per_epoch, self.cfg.epochs)
    }

    /// Trains epoch `epoch` from step `acc.step`, accumulating into `acc`; stops early (at a
    /// step boundary, on every rank) when a stop signal arrives, and returns it.
    pub fn train_epoch(
        &mut self,
        epoch: usize,
        acc: &mut EpochProgress,
    ) -> Result<Option<StopSignal>> {
        if acc.step == 0 {
            self.start_method_epoch(epoch)?;
        }
        let order = self.epoch_order(epoch);
        let mut sums = DeviceSums::from(acc, self.group.device());
        while acc.step < self.steps_per_epoch {
            let global = self.on_device(order.global(acc.step));
            let (logits, loss) = self.step(&order, epoch, acc.step, &global)?;
            sums.add(loss, self.noisy_fit(&logits, &global));
            acc.step += 1;
            if let Some(signal) = self.stop.poll(self.group)? {
                sums.read_into(acc);
                return Ok(Some(signal));
            }
        }
        sums.read_into(acc);
        Ok(None)
    }

    /// Sample ids on the training device, in one pinned copy that does not block the host.
    fn on_device(&self, ids: &[i64]) -> Tensor {
        upload_slice(ids, self.group.device())
    }

    /// The epoch's order: the method's sampler, the class-balanced subset, or the seeded
    /// permutation of every sample.
    fn epoch_order(&self, epoch: usize) -> EpochOrder {
        let batch = self.cfg.batch_size;
        let ids = self
            .net_method
            .as_ref()
            .and_then(|(m, _)| m.epoch_ids(epoch, self.steps_per_epoch * batch));
        if let Some(ids) = ids {
            return EpochOrder::from_ids(ids, batch);
        }
        self.balanced_order(epoch).unwrap_or_else(|| {
            let n = self.noisy.size()[0] as usize;
            EpochOrder::new(self.cfg.seed, epoch as u64, n, batch)
        })
    }

    /// The epoch's class-balanced subset (`--epoch-samples`) in its order.
    fn balanced_order(&self, epoch: usize) -> Option<EpochOrder> {
        let subset = self.balanced.as_ref()?;
        Some(subset.order(self.cfg.seed, epoch as u64, self.cfg.batch_size))
    }

    /// One optimizer step; returns the global batch's logits (detached) and the loss.
    fn step(
        &mut self,
        order: &EpochOrder,
        epoch: usize,
        step: usize,
        global: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let global_step = epoch * self.steps_per_epoch + step;
        let lr_head = self.lr(self.cfg.lr_head, global_step);
        let lr_backbone = self.lr(self.cfg.lr_backbone, global_step);
        let (all, loss) = if self.net_method.is_some() {
            self.network_loss(order, epoch, step, global, (lr_backbone, lr_head))?
        } else {
            self.loss(order, epoch, step, global, lr_head)?
        };
        self.head_opt.zero_grad();
        if let Some(opt) = &mut self.backbone_opt {
            opt.zero_grad();
        }
        // Buckets are averaged while backward still computes the earlier layers.
        self.head_sync.arm(self.group)?;
        if let Some(sync) = &self.backbone_sync {
            sync.arm(self.group)?;
        }
        if let Some((method, _)) = &self.net_method {
            method.before_backward(self.group)?;
        }
        loss.f_backward()
            .map_err(|e| self.group.failed_during("backward", e))
            .context("backward")?;
        self.head_sync.average(self.group)?;
        if let Some(sync) = &self.backbone_sync {
            sync.average(self.group)?;
        }
        self.head_opt.step(lr_head);
        if let Some(opt) = &mut self.backbone_opt {
            opt.step(lr_backbone);
        }
        for (_, ema) in &mut self.emas {
            ema.update(self.cfg.ema_decay);
        }
        if let Some((method, _)) = &mut self.net_method {
            method.after_step(self.group, lr_backbone)?;
        }
        Ok((all.detach(), loss.detach()))
    }

    /// The global batch's logits and loss: the plain loss, or a head-only method's.
    fn loss(
        &mut self,
        order: &EpochOrder,
        epoch: usize,
        step: usize,
        global: &Tensor,
        lr_head: f64,
    ) -> Result<(Tensor, Tensor)> {
        let (rank, world) = (self.group.rank(), self.group.world_size());
        let part = order.slice(step, rank, world);
        let (features, mix) = self.features(part, epoch, step, (rank * part.len()) as i64)?;
        self.prefetch_next(order, epoch, step);
        let keep = self.dropout().then(|| {
            let mask = dropout_mask(self.cfg, epoch, step, rank * part.len(), part.len());
            upload(&mask, self.group.device())
        });
        let logits = self.head.forward(&features, keep.as_ref(), self.group)?;
        let all = self.group.all_gather_with_grad(&logits)?;
        let labels = self.noisy.index_select(0, global);
        let loss = match (&mut self.method, &self.train, &self.head_params) {
            (Some(method), Inputs::Features(features), Some(head)) => method.loss(&Step {
                logits: &all,
                ids: global,
                labels: &labels,
                clean: &self.clean.index_select(0, global),
                features: &features.index_select(0, global),
                keep: &upload(
                    &dropout_mask(self.cfg, epoch, step, 0, self.cfg.batch_size),
                    self.group.device(),
                ),
                head,
                lr: lr_head,
                key: step_key(self.cfg.seed, epoch, step, u64::MAX - 1),
            })?,
            _ => match &mix {
                None => self.loss.try_compute(&all, &labels, global)?,
                Some(mix) => {
                    let partners = mix.global_partners(global, world);
                    let other = self.noisy.index_select(0, &partners);
                    self.loss.try_compute(&all, &labels, global)? * mix.lambda
                        + self.loss.try_compute(&all, &other, &partners)? * (1.0 - mix.lambda)
                }
            },
        };
        Ok((all, loss))
    }

    /// The global batch's logits and loss from a whole-network method.
    fn network_loss(
        &mut self,
        order: &EpochOrder,
        epoch: usize,
        step: usize,
        global: &Tensor,
        (lr_backbone, lr_head): (f64, f64),
    ) -> Result<(Tensor, Tensor)> {
        let (rank, world) = (self.group.rank(), self.group.world_size());
        let len = order.slice(step, rank, world).len() as i64;
        let key = step_key(self.cfg.seed, epoch, step, 0);
        let start = rank as i64 * len;
        let (Some((method, _)), Some(images)) = (&self.net_method, &self.net_images) else {
            anyhow::bail!("a whole-network method needs the training images");
        };
        // This step's images are taken before the next steps' are queued behind them.
        let ids = (order.global(step), global);
        let images = images.step(ids, (start, len), key, &method.step_views())?;
        self.prefetch_next(order, epoch, step);
        let Some((method, params)) = &mut self.net_method else {
            unreachable!("checked above");
        };
        let finetune = self.cfg.weights == Weights::Finetune;
        let out = method.loss(&NetStep {
            net: Net {
                backbone: &self.backbone,
                head: &self.head,
            },
            params,
            group: self.group,
            solo: &self.solo,
            images: &images,
            ids: global,
            labels: &self.noisy.index_select(0, global),
            clean: &self.clean.index_select(0, global),
            start,
            len,
            lr: if finetune { lr_backbone } else { lr_head },
            lr_head,
            wd: self.cfg.wd,
            key,
            views: &self.views,
            optimizers: LiveOptimizers {
                head: self.head_opt.as_ref(),
                backbone: self.backbone_opt.as_deref(),
            },
        })?;
        self.prefetch_method_next(order, epoch, step);
        Ok((out.logits, out.loss))
    }

    /// What the whole-network method reads besides the next steps' batches (queued after this
    /// step read its own, so that the queue stays in the order of the steps).
    fn prefetch_method_next(&self, order: &EpochOrder, epoch: usize, step: usize) {
        let Some((method, _)) = &self.net_method else {
            return;
        };
        let (rank, world) = (self.group.rank(), self.group.world_size());
        let next_order = self.next_epoch_order(order, epoch, step);
        for (on, next, order) in order.steps_ahead(next_order.as_ref(), step, stream::BATCHES_AHEAD)
        {
            let len = order.slice(next, rank, world).len();
            let key = step_key(self.cfg.seed, epoch + on, next, 0);
            method.prefetch(key, self.cfg.batch_size, (rank * len, len));
        }
    }

    /// Whether the head trains with dropout: the MLP in training mode.
    fn dropout(&self) -> bool {
        self.cfg.head_mode == HeadMode::Train && self.head.has_dropout()
    }

    /// This rank's inputs for the head, samples `part` (global rows `start..`): cached features,
    /// or (augmented, perhaps mixed) images through the backbone (with gradients only when
    /// finetuning), and the mixing.
    fn features(
        &self,
        part: &[i64],
        epoch: usize,
        step: usize,
        start: i64,
    ) -> Result<(Tensor, Option<Mix>)> {
        let key = step_key(self.cfg.seed, epoch, step, 0);
        let (images, recipe) = match &self.train {
            Inputs::Features(f) => return Ok((f.index_select(0, &self.on_device(part)), None)),
            Inputs::Images(images) => {
                let recipe = match self.augments() {
                    true => Recipe::Train,
                    false => Recipe::Plain,
                };
                (images.index_select(0, &self.on_device(part)), recipe)
            }
            // Cropped and flipped on the way in: only normalization is left.
            Inputs::Stream(files) => {
                let key = stream_key(self.cfg, epoch, step);
                let batch = files.batch(part, key, start as u64)?;
                (upload(&batch, self.group.device()), Recipe::Plain)
            }
        };
        let x = self
            .views
            .view(&images, recipe, key, self.cfg.batch_size as i64, start)?;
        let (x, mix) = match self.cfg.mixup_alpha {
            0.0 => (x, None),
            alpha => {
                let (mixed, partner, lambda) = mixup(&x, key.with_view(MIXUP_VIEW), alpha)?;
                (mixed, Some(Mix { partner, lambda }))
            }
        };
        let features = if self.cfg.weights == Weights::Finetune {
            self.backbone.forward(&x, true, self.group)?
        } else {
            tch::no_grad(|| self.backbone.forward(&x, false, self.group))?
        };
        Ok((features, mix))
    }

    /// A streamed split decodes the next steps' batches while this one trains (into the next
    /// epoch's, whose first batches then decode while this one's model is tested).
    fn prefetch_next(&self, order: &EpochOrder, epoch: usize, step: usize) {
        let (rank, world) = (self.group.rank(), self.group.world_size());
        let next_order = self.next_epoch_order(order, epoch, step);
        for (on, next, order) in order.steps_ahead(next_order.as_ref(), step, stream::BATCHES_AHEAD)
        {
            let (epoch, part) = (epoch + on, order.slice(next, rank, world));
            let start = (rank * part.len()) as u64;
            match (&self.net_method, &self.net_images, &self.train) {
                (Some((method, _)), Some(images), _) => {
                    let key = step_key(self.cfg.seed, epoch, next, 0);
                    images.prefetch(part, start, key, &method.step_views());
                }
                (None, _, Inputs::Stream(files)) => {
                    files.prefetch(part, stream_key(self.cfg, epoch, next), start)
                }
                _ => return,
            }
        }
    }

    /// The next epoch's order, when the steps queued ahead of `step` reach into it and it is
    /// known now (not when a method's sampler draws it from its start of epoch).
    fn next_epoch_order(
        &self,
        order: &EpochOrder,
        epoch: usize,
        step: usize,
    ) -> Option<EpochOrder> {
        let reaches = order.ahead_reaches_next(step, stream::BATCHES_AHEAD);
        let sampled = (self.net_method.as_ref()).is_some_and(|(m, _)| m.samples_epochs());
        (reaches && epoch + 1 < self.cfg.epochs && !sampled).then(|| self.epoch_order(epoch + 1))
    }

    /// Whether training images are augmented: always when finetuning, on request when frozen.
    fn augments(&self) -> bool {
        self.cfg.augment || self.cfg.weights == Weights::Finetune
    }

    /// Of the batch's samples with a wrong label, how many the logits put in their true class,
    /// and how many there are (on the device).
    fn noisy_fit(&self, logits: &Tensor, global: &Tensor) -> (Tensor, Tensor) {
        let noisy = self.noisy.index_select(0, global);
        let clean = self.clean.index_select(0, global);
        let wrong = noisy.ne_tensor(&clean);
        let hit = logits
            .argmax(1, false)
            .eq_tensor(&clean)
            .logical_and(&wrong);
        (hit.sum(Kind::Int64), wrong.sum(Kind::Int64))
    }

    /// Gives the method, when it wants them, the classifier's probabilities (eval mode) over
    /// every training sample; a whole-network method its start of epoch.
    fn start_method_epoch(&mut self, epoch: usize) -> Result<()> {
        let subset = (self.net_method.is_some())
            .then(|| self.balanced_order(epoch))
            .flatten();
        if let (Some((method, _)), Some(images)) = (&mut self.net_method, &self.net_images) {
            return method.start_epoch(&EpochStart {
                net: Net {
                    backbone: &self.backbone,
                    head: &self.head,
                },
                group: self.group,
                images,
                views: &self.views,
                epoch,
                subset: subset.as_ref().map(EpochOrder::ids),
            });
        }
        let (Some(method), Inputs::Features(features)) = (&mut self.method, &self.train) else {
            return Ok(());
        };
        if !method.wants_predictions() {
            return Ok(());
        }
        let n = features.size()[0];
        let mut probs = Vec::new();
        for start in (0..n).step_by(CHUNK as usize) {
            let x = features.narrow(0, start, CHUNK.min(n - start));
            let logits = tch::no_grad(|| self.head.forward(&x, None, self.group))?;
            probs.push(logits.softmax(1, Kind::Float));
        }
        method.start_epoch(&Tensor::cat(&probs, 0))
    }

    /// The method's figures for the epoch just trained, and a fresh tally for the next.
    pub fn take_method_metrics(&mut self) -> std::collections::BTreeMap<String, f64> {
        if let Some((method, _)) = &mut self.net_method {
            let figures = method.epoch_metrics();
            method.end_epoch();
            return figures;
        }
        match &mut self.method {
            Some(method) => {
                let figures = method.epoch_metrics();
                method.end_epoch();
                figures
            }
            None => Default::default(),
        }
    }

    /// Top-1 and top-5 accuracy on the test split (eval mode), with the weight averages when
    /// there are.
    /// On ImageNet val too, where there is one.
    pub fn test(&mut self) -> Result<(Accuracy, Option<Accuracy>)> {
        self.swap_averages();
        let result = self.accuracy(&self.test).and_then(|test| {
            let imagenet = self.imagenet_test.as_ref().map(|t| self.accuracy(t));
            Ok((test, imagenet.transpose()?))
        });
        self.swap_averages();
        result
    }

    fn swap_averages(&mut self) {
        for (_, ema) in &mut self.emas {
            ema.swap();
        }
    }

    fn accuracy(&self, set: &TestSet) -> Result<Accuracy> {
        let n = set.labels.size()[0];
        let (mut top1, mut top5) = (0i64, 0i64);
        for start in (0..n).step_by(CHUNK as usize) {
            let len = CHUNK.min(n - start);
            let x = match &set.inputs {
                Inputs::Features(f) => f.narrow(0, start, len),
                Inputs::Images(images) => {
                    let x = self.views.plain(&images.narrow(0, start, len));
                    tch::no_grad(|| self.backbone.forward(&x, false, self.group))?
                }
                Inputs::Stream(_) => anyhow::bail!("the test split is never streamed"),
            };
            let logits = tch::no_grad(|| self.head.forward(&x, None, self.group))?;
            let labels = set.labels.narrow(0, start, len).unsqueeze(1);
            let k = 5.min(logits.size()[1]);
            let (_, top) = logits.topk(k, 1, true, true);
            let hits = top.eq_tensor(&labels);
            top1 += hits.narrow(1, 0, 1).sum(Kind::Int64).int64_value(&[]);
            top5 += hits.sum(Kind::Int64).int64_value(&[]);
        }
        Ok((top1 as f64 / n as f64, top5 as f64 / n as f64))
    }

    /// Everything a checkpoint holds besides the loop position.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        fn named(prefix: &str, vs: &VarStore) -> Vec<(String, Tensor)> {
            vs.variables()
                .into_iter()
                .map(|(n, t)| (format!("{prefix}{n}"), t.detach()))
                .collect()
        }
        let mut out = named("head/", &self.head_vs);
        out.extend(
            self.head_opt
                .state()
                .into_iter()
                .map(|(n, t)| (format!("head_optim/{n}"), t)),
        );
        if let Some(opt) = &self.backbone_opt {
            out.extend(named("backbone/", &self.backbone_vs));
            out.extend(
                opt.state()
                    .into_iter()
                    .map(|(n, t)| (format!("backbone_optim/{n}"), t)),
            );
        }
        if let Some(t) = self.loss.state() {
            out.push(("loss/elr_targets".into(), t));
        }
        for (group, ema) in &self.emas {
            out.extend(
                ema.state()
                    .into_iter()
                    .map(|(n, t)| (format!("{group}/{n}"), t)),
            );
        }
        let state = match (&self.method, &self.net_method) {
            (Some(method), _) => method.state(),
            (_, Some((method, _))) => method.state(),
            _ => Vec::new(),
        };
        out.extend(state.into_iter().map(|(n, t)| (format!("method/{n}"), t)));
        out
    }

    /// Puts back what [`Probe::tensors`] took out.
    pub fn restore(&mut self, tensors: Vec<(String, Tensor)>) -> Result<()> {
        let mut groups: std::collections::HashMap<&str, Vec<(String, Tensor)>> = Default::default();
        for (name, t) in tensors {
            let (group, rest) = name
                .split_once('/')
                .context("checkpoint tensor without a group")?;
            let key = [
                "head",
                "head_optim",
                "backbone",
                "backbone_optim",
                "loss",
                "method",
                EMA_HEAD,
                EMA_BACKBONE,
            ]
            .into_iter()
            .find(|g| *g == group)
            .with_context(|| format!("unexpected checkpoint tensor {name}"))?;
            groups.entry(key).or_default().push((rest.to_string(), t));
        }
        let device = self.group.device();
        let on = |v: Vec<(String, Tensor)>| -> Vec<(String, Tensor)> {
            v.into_iter()
                .map(|(n, t)| (n, t.to_device(device)))
                .collect()
        };
        copy_into(&self.head_vs, groups.remove("head").unwrap_or_default())?;
        self.head_opt
            .load_state(on(groups.remove("head_optim").unwrap_or_default()))?;
        if let Some(opt) = &mut self.backbone_opt {
            copy_into(
                &self.backbone_vs,
                groups.remove("backbone").unwrap_or_default(),
            )?;
            opt.load_state(on(groups.remove("backbone_optim").unwrap_or_default()))?;
        }
        for (group, ema) in &mut self.emas {
            ema.load_state(on(groups.remove(*group).unwrap_or_default()))?;
        }
        if let Some((_, t)) = groups.remove("loss").and_then(|mut v| v.pop()) {
            self.loss.load_state(&t)?;
        }
        let saved = on(groups.remove("method").unwrap_or_default());
        match (&mut self.method, &mut self.net_method) {
            (Some(method), _) => method.load_state(saved)?,
            (_, Some((method, _))) => method.load_state(saved)?,
            _ => {}
        }
        Ok(())
    }

    pub fn lr_head_at(&self, epoch: usize) -> f64 {
        self.lr(self.cfg.lr_head, epoch * self.steps_per_epoch)
    }
}

/// The dropout mask of rows `start..start + len` of the global batch: drawn for the whole
/// global batch from a generator keyed by (seed, epoch, step), so it depends neither on the
/// number of ranks nor on whether the run was resumed.
fn dropout_mask(cfg: &EvalConfig, epoch: usize, step: usize, start: usize, len: usize) -> Tensor {
    let key = ViewKey {
        seed: cfg.seed,
        epoch: epoch as u64,
        step: step as u64,
        rank: 0,
        view: u64::MAX,
    };
    let mut rng = key.rng();
    let global = cfg.batch_size * HIDDEN as usize;
    let keep: Vec<f32> = (0..global)
        .map(|_| {
            let u = (rand::RngCore::next_u64(&mut rng) >> 11) as f64 / (1u64 << 53) as f64;
            if u < DROPOUT {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    Tensor::from_slice(&keep)
        .view([cfg.batch_size as i64, HIDDEN])
        .narrow(0, start as i64, len as i64)
}

/// The key of a step's random draws (`view` tells the draws apart).
fn step_key(seed: u64, epoch: usize, step: usize, view: u64) -> ViewKey {
    ViewKey {
        seed,
        epoch: epoch as u64,
        step: step as u64,
        rank: 0,
        view,
    }
}

/// The held-out trusted images, streamed from their files as `train` is when it is.
fn trusted_images(
    labels: &NoisyLabels,
    device: tch::Device,
    train: &TrainImages,
) -> Result<Option<TrustedImages>> {
    let Some(held) = &labels.held_out else {
        return Ok(None);
    };
    let images = match (train, &held.paths) {
        (TrainImages::Streamed(train), Some(paths)) => StreamedImages::images(StreamSource {
            paths: paths.as_slice().into(),
            ..train.source().clone()
        }),
        _ => TrainImages::Resident(to_rgb(&held.images)?.to_device(device)),
    };
    let classes: Vec<i64> = held.labels.iter().map(|&c| c as i64).collect();
    Ok(Some(TrustedImages {
        images,
        labels: Tensor::from_slice(&classes).to_device(device),
    }))
}

/// SimCLR's augmentation at `side`, normalized with `normalization`.
fn contrastive_augment(side: i64, normalization: Normalization) -> AugmentConfig {
    let mut cfg = AugmentConfig::simclr();
    cfg.size = side;
    (cfg.mean, cfg.std) = (normalization.mean, normalization.std);
    cfg
}

/// Checkpoint groups of the weight averages.
const EMA_HEAD: &str = "ema_head";
const EMA_BACKBONE: &str = "ema_backbone";
/// How a whole-network method streams a training split: the run's training cut, SimCLR's
/// resized crop for the contrastive views, and the test split's resize and centre crop for
/// the passes in order.
fn stream_source(
    cfg: &EvalConfig,
    paths: Arc<[String]>,
    files: crate::data::files::Files,
    views: &Views,
    bad_count: Arc<std::sync::atomic::AtomicUsize>,
    device: tch::Device,
) -> Result<StreamSource> {
    let cut = cfg
        .stream_cut()
        .context("a streamed split has --image-size")?;
    Ok(StreamSource {
        files,
        paths,
        bad: cfg.image_options().bad,
        bad_count,
        scale: cfg.decode_scale.unwrap_or_default(),
        device,
        train: cut,
        contrastive: Cut::resized_crop(&views.contrastive),
        plain: Cut::centre(cut.size, cfg.test_resize.unwrap_or(cut.size)),
    })
}

/// The `view` of the mixup stream's key (views 0.. are augmentations).
const MIXUP_VIEW: u64 = u64::MAX - 2;

/// The weight averages `--ema-decay` asks for: the head's, and the backbone's when it trains.
fn weight_averages(
    cfg: &EvalConfig,
    head: &VarStore,
    backbone: Option<&VarStore>,
) -> Vec<(&'static str, Ema)> {
    if cfg.ema_decay == 0.0 {
        return Vec::new();
    }
    let mut emas = vec![(EMA_HEAD, Ema::new(head))];
    emas.extend(backbone.map(|vs| (EMA_BACKBONE, Ema::new(vs))));
    emas
}

/// One step's mixup: every rank mixes its share of the global batch with the same partner
/// permutation (one key), so the global partners are known on every rank.
struct Mix {
    /// Partners within a rank's share, `[B / world]`.
    partner: Tensor,
    lambda: f64,
}

impl Mix {
    /// The sample ids of every row's partner in the global batch `global` of `world` shares.
    fn global_partners(&self, global: &Tensor, world: usize) -> Tensor {
        let share = self.partner.size()[0];
        let rows: Vec<Tensor> = (0..world as i64)
            .map(|r| &self.partner + r * share)
            .collect();
        global.index_select(0, &Tensor::cat(&rows, 0))
    }
}

fn copy_into(vs: &VarStore, saved: Vec<(String, Tensor)>) -> Result<()> {
    let saved: std::collections::HashMap<String, Tensor> = saved.into_iter().collect();
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let t = saved
                .get(&name)
                .with_context(|| format!("the checkpoint lacks {name}"))?;
            anyhow::ensure!(
                t.size() == var.size(),
                "{name}: shape {:?} vs {:?}",
                t.size(),
                var.size()
            );
            var.copy_(t);
        }
        Ok(())
    })
}

/// RandomResizedCrop(side) + horizontal flip, then `normalization`.
fn eval_augment(side: i64, normalization: Normalization) -> AugmentConfig {
    let mut cfg = AugmentConfig::simclr();
    cfg.size = side;
    cfg.jitter_p = 0.0;
    cfg.gray_p = 0.0;
    cfg.solarize_p = 0.0;
    (cfg.mean, cfg.std) = (normalization.mean, normalization.std);
    cfg
}

/// An epoch's running sums kept on the training device, so that a step never waits for the
/// device to report its loss; read back when the epoch ends or stops. They start from the
/// progress already made and add in the same order as on the host, so the figures are the same.
struct DeviceSums {
    loss: Tensor,
    fit: Tensor,
    wrong: Tensor,
}

impl DeviceSums {
    fn from(acc: &EpochProgress, device: tch::Device) -> DeviceSums {
        DeviceSums {
            loss: Tensor::from(acc.loss_sum).to_device(device),
            fit: Tensor::from(acc.fit).to_device(device),
            wrong: Tensor::from(acc.wrong).to_device(device),
        }
    }

    fn add(&mut self, loss: Tensor, (fit, wrong): (Tensor, Tensor)) {
        self.loss += loss.to_kind(Kind::Double);
        self.fit += fit;
        self.wrong += wrong;
    }

    fn read_into(&self, acc: &mut EpochProgress) {
        acc.loss_sum = self.loss.double_value(&[]);
        acc.fit = self.fit.int64_value(&[]);
        acc.wrong = self.wrong.int64_value(&[]);
    }
}
