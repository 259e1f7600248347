//! The seed methods on the whole network, as their papers train them (the head-only variants in
//! the parent module stay as the cheap `cached-features` protocol):
//!
//! - [`mwn`]: Meta-Weight-Net, its look-ahead through backbone + head;
//! - [`rkd`]: the representation regularizer, its projector trained with the network;
//! - `ieg`, `ssr`: the other two papers' regimes.
//!
//! A [`NetworkMethod`] returns each step's loss of the global batch; the evaluation loop
//! backpropagates it into backbone and head, averages gradients over the ranks and steps its
//! optimizers, as for a plain loss. Meta steps run on the whole global batch on every rank,
//! through the [`lookahead`] engine with a group of one, so they need no communication and give
//! every rank (and a run on one rank) the same weights.

pub mod ieg;
pub mod images;
pub mod live;
pub mod lookahead;
pub mod mwn;
pub mod rkd;
pub mod ssr;
pub mod views;

use super::{Method, MethodParams};
use crate::augment::ViewKey;
use crate::distributed::ProcessGroup;
use crate::method::eval::head::Head;
use crate::model::precision::upload_slice;
use crate::model::{Backbone, NetSpec};
use crate::optim::{sgd, Optimizer};
use anyhow::{Context, Result};
pub use images::{PassBatch, StepImages, TrainImages};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::{Device, Tensor};
pub use views::{Recipe, Views};

/// The network a method trains: backbone + head (a linear classifier).
#[derive(Clone, Copy)]
pub struct Net<'a> {
    pub backbone: &'a Backbone,
    pub head: &'a Head,
}

impl Net<'_> {
    /// Pooled features `[B, emb]` of normalized images; `train` uses (and updates) batch
    /// statistics, synchronized over `group`.
    pub fn features(&self, x: &Tensor, train: bool, group: &ProcessGroup) -> Result<Tensor> {
        Ok(self.backbone.forward(x, train, group)?)
    }

    /// Logits `[B, K]` of features.
    pub fn classify(&self, features: &Tensor, group: &ProcessGroup) -> Result<Tensor> {
        Ok(self.head.forward(features, None, group)?)
    }

    /// Logits `[B, K]` of normalized images.
    pub fn logits(&self, x: &Tensor, train: bool, group: &ProcessGroup) -> Result<Tensor> {
        self.classify(&self.features(x, train, group)?, group)
    }
}

/// One training step as a whole-network method sees it.
pub struct NetStep<'a> {
    pub net: Net<'a>,
    /// The network's variables (a look-ahead's `θ`).
    pub params: &'a lookahead::NetParams,
    /// The run's process group (for this rank's share), and a group of one (for computations
    /// every rank repeats on the whole global batch).
    pub group: &'a ProcessGroup,
    pub solo: &'a ProcessGroup,
    /// The global batch's images (the raw images, or this rank's rows of the views the method
    /// streams), its sample ids, noisy labels, and true labels (for diagnostics only).
    pub images: &'a StepImages,
    pub ids: &'a Tensor,
    pub labels: &'a Tensor,
    pub clean: &'a Tensor,
    /// This rank's rows of the global batch: `start..start + len`.
    pub start: i64,
    pub len: i64,
    /// The network's rate at this step (the backbone's when it trains, else the head's), and
    /// the head's.
    pub lr: f64,
    pub lr_head: f64,
    pub wd: f64,
    /// The step's key (seed, epoch, step): views take `key.with_view(v)`.
    pub key: ViewKey,
    pub views: &'a Views,
    /// The network's optimizers (IEG's look-ahead reads their momentum).
    pub optimizers: LiveOptimizers<'a>,
}

/// The optimizers of the live network: the head's, and the backbone's when it trains.
#[derive(Clone, Copy)]
pub struct LiveOptimizers<'a> {
    pub head: &'a dyn Optimizer,
    pub backbone: Option<&'a dyn Optimizer>,
}

impl LiveOptimizers<'_> {
    /// The momentum buffers `m` of `params.trainable`, in its order (copies; an undefined
    /// tensor where a variable has none, as before its first step or under Adam).
    pub fn momentum_buffers(&self, params: &lookahead::NetParams) -> Vec<Tensor> {
        let mut found = std::collections::HashMap::new();
        for (prefix, opt) in [("head", Some(self.head)), ("backbone", self.backbone)] {
            for (key, t) in opt.map(|o| o.state()).unwrap_or_default() {
                if let Some(var) = key.strip_suffix(&format!(":{}", sgd::MOMENTUM_BUFFER)) {
                    found.insert(format!("{prefix}.{var}"), t);
                }
            }
        }
        params
            .trainable
            .iter()
            .map(|(name, _)| found.remove(name).unwrap_or_else(Tensor::new))
            .collect()
    }
}

impl NetStep<'_> {
    /// Rows of the global batch in `B`.
    pub fn global_n(&self) -> i64 {
        self.ids.size()[0]
    }

    /// This rank's share of view `view` of the global batch.
    pub fn local_view(&self, recipe: Recipe, view: u64) -> Result<Tensor> {
        (self.images).local_view(self.view_at(recipe, view), (self.start, self.len))
    }

    /// View `view` of the whole global batch (the same rows every rank's share has).
    pub fn global_view(&self, recipe: Recipe, view: u64) -> Result<Tensor> {
        (self.images).global_view(self.view_at(recipe, view), self.group)
    }

    fn view_at(&self, recipe: Recipe, view: u64) -> images::ViewAt<'_> {
        images::ViewAt {
            views: self.views,
            recipe,
            view,
            key: self.key,
            global_n: self.global_n(),
        }
    }

    /// This rank's rows of a global-batch tensor.
    pub fn local_rows(&self, t: &Tensor) -> Tensor {
        t.narrow(0, self.start, self.len)
    }

    /// A rank's `[len, …]` tensor gathered into the global batch, gradient flowing back to
    /// every rank's rows.
    pub fn gather(&self, t: &Tensor) -> Result<Tensor> {
        Ok(self.group.all_gather_with_grad(t)?)
    }
}

/// A step's loss and the global batch's training logits `[B, K]` (for the epoch's figure of
/// noisy samples predicted as their true class).
pub struct StepLoss {
    pub loss: Tensor,
    pub logits: Tensor,
}

/// What a method sees before an epoch.
pub struct EpochStart<'a> {
    pub net: Net<'a>,
    pub group: &'a ProcessGroup,
    /// Every training image, and the views to make of them.
    pub images: &'a TrainImages,
    pub views: &'a Views,
    pub epoch: usize,
    /// The samples this epoch trains on when it draws a subset (`--epoch-samples`), in the
    /// epoch's order; None: every training image.
    pub subset: Option<&'a [i64]>,
}

/// A method of the seed papers training the whole network.
pub trait NetworkMethod {
    /// The views a step makes of its batch, `(recipe, view)` with views numbered in turn: what
    /// a streamed split cuts from one decode of each file.
    fn step_views(&self) -> Vec<(Recipe, u64)> {
        vec![(Recipe::Train, 0)]
    }

    /// Called before an epoch's first step (SSR's selection).
    fn start_epoch(&mut self, _start: &EpochStart) -> Result<()> {
        Ok(())
    }

    /// Queues what a later step of `key` will read besides its batch (SSR's consistency batch)
    /// while this one trains: `global_n` samples, this rank's rows `start..start + len`.
    fn prefetch(&self, _key: ViewKey, _global_n: usize, _rows: (usize, usize)) {}

    /// Whether [`epoch_ids`](Self::epoch_ids) draws the epochs' samples from what
    /// [`start_epoch`](Self::start_epoch) decides (an epoch's order is not known before).
    fn samples_epochs(&self) -> bool {
        false
    }

    /// The sample ids the epoch trains on, `len` of them (SSR's class-balanced sampler); None:
    /// the seeded permutation of every sample.
    fn epoch_ids(&self, _epoch: usize, _len: usize) -> Option<Vec<i64>> {
        None
    }

    /// The loss of the step's global batch, the same on every rank, with gradient to the
    /// network (through this rank's share), and the batch's training logits.
    fn loss(&mut self, step: &NetStep) -> Result<StepLoss>;

    /// Right before the step's backward: arms the method's own gradient averagers, so that
    /// they average while backward runs (the module's gradients zeroed since its last step).
    fn before_backward(&self, _group: &ProcessGroup) -> Result<()> {
        Ok(())
    }

    /// After the network's optimizer step: steps the method's own trained modules (the
    /// regularizer's projector), at the backbone's rate.
    fn after_step(&mut self, _group: &ProcessGroup, _lr: f64) -> Result<()> {
        Ok(())
    }

    /// Tensors to checkpoint, by name.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Puts back what [`NetworkMethod::state`] returned.
    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        anyhow::ensure!(state.is_empty(), "this method keeps no state");
        Ok(())
    }

    /// Figures for the epoch's metrics line (method-prefixed names).
    fn epoch_metrics(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// Called after an epoch's metrics were taken.
    fn end_epoch(&mut self) {}
}

/// The trusted images held out of training (`--holdout-trusted`): resident on the device, or
/// streamed from their files as the training images are.
pub struct TrustedImages {
    pub images: TrainImages,
    /// `[M]` true labels, on the device.
    pub labels: Tensor,
}

impl TrustedImages {
    /// The ids of [`trusted_batch`]'s draw for step `key`.
    pub fn meta_ids(&self, key: ViewKey, take: usize, view: u64) -> Vec<i64> {
        let m = self.labels.size()[0] as usize;
        let take = if take == 0 { m } else { take.min(m) };
        let mut rng = key.with_view(view).rng();
        let mut ids: Vec<i64> = rand::seq::index::sample(&mut rng, m, take)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Queues the cutting of a later step's [`train_view`](Self::train_view), when streamed.
    pub fn prefetch(&self, key: ViewKey, ids: &[i64], view: u64) {
        self.images.prefetch(ids, 0, key, &[(Recipe::Train, view)]);
    }

    /// Queues a later step's [`trusted_batch`] of `take` images, when streamed.
    pub fn prefetch_batch(&self, key: ViewKey, take: usize, view: u64) {
        self.prefetch(key, &self.meta_ids(key, take, view), view);
    }

    /// The trusted images `ids` (with repeats, in any order) as view `view` of `step`'s
    /// training recipe, the `ids` being a global batch of their own: normalized
    /// `[ids.len(), …]`, and their labels.
    pub fn train_view(&self, step: &NetStep, ids: &[i64], view: u64) -> Result<(Tensor, Tensor)> {
        let n = ids.len() as i64;
        let on_device = upload_slice(ids, self.labels.device());
        let wanted = [(Recipe::Train, view)];
        let images = self
            .images
            .step((ids, &on_device), (0, n), step.key, &wanted)?;
        let at = images::ViewAt {
            views: step.views,
            recipe: Recipe::Train,
            view,
            key: step.key,
            global_n: n,
        };
        Ok((
            images.local_view(at, (0, n))?,
            self.labels.index_select(0, &on_device),
        ))
    }
}

/// A meta batch of the trusted set: `take` images drawn without replacement by the step's key
/// (all of them when 0), augmented with the training recipe, and their labels.
pub fn trusted_batch(
    trusted: &TrustedImages,
    step: &NetStep,
    take: usize,
    view: u64,
) -> Result<(Tensor, Tensor)> {
    let ids = trusted.meta_ids(step.key, take, view);
    trusted.train_view(step, &ids, view)
}

/// The look-ahead's rate: `--meta-lr`, or the network's current rate when it is 0.
pub fn look_ahead_rate(meta_lr: f64, step: &NetStep) -> f64 {
    if meta_lr > 0.0 {
        meta_lr
    } else {
        step.lr
    }
}

/// What methods may need when they are built.
pub struct NetSetup<'a> {
    pub params: MethodParams,
    pub seed: u64,
    pub classes: i64,
    pub noisy: &'a [usize],
    pub clean: &'a [usize],
    /// Every training image: SSR's consistency batches draw from all of them.
    pub images: TrainImages,
    /// The architecture, to build a shadow network for look-aheads.
    pub spec: &'a NetSpec,
    pub head: crate::method::eval::config::HeadKind,
    pub device: Device,
    pub trusted: Option<TrustedImages>,
    /// The pretraining projector's widths and weights, when the backbone has one.
    pub projector: Option<&'a crate::method::eval::backbone::SavedProjector>,
    pub embedding_dim: i64,
    /// The run's `--loss` (the regularizer's base loss), and its optimizer and settings (for
    /// a method's own trained modules).
    pub loss: crate::method::eval::RobustLoss,
    pub optimizer: crate::optim::OptimizerKind,
    pub optim: crate::optim::OptimSettings,
}

impl<'a> NetSetup<'a> {
    /// A setup around a network with every other part at its default: the default method
    /// parameters, seed 0, no labels, no trusted set or projector, CE, plain SGD (tests and
    /// tools fill in what they need with `NetSetup { …, ..NetSetup::new(…) }`).
    pub fn new(
        spec: &'a NetSpec,
        classes: i64,
        embedding_dim: i64,
        images: &'a Tensor,
    ) -> NetSetup<'a> {
        let device = images.device();
        NetSetup {
            params: MethodParams::default(),
            seed: 0,
            classes,
            noisy: &[],
            clean: &[],
            images: TrainImages::Resident(images.shallow_clone()),
            spec,
            head: crate::method::eval::config::HeadKind::Linear,
            device,
            trusted: None,
            projector: None,
            embedding_dim,
            loss: crate::method::eval::RobustLoss::new(
                crate::method::eval::LossKind::Ce,
                Default::default(),
                0,
                classes,
                device,
            ),
            optimizer: crate::optim::OptimizerKind::Sgd,
            optim: crate::optim::OptimSettings::new(0.0),
        }
    }

    /// The held-out trusted set, or an error saying how to get one.
    pub fn take_trusted(&mut self, method: Method) -> Result<TrustedImages> {
        self.trusted.take().with_context(|| {
            format!(
                "--method {method} on the whole network learns from trusted images held out of \
                 training: give --holdout-trusted N (MW-Net's paper: 1000; IEG: 10 a class)"
            )
        })
    }

    /// A second network of the same architecture on its own variables (a look-ahead's θ').
    pub fn shadow(&self) -> (VarStore, Backbone, Head) {
        shadow_network(
            self.spec,
            self.head,
            self.embedding_dim,
            self.classes,
            self.device,
        )
    }
}

/// A network of `spec` with a `head` classifier on its own variables, named `backbone.*` and
/// `head.*` (the names [`lookahead::NetParams`] gives the live network's).
pub fn shadow_network(
    spec: &NetSpec,
    head: crate::method::eval::config::HeadKind,
    embedding_dim: i64,
    classes: i64,
    device: Device,
) -> (VarStore, Backbone, Head) {
    let vs = VarStore::new(device);
    let backbone = Backbone::new(&(vs.root() / "backbone"), spec);
    let head = Head::new(&(vs.root() / "head"), head, false, embedding_dim, classes);
    (vs, backbone, head)
}

/// The whole-network method `method`, or None for the plain loss.
pub fn build(method: Method, setup: NetSetup) -> Result<Option<Box<dyn NetworkMethod>>> {
    Ok(match method {
        Method::None => None,
        Method::Mwn => Some(Box::new(mwn::NetworkMetaWeightNet::new(setup)?)),
        Method::Rkd => Some(Box::new(rkd::NetworkRepresentationRegularizer::new(setup)?)),
        Method::Ieg => Some(Box::new(ieg::NetworkIeg::new(setup)?)),
        Method::Ssr => Some(Box::new(ssr::NetworkSsr::new(setup)?)),
    })
}
