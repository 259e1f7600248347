//! The representation regularizer of Cheng et al. (2023) on the whole network, as their
//! `CE_Reg.py` / `GCE_Reg.py` train it: encoder, projector and linear classifier learn jointly
//! (from random initialisation, or from a pretraining checkpoint) on
//!
//! `L = ℓ(f(x₁), y) + γ·InfoNCE(g(x₂), g(x₃)) + λ·RKD(softmax f(x₁), g(x₁))`
//!
//! - `x₁` is the training view (crop + flip), `x₂`, `x₃` two contrastive views
//!   ([`Recipe::Contrastive`]); each goes through the network in its own forward pass;
//! - `ℓ` is cross-entropy, or GCE with `--loss gce` (`GCE_Reg.py`: `(1 − p_y^q)/q`, q 0.7);
//! - InfoNCE is the reference's `Info_NCE` at temperature `--rkd-temperature` (0.5), weight
//!   `γ` = `--rkd-infonce` (1): the same function as SimCLR's NT-Xent ([`nt_xent`]);
//! - RKD is the shared [`rkd_distance`] (smooth-L1 between the normalized pairwise distances of
//!   the probabilities and the squared ones of the projection), weight `λ` = `--rkd-weight`,
//!   the teacher side **not** detached, as the reference: the regularizer also moves the
//!   projection (and through it the encoder) towards the classifier's geometry.
//!
//! The projector `g` is the pretraining one when the backbone has it, else a fresh
//! Linear(512)→BN→ReLU→Linear(128) of the reference's widths (this crate's [`Projector`]: the
//! first Linear carries the bias the reference puts on the last; BN cancels the former, and
//! the distances ignore the latter, only InfoNCE's normalization sees it). It trains with its
//! own optimizer (the run's `--optimizer` and settings), stepped in
//! [`NetworkMethod::after_step`] at the backbone's rate on gradients averaged over the ranks.
//!
//! InfoNCE and RKD are taken over the global batch (projections and logits gathered with
//! gradient, BN statistics synchronized), so every rank computes the same loss, and 2 ranks
//! train as 1.

use super::{NetSetup, NetStep, NetworkMethod, Recipe, StepLoss};
use crate::distributed::ddp::{named_variables, GradSync};
use crate::distributed::ProcessGroup;
use crate::method::eval::head::Head;
use crate::method::eval::methods::rkd::{rkd_distance, saved_projector};
use crate::method::eval::{LossKind, RobustLoss};
use crate::method::ssl::simclr::nt_xent;
use crate::model::Projector;
use crate::optim::Optimizer;
use anyhow::{ensure, Context, Result};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// The reference's projection head (`model.py`: 512 → 512 → 128).
pub const FRESH_PROJECTOR_WIDTHS: [i64; 2] = [512, 128];

/// Checkpoint prefixes of the projector's variables, its optimizer state and the epoch tally.
const VARIABLES: &str = "projector.";
const OPTIMIZER: &str = "projector_optim.";
const TALLY: &str = "rkd_tally";

/// The views of a step: the training view, then the two contrastive ones.
const VIEWS: [(Recipe, u64); 3] = [
    (Recipe::Train, 0),
    (Recipe::Contrastive, 1),
    (Recipe::Contrastive, 2),
];

/// The step objective's three terms (unweighted, the same on every rank) and the training
/// view's logits of the global batch.
pub struct Terms {
    pub base: Tensor,
    pub infonce: Tensor,
    pub rkd: Tensor,
    pub logits: Tensor,
}

pub struct NetworkRepresentationRegularizer {
    vs: VarStore,
    projector: Projector,
    optimizer: Box<dyn Optimizer>,
    sync: GradSync,
    loss: RobustLoss,
    temperature: f64,
    infonce_weight: f64,
    rkd_weight: f64,
    /// Sums over the epoch's steps of (base, infonce, rkd), and the step count.
    tally: [f64; 4],
}

impl NetworkRepresentationRegularizer {
    pub fn new(setup: NetSetup) -> Result<NetworkRepresentationRegularizer> {
        let vs = VarStore::new(setup.device);
        let projector = match setup.projector {
            Some(saved) => saved_projector(&vs, setup.embedding_dim, saved)
                .context("--method rkd: the pretraining projector")?,
            None => {
                // Every rank draws the same fresh projector.
                tch::manual_seed(setup.seed as i64 ^ 0x0052_4b44);
                Projector::new(&vs.root(), setup.embedding_dim, &FRESH_PROJECTOR_WIDTHS)?
            }
        };
        let p = setup.params;
        ensure!(
            matches!(setup.loss.kind(), LossKind::Ce | LossKind::Gce),
            "--method rkd takes --loss ce or gce (the paper's CE_Reg and GCE_Reg)"
        );
        Ok(NetworkRepresentationRegularizer {
            optimizer: setup
                .optimizer
                .build_with(&vs, &setup.optim)
                .context("--method rkd: the projector's optimizer")?,
            sync: GradSync::new(&vs, 25.0),
            vs,
            projector,
            loss: setup.loss,
            temperature: p.rkd_temperature,
            infonce_weight: p.rkd_infonce,
            rkd_weight: p.rkd_weight,
            tally: [0.0; 4],
        })
    }

    /// The projector's variables (for tests), by name.
    pub fn projector_variables(&self) -> Vec<(String, Tensor)> {
        named_variables(&self.vs)
    }

    /// The three terms from this rank's features of the three views (training view first),
    /// the global batch's noisy labels and ids; BN statistics and gathers over `group`.
    pub fn terms(
        &mut self,
        head: &Head,
        features: &[Tensor; 3],
        labels: &Tensor,
        ids: &Tensor,
        group: &ProcessGroup,
    ) -> Result<Terms> {
        let project = |f: &Tensor| self.projector.forward(f, true, group);
        let logits = group.all_gather_with_grad(&head.forward(&features[0], None, group)?)?;
        let teacher = group.all_gather_with_grad(&project(&features[0])?)?;
        let infonce = nt_xent(
            &project(&features[1])?,
            &project(&features[2])?,
            group,
            self.temperature,
        )?;
        let probabilities = logits.softmax(1, logits.kind());
        Ok(Terms {
            base: self.loss.try_compute(&logits, labels, ids)?,
            infonce,
            rkd: rkd_distance(&probabilities, &teacher),
            logits,
        })
    }

    /// `base + γ·infonce + λ·rkd`.
    pub fn total(&self, terms: &Terms) -> Tensor {
        &terms.base + &terms.infonce * self.infonce_weight + &terms.rkd * self.rkd_weight
    }

    fn count(&mut self, terms: &Terms) {
        let parts = [&terms.base, &terms.infonce, &terms.rkd];
        for (sum, t) in self.tally.iter_mut().zip(parts) {
            *sum += t.double_value(&[]);
        }
        self.tally[3] += 1.0;
    }
}

impl NetworkMethod for NetworkRepresentationRegularizer {
    fn step_views(&self) -> Vec<(Recipe, u64)> {
        VIEWS.to_vec()
    }

    fn loss(&mut self, step: &NetStep) -> Result<StepLoss> {
        let mut features = Vec::with_capacity(VIEWS.len());
        for (recipe, view) in VIEWS {
            let x = step.local_view(recipe, view)?;
            features.push(step.net.features(&x, true, step.group)?);
        }
        let features: [Tensor; 3] = features.try_into().expect("three views");
        let terms = self.terms(step.net.head, &features, step.labels, step.ids, step.group)?;
        self.count(&terms);
        Ok(StepLoss {
            loss: self.total(&terms),
            logits: terms.logits.detach(),
        })
    }

    fn before_backward(&self, group: &ProcessGroup) -> Result<()> {
        self.sync
            .arm(group)
            .context("arming the projector's averager")
    }

    fn after_step(&mut self, group: &ProcessGroup, lr: f64) -> Result<()> {
        self.sync
            .average(group)
            .context("averaging the projector's gradients")?;
        self.optimizer.step(lr);
        self.optimizer.zero_grad();
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let variables = named_variables(&self.vs)
            .into_iter()
            .map(|(n, v)| (format!("{VARIABLES}{n}"), v.detach().copy()));
        let optimizer = self
            .optimizer
            .state()
            .into_iter()
            .map(|(n, t)| (format!("{OPTIMIZER}{n}"), t));
        let tally = Tensor::from_slice(&self.tally);
        variables
            .chain(optimizer)
            .chain([(TALLY.to_string(), tally)])
            .collect()
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        let mut variables = BTreeMap::new();
        let mut optimizer = Vec::new();
        for (name, t) in state {
            if let Some(n) = name.strip_prefix(VARIABLES) {
                variables.insert(n.to_string(), t);
            } else if let Some(n) = name.strip_prefix(OPTIMIZER) {
                optimizer.push((n.to_string(), t));
            } else if name == TALLY {
                let v: Vec<f64> = Vec::<f64>::try_from(t.to_kind(Kind::Double))?;
                self.tally = v
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("{TALLY}: 4 values"))?;
            } else {
                anyhow::bail!("--method rkd's checkpoint has an unknown entry {name}");
            }
        }
        tch::no_grad(|| -> Result<()> {
            for (name, mut var) in named_variables(&self.vs) {
                let saved = variables
                    .get(&name)
                    .with_context(|| format!("the checkpoint lacks the projector's {name}"))?;
                var.copy_(&saved.to_device(var.device()));
            }
            Ok(())
        })?;
        self.optimizer.load_state(optimizer)
    }

    fn epoch_metrics(&self) -> BTreeMap<String, f64> {
        let steps = self.tally[3].max(1.0);
        ["rkd_base", "rkd_infonce", "rkd_distance"]
            .iter()
            .zip(self.tally)
            .map(|(name, sum)| (name.to_string(), sum / steps))
            .collect()
    }

    fn end_epoch(&mut self) {
        self.tally = [0.0; 4];
    }
}
