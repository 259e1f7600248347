//! SSR (Feng et al., BMVC 2022) on the whole network, as the reference's `main_cifar.py`,
//! `main_clothing1m.py` and `main_webvision.py` train it. No warm-up: the reference selects
//! from the first epoch on. At the start of every epoch, over the epoch's pool (every training
//! image; with `--epoch-samples`, the epoch's class-balanced subset, as the Clothing1M script
//! draws 1000 batches a epoch), each through the training recipe (the reference's
//! `weak_transform`) in eval mode:
//!
//! 1. **relabel** where the classifier's top probability exceeds `θr` (`--theta-r`);
//! 2. **select** by a kNN vote (`--ssr-k` neighbours by cosine similarity of the normalized
//!    features, the sample itself among them), divided by the class prior of the current labels
//!    (`--ssr-balance-votes`; the Clothing1M script does not) and normalized per sample: kept
//!    where the label's vote is at least `θs` (`--theta-s`) times the top vote.
//!
//! Each step then trains on a class-balanced batch of the selected samples ([`balanced_ids`]):
//! cross-entropy of mixup (λ ~ Beta(α, α), `--ssr-mixup-alpha`, λ ← max(λ, 1 − λ)) over two
//! AutoAugment views of the batch, partners drawn over the whole 2B; plus `--ssr-consistency` ×
//! the SimSiam feature consistency `−cos(h(f(strong)), sg(f(weak)))` on a batch of the pool
//! (the reference's `all_loader`, one pass per epoch), with projector `f` and predictor `h`
//! (`--ssr-hidden`, `--ssr-projection`) the method's own, stepped by SGD (momentum 0.9, the
//! run's `--wd`: the reference's one optimizer) at the backbone's rate.

use super::images::ViewAt;
use super::{
    EpochStart, Net, NetSetup, NetStep, NetworkMethod, PassBatch, Recipe, StepLoss, TrainImages,
};
use crate::augment::ViewKey;
use crate::distributed::ddp::GradSync;
use crate::distributed::ProcessGroup;
use crate::method::eval::methods::ssr::{knn_votes, normalize, relabel, select, selection_metrics};
use crate::model::precision::upload_slice;
use crate::model::projector::{init_linears_normal, torch_linear};
use crate::optim::{OptimSettings, Optimizer, OptimizerKind};
use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use rand_distr::{Beta, Distribution};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tch::nn::{self, Module, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// Images through the network at once when selecting.
const CHUNK: i64 = 1024;
/// `view` tags of the method's keyed draws.
const SAMPLER_VIEW: u64 = 0x5353_5200;
const MIX_VIEW: u64 = 0x5353_5201;
const CONSISTENCY_ORDER: u64 = 0x5353_5202;
/// The selection pass's weak view; its chunks are keyed apart from the training steps.
const SELECTION_VIEW: u64 = 5;
const SELECTION_STEPS: u64 = 1 << 62;
const STRONG_A: u64 = 1;
const STRONG_B: u64 = 2;
/// The consistency batch's weak and strong views.
const CONSISTENCY_VIEWS: [(Recipe, u64); 2] = [(Recipe::Train, 3), (Recipe::AutoAugment, 4)];

/// The epoch's labels (noisy, or relabelled) and selection (`[N]`, 1 where selected).
pub struct Selection {
    pub labels: Tensor,
    pub selected: Tensor,
}

/// The thresholds and neighbours of [`select_samples`].
#[derive(Clone, Copy, Debug)]
pub struct SelectionRule {
    pub k: i64,
    pub theta_r: f64,
    pub theta_s: f64,
    /// Divide the votes by the class prior of the current labels.
    pub balance_votes: bool,
}

/// SSR's relabelling and kNN selection of features `[N, D]` (any scale), classifier
/// probabilities `[N, K]` and noisy labels `[N]`.
pub fn select_samples(
    features: &Tensor,
    probs: &Tensor,
    noisy: &Tensor,
    rule: SelectionRule,
) -> Selection {
    let classes = probs.size()[1];
    let labels = relabel(probs, noisy, rule.theta_r);
    let votes = knn_votes(&normalize(features), &labels, classes, rule.k) / rule.k as f64;
    let votes = if rule.balance_votes {
        let counts = Tensor::zeros([classes], (Kind::Float, labels.device())).index_add(
            0,
            &labels,
            &Tensor::ones(labels.size(), (Kind::Float, labels.device())),
        ) + 1e-10;
        let prior = &counts / counts.sum(Kind::Float);
        votes / prior.unsqueeze(0)
    } else {
        votes
    };
    let votes = &votes / votes.sum_dim_intlist(1, true, Kind::Float);
    let selected = select(&votes, &labels, rule.theta_s);
    Selection { labels, selected }
}

/// `len` ids of the selected samples, class-balanced as the reference's sampler: every class
/// among `labels` of the `selected` ids fills as many slots as the largest one (its ids cycled,
/// each cycle shuffled), and passes over that pool, each shuffled, follow one another.
pub fn balanced_ids(selected: &[i64], labels: &[i64], len: usize, key: ViewKey) -> Vec<i64> {
    let mut rng = key.rng();
    let mut by_class: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for &id in selected {
        by_class.entry(labels[id as usize]).or_default().push(id);
    }
    let most = by_class.values().map(Vec::len).max().unwrap_or(0);
    let mut pool = Vec::new();
    for ids in by_class.values() {
        let mut filled = Vec::with_capacity(most + ids.len());
        while filled.len() < most {
            let mut cycle = ids.clone();
            cycle.shuffle(&mut rng);
            filled.extend(cycle);
        }
        filled.truncate(most);
        pool.extend(filled);
    }
    let mut out = Vec::with_capacity(len + pool.len());
    while out.len() < len && !pool.is_empty() {
        pool.shuffle(&mut rng);
        out.extend_from_slice(&pool);
    }
    out.truncate(len);
    out
}

/// Linear → BatchNorm1d → ReLU → Linear, as the reference's `proj_head` and `pred_head`.
struct Mlp {
    first: nn::Linear,
    norm: nn::BatchNorm,
    last: nn::Linear,
}

impl Mlp {
    fn new(p: nn::Path, c_in: i64, widths: HeadWidths) -> Mlp {
        Mlp {
            first: torch_linear(&p / 0, c_in, widths.hidden, true),
            norm: nn::batch_norm1d(&p / 1, widths.hidden, Default::default()),
            last: torch_linear(&p / 3, widths.hidden, widths.out, true),
        }
    }

    /// Training mode: batch statistics of `x` (the whole global batch on every rank).
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.norm.forward_t(&self.first.forward(x), true).relu();
        self.last.forward(&h)
    }
}

/// The projector's and predictor's hidden and output widths (the reference's CIFAR 256 and
/// 128; WebVision 256 and 256; Clothing1M 512 and 512).
#[derive(Clone, Copy, Debug)]
pub struct HeadWidths {
    pub hidden: i64,
    pub out: i64,
}

/// The feature-consistency term's projector `f` and predictor `h`, with their optimizer.
pub struct ConsistencyHeads {
    vs: VarStore,
    projector: Mlp,
    predictor: Mlp,
    opt: Box<dyn Optimizer>,
    sync: GradSync,
}

impl ConsistencyHeads {
    /// Heads over `embedding_dim` features, stepped by SGD (momentum 0.9) with `weight_decay`.
    pub fn new(
        device: Device,
        embedding_dim: i64,
        widths: HeadWidths,
        weight_decay: f64,
    ) -> Result<ConsistencyHeads> {
        let vs = VarStore::new(device);
        let projector = Mlp::new(vs.root() / "projector", embedding_dim, widths);
        let predictor = Mlp::new(vs.root() / "predictor", widths.out, widths);
        let opt = OptimizerKind::Sgd.build_with(&vs, &OptimSettings::new(weight_decay))?;
        let sync = GradSync::new(&vs, 25.0);
        Ok(ConsistencyHeads {
            vs,
            projector,
            predictor,
            opt,
            sync,
        })
    }

    /// The variables (for tests: to load the same weights as a reference).
    pub fn var_store(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    /// SimSiam's `D(p₂, z₁) = −cos(h(f(strong)), sg(f(weak)))`, mean over the rows.
    pub fn loss(&self, weak: &Tensor, strong: &Tensor) -> Tensor {
        let z1 = self.projector.forward(weak).detach();
        let p2 = self.predictor.forward(&self.projector.forward(strong));
        Tensor::cosine_similarity(&p2, &z1, 1, 1e-8)
            .mean(None)
            .neg()
    }

    /// See [`GradSync::arm`].
    fn arm(&self, group: &ProcessGroup) -> Result<()> {
        Ok(self.sync.arm(group)?)
    }

    fn step(&mut self, group: &ProcessGroup, lr: f64) -> Result<()> {
        self.sync.average(group)?;
        self.opt.step(lr);
        self.opt.zero_grad();
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let vars = self.vs.variables().into_iter();
        let vars = vars.map(|(n, t)| (format!("heads.{n}"), t.detach().copy()));
        let optim = self.opt.state().into_iter();
        vars.chain(optim.map(|(n, t)| (format!("optim.{n}"), t)))
            .collect()
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        let mut vars = self.vs.variables();
        let mut optim = Vec::new();
        for (name, t) in state {
            if let Some(n) = name.strip_prefix("optim.") {
                optim.push((n.to_string(), t.to_device(self.vs.device())));
            } else if let Some(var) = name.strip_prefix("heads.").and_then(|n| vars.get_mut(n)) {
                ensure!(var.size() == t.size(), "SSR {name}: shape {:?}", t.size());
                tch::no_grad(|| var.copy_(&t));
            } else {
                anyhow::bail!("unexpected SSR state {name}");
            }
        }
        self.opt.load_state(optim)
    }
}

/// A step's random draws: mixup's λ and its partners over the 2B strong views, and the
/// consistency batch's sample ids.
pub struct StepDraws {
    pub lambda: f64,
    pub partners: Vec<i64>,
    pub consistency_ids: Vec<i64>,
}

pub struct NetworkSsr {
    noisy: Tensor,
    clean: Tensor,
    /// Every training image, for the selection and the consistency batches.
    images: TrainImages,
    classes: i64,
    rule: SelectionRule,
    consistency: f64,
    mixup_alpha: f64,
    seed: u64,
    selection: Selection,
    /// The epoch's subset (`--epoch-samples`), which the selection and the consistency batches
    /// draw from; None: every sample.
    pool: Option<Vec<i64>>,
    heads: ConsistencyHeads,
    /// The last consistency order drawn, by its key: a shuffle of every sample, the same for
    /// every step of an epoch (and asked for twice a step, by the step and by the prefetch).
    consistency_order: Mutex<Option<(ViewKey, Arc<Vec<i64>>)>>,
}

impl NetworkSsr {
    pub fn new(setup: NetSetup) -> Result<NetworkSsr> {
        let p = setup.params;
        let long = |v: &[usize]| {
            Tensor::from_slice(&v.iter().map(|&x| x as i64).collect::<Vec<_>>())
                .to_device(setup.device)
        };
        let n = setup.noisy.len() as i64;
        let noisy = long(setup.noisy);
        let widths = HeadWidths {
            hidden: p.ssr_hidden,
            out: p.ssr_projection,
        };
        let wd = setup.optim.weight_decay;
        let mut heads = ConsistencyHeads::new(setup.device, setup.embedding_dim, widths, wd)?;
        if let Some(std) = p.linear_init_std {
            init_linears_normal(heads.var_store(), std);
        }
        Ok(NetworkSsr {
            selection: Selection {
                labels: noisy.copy(),
                selected: Tensor::ones([n], (Kind::Int64, setup.device)),
            },
            clean: long(setup.clean),
            noisy,
            images: setup.images.clone(),
            classes: setup.classes,
            rule: SelectionRule {
                k: p.ssr_k as i64,
                theta_r: p.theta_r,
                theta_s: p.theta_s,
                balance_votes: p.ssr_balance_votes,
            },
            consistency: p.ssr_consistency,
            mixup_alpha: p.ssr_mixup_alpha,
            seed: setup.seed,
            pool: None,
            heads,
            consistency_order: Mutex::new(None),
        })
    }

    /// The projector and predictor (for tests).
    pub fn heads(&mut self) -> &mut ConsistencyHeads {
        &mut self.heads
    }

    /// The epoch's labels and selection.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The draws of a step, from its key (the same on every rank).
    pub fn draws(&self, step: &NetStep) -> Result<StepDraws> {
        let b = step.global_n();
        let mut rng = step.key.with_view(MIX_VIEW).rng();
        let lambda = Beta::new(self.mixup_alpha, self.mixup_alpha)?.sample(&mut rng);
        let mut partners: Vec<i64> = (0..2 * b).collect();
        partners.shuffle(&mut rng);
        Ok(StepDraws {
            lambda: lambda.max(1.0 - lambda),
            partners,
            consistency_ids: self.consistency_ids(step.key, b as usize),
        })
    }

    /// The consistency batch of step `key`: the next `b` of the epoch's permutation of the
    /// pool (the reference's `all_loader`), wrapping around.
    fn consistency_ids(&self, key: ViewKey, b: usize) -> Vec<i64> {
        let order_key = ViewKey {
            step: u64::MAX,
            ..key.with_view(CONSISTENCY_ORDER)
        };
        let all = self.consistency_order(order_key);
        let from = (key.step as usize * b) % all.len();
        all.iter().cycle().skip(from).take(b).copied().collect()
    }

    /// The permutation of the pool under `order_key`, shuffled once per key (the pool is
    /// the epoch's, and the key names the epoch).
    fn consistency_order(&self, order_key: ViewKey) -> Arc<Vec<i64>> {
        let mut last = self
            .consistency_order
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((key, all)) if *key == order_key => all.clone(),
            _ => {
                let mut all: Vec<i64> = match &self.pool {
                    Some(pool) => pool.to_vec(),
                    None => (0..self.images.len()).collect(),
                };
                all.shuffle(&mut order_key.rng());
                let all = Arc::new(all);
                *last = Some((order_key, all.clone()));
                all
            }
        }
    }

    /// The step's loss for given draws, its views made from the step's key.
    pub fn loss_with(&self, step: &NetStep, draws: &StepDraws) -> Result<StepLoss> {
        let strong = Tensor::cat(
            &[
                step.global_view(Recipe::AutoAugment, STRONG_A)?,
                step.global_view(Recipe::AutoAugment, STRONG_B)?,
            ],
            0,
        );
        let (weak_c, strong_c) = if self.consistency > 0.0 {
            self.consistency_views(step, &draws.consistency_ids)?
        } else {
            (Tensor::new(), Tensor::new())
        };
        let batch = SsrBatch {
            strong,
            labels: self.selection.labels.index_select(0, step.ids),
            weak_c,
            strong_c,
        };
        let rows = Rows {
            group: step.group,
            start: step.start,
            len: step.len,
        };
        let weights = LossWeights {
            classes: self.classes,
            consistency: self.consistency,
        };
        ssr_loss(step.net, &rows, &batch, draws, &self.heads, weights)
    }

    /// This rank's rows of the consistency batch's weak (training recipe) and strong
    /// (AutoAugment) views.
    fn consistency_views(&self, step: &NetStep, ids: &[i64]) -> Result<(Tensor, Tensor)> {
        let on_device = upload_slice(ids, step.ids.device());
        let rows = (step.start, step.len);
        let images = (self.images).step((ids, &on_device), rows, step.key, &CONSISTENCY_VIEWS)?;
        let view = |(recipe, view): (Recipe, u64)| {
            let at = ViewAt {
                views: step.views,
                recipe,
                view,
                key: step.key,
                global_n: step.global_n(),
            };
            images.local_view(at, rows)
        };
        Ok((view(CONSISTENCY_VIEWS[0])?, view(CONSISTENCY_VIEWS[1])?))
    }
}

/// A step's views (normalized): the two strong views `[x₁; x₂]` (`[2B, …]`) of the global
/// batch, its current labels `[B]`, and this rank's rows of the consistency batch's weak and
/// strong views (empty without the consistency term).
pub struct SsrBatch {
    pub strong: Tensor,
    pub labels: Tensor,
    pub weak_c: Tensor,
    pub strong_c: Tensor,
}

/// The run's group and this rank's rows `start..start + len` of the global batch.
pub struct Rows<'a> {
    pub group: &'a ProcessGroup,
    pub start: i64,
    pub len: i64,
}

#[derive(Clone, Copy)]
pub struct LossWeights {
    pub classes: i64,
    /// `--ssr-consistency`.
    pub consistency: f64,
}

/// SSR's step loss, the same on every rank: cross-entropy of mixup of the strong views with
/// their partners (each rank forwarding its rows of both halves), plus the weighted feature
/// consistency of the consistency views (each forwarded alone, as the reference); and the
/// mixed logits of the batch's first views `[B, K]`.
pub fn ssr_loss(
    net: Net,
    rows: &Rows,
    batch: &SsrBatch,
    draws: &StepDraws,
    heads: &ConsistencyHeads,
    weights: LossWeights,
) -> Result<StepLoss> {
    let (ce, logits) = mixup_ce(net, rows, batch, draws, weights.classes)?;
    if weights.consistency == 0.0 {
        return Ok(StepLoss { loss: ce, logits });
    }
    let features = |x: &Tensor| -> Result<Tensor> {
        Ok(rows
            .group
            .all_gather_with_grad(&net.features(x, true, rows.group)?)?)
    };
    let weak = features(&batch.weak_c)?;
    let strong = features(&batch.strong_c)?;
    let fc = heads.loss(&weak, &strong);
    Ok(StepLoss {
        loss: ce + fc * weights.consistency,
        logits,
    })
}

fn mixup_ce(
    net: Net,
    rows: &Rows,
    batch: &SsrBatch,
    draws: &StepDraws,
    classes: i64,
) -> Result<(Tensor, Tensor)> {
    let b = batch.labels.size()[0];
    let device = batch.strong.device();
    let target = batch
        .labels
        .one_hot(classes)
        .to_kind(Kind::Float)
        .repeat([2, 1]);
    let partners = Tensor::from_slice(&draws.partners).to_device(device);
    let lambda = draws.lambda;
    let mix = |t: &Tensor| t * lambda + t.index_select(0, &partners) * (1.0 - lambda);
    let (x, target) = (mix(&batch.strong), mix(&target));
    let (start, len) = (rows.start, rows.len);
    let local = |s: i64| Tensor::arange_start(s, s + len, (Kind::Int64, device));
    let mine = Tensor::cat(&[local(start), local(b + start)], 0);
    let logits = net.logits(&x.index_select(0, &mine), true, rows.group)?;
    let gathered = rows.group.all_gather_with_grad(&logits)?;
    // The gathered rows come rank by rank, each rank's share of both halves.
    let world = b / len;
    let order: Vec<Tensor> = (0..world)
        .map(|r| Tensor::cat(&[local(r * len), local(b + r * len)], 0))
        .collect();
    let target = target.index_select(0, &Tensor::cat(&order, 0));
    let ce = (gathered.log_softmax(1, Kind::Float) * &target)
        .sum_dim_intlist(1, false, Kind::Float)
        .mean(None)
        .neg();
    let first: Vec<Tensor> = (0..world)
        .map(|r| gathered.narrow(0, 2 * r * len, len))
        .collect();
    Ok((ce, Tensor::cat(&first, 0).detach()))
}

impl NetworkSsr {
    /// The features and classifier probabilities (eval mode) of the weak view of `pool`, in
    /// chunks, each keyed by the epoch and its place; a streamed chunk is cut while the one
    /// before it goes through the network.
    fn weak_predictions(&self, start: &EpochStart, pool: &[i64]) -> Result<(Tensor, Tensor)> {
        let chunks: Vec<&[i64]> = pool.chunks(CHUNK as usize).collect();
        let batch = |i: usize| PassBatch {
            ids: chunks[i],
            key: ViewKey {
                seed: self.seed,
                epoch: start.epoch as u64,
                step: SELECTION_STEPS + i as u64,
                rank: 0,
                view: 0,
            },
        };
        let (mut features, mut probs) = (Vec::new(), Vec::new());
        for i in 0..chunks.len() {
            let next = (i + 1 < chunks.len()).then(|| batch(i + 1));
            let weak = (Recipe::Train, SELECTION_VIEW);
            let x = (start.images).pass(batch(i), next, weak, start.views)?;
            let (f, p) = tch::no_grad(|| -> Result<(Tensor, Tensor)> {
                let f = start.net.features(&x, false, start.group)?;
                let p = start.net.classify(&f, start.group)?.softmax(1, Kind::Float);
                Ok((f, p))
            })?;
            features.push(f);
            probs.push(p);
        }
        Ok((Tensor::cat(&features, 0), Tensor::cat(&probs, 0)))
    }
}

impl NetworkMethod for NetworkSsr {
    fn start_epoch(&mut self, start: &EpochStart) -> Result<()> {
        let pool: Vec<i64> = match start.subset {
            Some(ids) => ids.to_vec(),
            None => (0..start.images.len()).collect(),
        };
        let (features, probs) = self.weak_predictions(start, &pool)?;
        let ids = Tensor::from_slice(&pool).to_device(self.noisy.device());
        let rule = SelectionRule {
            k: self.rule.k.min(pool.len() as i64),
            ..self.rule
        };
        let chosen = select_samples(&features, &probs, &self.noisy.index_select(0, &ids), rule);
        // Outside the pool: the noisy label, not selected.
        self.selection = Selection {
            labels: self.noisy.index_copy(0, &ids, &chosen.labels),
            selected: self
                .noisy
                .zeros_like()
                .index_copy(0, &ids, &chosen.selected),
        };
        self.pool = start.subset.map(|_| pool);
        *self
            .consistency_order
            .get_mut()
            .unwrap_or_else(|e| e.into_inner()) = None;
        let m = self.epoch_metrics();
        log::info!(
            "SSR epoch {}: {} selected (precision {:.3}, recall {:.3}), {} relabelled",
            start.epoch,
            m["ssr_selected"],
            m["ssr_precision"],
            m["ssr_recall"],
            m["ssr_relabelled"]
        );
        Ok(())
    }

    fn samples_epochs(&self) -> bool {
        true
    }

    fn epoch_ids(&self, epoch: usize, len: usize) -> Option<Vec<i64>> {
        let on_cpu = |t: &Tensor| Vec::<i64>::try_from(&t.to_device(Device::Cpu)).ok();
        let labels = on_cpu(&self.selection.labels)?;
        let selected = on_cpu(&self.selection.selected.nonzero().view([-1]))?;
        if selected.is_empty() {
            log::warn!("SSR selected no sample: epoch {epoch} trains on all of them");
            return None;
        }
        let key = ViewKey {
            seed: self.seed,
            epoch: epoch as u64,
            step: u64::MAX,
            rank: 0,
            view: SAMPLER_VIEW,
        };
        Some(balanced_ids(&selected, &labels, len, key))
    }

    fn step_views(&self) -> Vec<(Recipe, u64)> {
        vec![
            (Recipe::AutoAugment, STRONG_A),
            (Recipe::AutoAugment, STRONG_B),
        ]
    }

    fn prefetch(&self, key: ViewKey, global_n: usize, (start, len): (usize, usize)) {
        if self.consistency > 0.0 {
            let ids = self.consistency_ids(key, global_n);
            let local = &ids[start..start + len];
            (self.images).prefetch(local, start as u64, key, &CONSISTENCY_VIEWS);
        }
    }

    fn loss(&mut self, step: &NetStep) -> Result<StepLoss> {
        let draws = self.draws(step)?;
        self.loss_with(step, &draws)
    }

    fn before_backward(&self, group: &ProcessGroup) -> Result<()> {
        self.heads
            .arm(group)
            .context("arming SSR's projector averager")
    }

    fn after_step(&mut self, group: &ProcessGroup, lr: f64) -> Result<()> {
        self.heads.step(group, lr).context("SSR's projector step")
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![
            ("labels".into(), self.selection.labels.copy()),
            ("selected".into(), self.selection.selected.copy()),
        ];
        if let Some(pool) = &self.pool {
            out.push(("pool".into(), Tensor::from_slice(pool)));
        }
        out.extend(self.heads.state());
        out
    }

    fn load_state(&mut self, state: Vec<(String, Tensor)>) -> Result<()> {
        let n = self.noisy.size();
        let mut rest = Vec::new();
        for (name, t) in state {
            if name == "pool" {
                self.pool = Some(Vec::<i64>::try_from(&t.to_kind(Kind::Int64))?);
                continue;
            }
            let slot = match name.as_str() {
                "labels" => &mut self.selection.labels,
                "selected" => &mut self.selection.selected,
                _ => {
                    rest.push((name, t));
                    continue;
                }
            };
            ensure!(t.size() == n, "SSR state {name}: shape {:?}", t.size());
            *slot = t.to_kind(Kind::Int64).to_device(self.noisy.device());
        }
        self.heads.load_state(rest)
    }

    /// Over the pool: with a subset, the samples outside it could not be selected.
    fn epoch_metrics(&self) -> BTreeMap<String, f64> {
        let s = &self.selection;
        let Some(pool) = &self.pool else {
            return selection_metrics(&s.labels, &s.selected, &self.noisy, &self.clean);
        };
        let ids = Tensor::from_slice(pool).to_device(self.noisy.device());
        let of = |t: &Tensor| t.index_select(0, &ids);
        selection_metrics(
            &of(&s.labels),
            &of(&s.selected),
            &of(&self.noisy),
            &of(&self.clean),
        )
    }
}
