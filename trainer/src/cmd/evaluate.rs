//! `trainer evaluate`: a classifier on a (pretrained, or randomly initialized) backbone, trained
//! on noisy labels with a robust loss and tested on the clean test split. Resumable like
//! `pretrain` (same exit codes, `stop.json`); at the end `<exp-dir>/results.json`.

use super::run_args::RunArgs;
use super::stop::{Ending, StopPolicy, EXIT_RESTART};
use super::variant_args::VariantArgs;
use crate::atomic::write_atomic;
use crate::augment::train::{AutoaugmentPolicy, Geometry, Policy};
use crate::cluster::requeue::StopKind;
use crate::cluster::signals;
use crate::data::normalization::Choice as NormalizeChoice;
use crate::data::normalization::Normalization;
use crate::data::{Source, Split, SplitData};
use crate::method::eval::backbone::BackboneSource;
use crate::method::eval::config::{EvalConfig, HeadKind, HeadMode, Weights};
use crate::method::eval::holdout::hold_out;
use crate::method::eval::labels::{noisy_labels, NoisyLabels};
use crate::method::eval::methods::Method;
use crate::method::eval::probe::{Probe, ProbeData};
use crate::method::eval::protocol::Protocol;
use crate::method::eval::run::{EvalOutcome, EvalRun, EvalState};
use crate::method::eval::LossKind;
use crate::model::{Arch, Stem};
use crate::noise::symmetric::Convention;
use crate::noise::Kind as NoiseKind;
use crate::optim::train_schedule::ScheduleKind;
use crate::optim::OptimizerKind;
use crate::run_lock;
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Every option may also come from `--config eval.toml` (same names, `_` for `-`); flags win.
#[serde_with::skip_serializing_none]
#[derive(Args, Debug, Serialize)]
pub struct EvaluateArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunArgs,
    /// A published recipe's defaults (under --config and the flags): seed000 is seed 000's
    /// evaluate.py; none keeps this project's defaults.
    #[arg(long, value_enum)]
    pub protocol: Option<Protocol>,
    /// backbone.safetensors (an export), a pretraining checkpoint, or `none`.
    #[arg(long)]
    pub backbone: Option<String>,
    /// Architecture for `--backbone none`; checked against the backbone otherwise.
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Stem of resnet18/34/50 for `--backbone none` (cifar or imagenet); checked against the
    /// backbone otherwise.
    #[arg(long, value_enum)]
    pub stem: Option<Stem>,
    /// Width (widen factor for wrn) for `--backbone none`; checked against the backbone otherwise.
    #[arg(long)]
    pub width: Option<i64>,
    /// Depth of a wrn (6n + 4) for `--backbone none`; checked against the backbone otherwise.
    #[arg(long)]
    pub depth: Option<i64>,
    /// Noisy labels written by `trainer noise` (otherwise generated from --kind --noise ...).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Kind of generated noise (without --labels).
    #[arg(long, value_enum)]
    pub kind: Option<NoiseKind>,
    /// Generated noise level in [0, 1] (without --labels).
    #[arg(long)]
    pub noise: Option<String>,
    /// Matrix kind: fraction of zero off-diagonal noise rates (without --labels).
    #[arg(long)]
    pub sparsity: Option<String>,
    /// Seed of the generated noise (default: --seed).
    #[arg(long)]
    pub noise_seed: Option<u64>,
    /// Symmetric kind: new label over all classes (any) or the other classes (other).
    #[arg(long, value_enum)]
    pub convention: Option<Convention>,
    #[command(flatten)]
    #[serde(flatten)]
    pub variants: VariantArgs,
    /// Remove N clean training images (N/K per class, seeded) from training; they become the
    /// trusted set of mwn and ieg with their true labels (0: pick it from the training images).
    /// [default: 0]
    #[arg(long)]
    pub holdout_trusted: Option<usize>,
    /// freeze: only the head trains; finetune: the backbone too (with --lr-backbone).
    #[arg(long, value_enum)]
    pub weights: Option<Weights>,
    /// The classifier: seed 000's MLP, or one linear layer.
    #[arg(long, value_enum)]
    pub head: Option<HeadKind>,
    /// Start the linear head at zero (seed 001); `--head-zero-init` alone means true.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub head_zero_init: Option<bool>,
    /// Start every Linear layer of the head (and of ssr's projector and predictor) at weight
    /// N(0, F), bias 0, as SSR's Clothing1M script (0.001); unset, PyTorch's own init, except
    /// that a network trained from scratch (--backbone none) starts its linear classifier as its
    /// architecture's reference does (resnet32: kaiming-normal weights; wrn: zero bias).
    #[arg(long)]
    pub linear_init_std: Option<f64>,
    /// train: dropout and batch statistics; eval: neither, as seed 000's model.eval() under a
    /// frozen backbone.
    #[arg(long, value_enum)]
    pub head_mode: Option<HeadMode>,
    /// Normalization of the images: backbone (what it was pretrained with), dataset, seed000
    /// (CIFAR-10 mean, std 0.2023/0.1994/0.2010) or none.
    #[arg(long, value_enum)]
    pub normalize: Option<NormalizeChoice>,
    /// Training loss of the head.
    #[arg(long, value_enum)]
    pub loss: Option<LossKind>,
    /// ELR: momentum of the per-sample target estimates.
    #[arg(long)]
    pub elr_beta: Option<f64>,
    /// ELR: weight of the regularization term.
    #[arg(long)]
    pub elr_lambda: Option<f64>,
    /// GCE: exponent q in (0, 1].
    #[arg(long)]
    pub gce_q: Option<f64>,
    /// SCE: weight of the cross-entropy term.
    #[arg(long)]
    pub sce_alpha: Option<f64>,
    /// SCE: weight of the reverse cross-entropy term.
    #[arg(long)]
    pub sce_beta: Option<f64>,
    /// A method of the seed papers: mwn (Meta-Weight-Net), ssr, rkd (representation
    /// regularizer), ieg (L2R re-weighting + consistency + pseudo-labels); none: --loss alone.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// Trusted samples per class, with their true labels, for mwn and ieg.
    #[arg(long)]
    pub meta_per_class: Option<usize>,
    /// Adam learning rate of Meta-Weight-Net's weighting network.
    #[arg(long)]
    pub mwn_lr: Option<f64>,
    /// SSR relabelling threshold on the classifier's confidence.
    #[arg(long)]
    pub theta_r: Option<f64>,
    /// SSR selection threshold: label's kNN vote / top vote.
    #[arg(long)]
    pub theta_s: Option<f64>,
    /// SSR kNN neighbours.
    #[arg(long)]
    pub ssr_k: Option<usize>,
    /// Weight of the RKD-distance representation regularizer.
    #[arg(long)]
    pub rkd_weight: Option<f64>,
    /// IEG consistency weight between augmented views.
    #[arg(long)]
    pub ieg_consistency: Option<f64>,
    /// IEG pseudo-label sharpening temperature.
    #[arg(long)]
    pub ieg_temperature: Option<f64>,
    /// Whole-network mwn/ieg: trusted images per meta step (0: the whole trusted set; MW-Net's
    /// paper: 100).
    #[arg(long)]
    pub meta_batch: Option<usize>,
    /// Whole-network mwn/ieg: the look-ahead step's rate (0: the network's current rate, as
    /// MW-Net; seed 001 and IEG use a constant).
    #[arg(long)]
    pub meta_lr: Option<f64>,
    /// Whole-network ieg: the look-ahead step adds this times the live optimizer's momentum
    /// buffer (the reference's meta momentum, 0.9; 0: a plain step).
    #[arg(long)]
    pub meta_momentum: Option<f64>,
    /// Whole-network mwn: the weighting network's optimizer: adam (the paper's, 1e-3 with L2
    /// 1e-4) or sgd (seed 001's, Nesterov).
    #[arg(long, value_enum)]
    pub mwn_optimizer: Option<OptimizerKind>,
    /// Whole-network ssr: weight of the SimSiam-style feature-consistency loss.
    #[arg(long)]
    pub ssr_consistency: Option<f64>,
    /// Whole-network ssr: mixup's Beta(α, α) (the reference's CIFAR 4; Clothing1M and
    /// WebVision 0.5).
    #[arg(long)]
    pub ssr_mixup_alpha: Option<f64>,
    /// Whole-network ssr: the projector's and predictor's hidden width (CIFAR 256, WebVision
    /// 256, Clothing1M 512).
    #[arg(long)]
    pub ssr_hidden: Option<i64>,
    /// Whole-network ssr: the projector's and predictor's output width (CIFAR 128, WebVision
    /// 256, Clothing1M 512).
    #[arg(long)]
    pub ssr_projection: Option<i64>,
    /// Whole-network ssr: divide the kNN vote by the class prior of the current labels (the
    /// reference on CIFAR and WebVision; its Clothing1M script does not).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub ssr_balance_votes: Option<bool>,
    /// Whole-network mwn: divide each batch's weights by their sum, as the reference's
    /// WRN-28-10 script (`train_WRN-28-10_Meta_PGC.py`) does, in the look-ahead and the
    /// training loss; off: the mean of the weighted losses (its `MW-Net.py`, seed 001).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub mwn_normalize: Option<bool>,
    /// Whole-network ieg: weight of the MixUp term.
    #[arg(long)]
    pub ieg_mixup: Option<f64>,
    /// Whole-network ieg: initial weight ε₀ of the noisy label in the mixed label.
    #[arg(long)]
    pub ieg_eps0: Option<f64>,
    /// Whole-network rkd: temperature of the InfoNCE term.
    #[arg(long)]
    pub rkd_temperature: Option<f64>,
    /// Whole-network rkd: weight of the InfoNCE term.
    #[arg(long)]
    pub rkd_infonce: Option<f64>,
    /// Training epochs (fewer with early stopping).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Global batch size over all ranks.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Base learning rate of the head (see --schedule).
    #[arg(long)]
    pub lr_head: Option<f64>,
    /// Learning rate of the backbone (--weights finetune only).
    #[arg(long)]
    pub lr_backbone: Option<f64>,
    /// Weight decay.
    #[arg(long)]
    pub wd: Option<f64>,
    /// Optimizer of head and backbone: sgd, adam (L2 decay), adamw or lars.
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// SGD/LARS momentum.
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Nesterov momentum (sgd); `--nesterov` alone means true.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub nesterov: Option<bool>,
    /// No weight decay on biases and normalization parameters; alone means true.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub no_decay_bn_bias: Option<bool>,
    /// Learning-rate schedule: cosine (to --lr-end × the base), step (× --gamma at each of
    /// --milestones), restarts (cosine with warm restarts) or constant.
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleKind>,
    /// The final rate of cosine and restarts, as a fraction of the base.
    #[arg(long)]
    pub lr_end: Option<f64>,
    /// Linear warm-up from 0 over this many epochs (fractions allowed).
    #[arg(long)]
    pub warmup_epochs: Option<f64>,
    /// Step schedule: epochs where the rate drops, e.g. `--milestones 40,80`.
    #[arg(long, value_delimiter = ',')]
    pub milestones: Option<Vec<f64>>,
    /// Step schedule: the factor at each milestone.
    #[arg(long)]
    pub gamma: Option<f64>,
    /// Restarts: the first cycle's length in epochs.
    #[arg(long)]
    pub restart_epochs: Option<f64>,
    /// Restarts: each cycle's length over the previous one's.
    #[arg(long)]
    pub restart_mult: Option<f64>,
    /// Change the rate only at epoch boundaries (alone means true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub schedule_per_epoch: Option<bool>,
    /// Test with an exponential moving average of the weights with this decay (0: off).
    #[arg(long)]
    pub ema_decay: Option<f64>,
    /// Training-image geometry: resized-crop, crop (pad + RandomCrop), flip or none.
    #[arg(long, value_enum)]
    pub geometry: Option<Geometry>,
    /// Automatic augmentation after the geometry: none, autoaugment (--autoaugment-policy) or
    /// randaugment.
    #[arg(long, value_enum)]
    pub policy: Option<Policy>,
    /// AutoAugment's table: cifar10 or imagenet (torchvision's policies), for --policy
    /// autoaugment and the strong views of ssr and ieg.
    #[arg(long, value_enum)]
    pub autoaugment_policy: Option<AutoaugmentPolicy>,
    /// Zero padding of the crop geometry.
    #[arg(long)]
    pub padding: Option<i64>,
    /// RandAugment: operations per image.
    #[arg(long)]
    pub randaugment_ops: Option<usize>,
    /// RandAugment: magnitude bin (0-30).
    #[arg(long)]
    pub randaugment_magnitude: Option<i64>,
    /// Input mixup with Beta(α, α) (0: off).
    #[arg(long)]
    pub mixup_alpha: Option<f64>,
    /// Early stopping after N epochs without a better top-1 (0: never).
    #[arg(long)]
    pub stopping: Option<usize>,
    /// Seed of the head, the data order and the augmentations.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Augment training images even with a frozen backbone (turns off the feature cache);
    /// `--augment` alone means true.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub augment: Option<bool>,
    /// Image files: resize the shorter side of test images to N before the centre crop of
    /// --image-size (the ImageNet recipes' 256 for 224); unset, --image-size.
    #[arg(long)]
    pub test_resize: Option<usize>,
    /// With --stream: resize the shorter side of training images to N before the crop of
    /// --image-size (DivideMix's Clothing1M: Resize(256) + RandomCrop(224), with --geometry crop
    /// --padding 0); unset, crops are cut from the files' own sizes.
    #[arg(long)]
    pub train_resize: Option<usize>,
    /// Use the first N training images (0: all); a --labels file is cut the same way.
    #[arg(long)]
    pub train_samples: Option<usize>,
    /// Test on the first N test images (0: all).
    #[arg(long)]
    pub test_samples: Option<usize>,
    /// Train each epoch on N images drawn afresh, at most N/K of each noisy class (the
    /// Clothing1M sampler of DivideMix, ELR and SSR: 64000 or 32000); 0: every image.
    #[arg(long)]
    pub epoch_samples: Option<usize>,
}

/// The run's configuration (defaults ← `--config` ← flags), checked without data or devices;
/// `trainer check-args` stops here.
pub fn config(args: &EvaluateArgs) -> Result<EvalConfig> {
    let flags = toml::Table::try_from(args).context("reading the flags")?;
    EvalConfig::resolve(args.run.config.as_deref(), flags)
}

pub fn run(args: EvaluateArgs) -> Result<u8> {
    signals::install()?;
    match evaluate(args) {
        Err(e) if e.downcast_ref::<signals::Interrupted>().is_some() => {
            log::warn!(
                "{e:#}: before training, so there is no checkpoint; exiting with {EXIT_RESTART} \
                 (run the same command again to start over)"
            );
            Ok(EXIT_RESTART)
        }
        other => other,
    }
}

fn evaluate(args: EvaluateArgs) -> Result<u8> {
    let cfg = config(&args)?;
    let source = Source::detect(&cfg.data_dir)?
        .with_images(cfg.image_options())
        .with_shared_dir(cfg.shared_dir.clone())
        .as_dataset(cfg.dataset.as_deref(), &cfg.data_dir)?;
    let backbone = BackboneSource::open(&cfg)?;
    let (mut train, test) = load_splits(&cfg, &source)?;
    let imagenet_test = source.load_also_test()?;
    if let Some((name, split)) = &imagenet_test {
        log::info!("also testing on {name}: {} images", split.len());
    }
    let mut labels = noisy_labels(&cfg, &source, &train)?;
    train.truncate(cfg.train_samples);
    labels.held_out = hold_out(
        &mut train,
        &mut labels,
        source.num_classes,
        cfg.holdout_trusted,
        cfg.seed,
    )?;
    signals::check(|| "preparing the noisy labels".into())?;
    let (env, group) = args.run.dist.join()?;
    anyhow::ensure!(
        cfg.batch_size.is_multiple_of(group.world_size()) && cfg.batch_size <= train.len(),
        "--batch-size {} must divide by the {} ranks and not exceed the {} training images",
        cfg.batch_size,
        group.world_size(),
        train.len()
    );
    // Held until the run ends; nothing is written into the exp-dir before it.
    let _lock = run_lock::acquire_for_group(&cfg.exp_dir, &env, &group)?;
    let policy = StopPolicy::new(&env);
    let classes = source.num_classes as i64;
    let normalization = normalization(&cfg, &backbone, &source, &train)?;
    let streamed_bad = Arc::new(AtomicUsize::new(0));
    let data = ProbeData {
        train: &train,
        test: &test,
        imagenet_test: imagenet_test.as_ref().map(|(_, split)| split),
        labels: &labels,
        classes,
        normalization,
        files: source.files(),
        streamed_bad: streamed_bad.clone(),
    };
    let probe = Probe::new(&cfg, &group, &backbone, data)?;
    let run = EvalRun::new(&cfg, &group, probe)?;
    let facts = RunFacts {
        feature_seconds: run.feature_seconds(),
        epoch_images: run.epoch_images(),
        skipped: [train.skipped, test.skipped],
        imagenet_images: imagenet_test.as_ref().map_or(0, |(_, split)| split.len()),
    };
    if group.rank() == 0 {
        write_atomic(&cfg.exp_dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    }
    let mut kind = StopKind::Preemption;
    let outcome = run.run(|signal, state| kind = policy.count(signal, &mut state.stops))?;
    let results = cfg.exp_dir.join("results.json");
    let ending = match outcome {
        EvalOutcome::Finished(state) => {
            if group.rank() == 0 {
                let r = results_json(
                    &cfg,
                    &backbone.description,
                    &labels,
                    &state,
                    RunFacts {
                        // Streamed files that did not decode are known once they were read.
                        skipped: [
                            facts.skipped[0] + streamed_bad.load(Ordering::Relaxed),
                            facts.skipped[1],
                        ],
                        ..facts
                    },
                )?;
                write_atomic(&results, serde_json::to_string_pretty(&r)?.as_bytes())?;
                log::info!("results in {}", results.display());
            }
            ending(None, state, results)
        }
        EvalOutcome::Stopped {
            signal,
            state,
            checkpoint,
        } => ending(Some((signal, kind)), state, checkpoint),
    };
    policy.conclude(&cfg.exp_dir, cfg.max_timeouts, ending)
}

/// What the images are normalized with: `--normalize` over the backbone's own.
fn normalization(
    cfg: &EvalConfig,
    backbone: &BackboneSource,
    source: &Source,
    train: &SplitData,
) -> Result<Normalization> {
    let channels = train.images.size4()?.1;
    let chosen = cfg.normalize.resolve(
        backbone.normalization,
        source.name,
        channels,
        backbone.weights.is_some(),
    );
    log::info!(
        "normalizing with mean {:?}, std {:?} (--normalize {:?})",
        chosen.mean,
        chosen.std,
        cfg.normalize
    );
    Ok(chosen)
}

fn ending(
    stop: Option<(signals::StopSignal, StopKind)>,
    state: EvalState,
    file: PathBuf,
) -> Ending {
    Ending {
        stop,
        step: state.progress.step as u64,
        epoch: state.epoch as u64,
        counters: state.stops,
        file,
    }
}

/// The whole training split (cut once its labels are known) and the test subset.
fn load_splits(cfg: &EvalConfig, source: &Source) -> Result<(SplitData, SplitData)> {
    let train = match cfg.image_size.filter(|_| cfg.streams()) {
        Some(size) => source.load_streamed(Split::Train, size)?,
        None => source.load(Split::Train)?,
    };
    let mut test = source.load(Split::Test)?;
    test.truncate(cfg.test_samples);
    Ok((train, test))
}

/// What results.json reports of the run besides its state.
#[derive(Clone, Copy)]
struct RunFacts {
    feature_seconds: f64,
    epoch_images: usize,
    /// Image files left out because they do not decode, training then test.
    skipped: [usize; 2],
    /// Images of ImageNet val tested on (mini-WebVision's second test set).
    imagenet_images: usize,
}

fn results_json(
    cfg: &EvalConfig,
    backbone: &str,
    labels: &NoisyLabels,
    state: &EvalState,
    facts: RunFacts,
) -> Result<serde_json::Value> {
    let [train_skipped, test_skipped] = facts.skipped;
    let last = state.history.last().context("no epoch ran")?;
    let mut metrics = json!({
        "acc1": last.acc1,
        "acc5": last.acc5,
        "best_acc1": state.best_acc1,
        "best_acc5": state.best_acc5,
        "best_epoch": state.best_epoch,
        "epochs": state.epoch,
        "stopped_early": state.stopped_early,
        "noisy_predicted_true": last.noisy_predicted_true,
        "train_flip_rate": labels.flip_rate(),
        "train_images": labels.clean.len(),
        "epoch_images": facts.epoch_images,
        "held_out_trusted": labels.held_out.as_ref().map_or(0, |h| h.ids.len()),
        // Image files left out because they do not decode (`--bad-images skip`).
        "skipped_train_images": train_skipped,
        "skipped_test_images": test_skipped,
    });
    if let (Some(top1), Some(top5)) = (last.imagenet_acc1, last.imagenet_acc5) {
        metrics["imagenet_acc1"] = json!(top1);
        metrics["imagenet_acc5"] = json!(top5);
        metrics["imagenet_test_images"] = json!(facts.imagenet_images);
    }
    for (key, value) in &last.method {
        metrics[key] = json!(value);
    }
    Ok(json!({
        "format": "nls-eval-results",
        "version": 1,
        "protocol": cfg.protocol_label(),
        "config": cfg,
        "config_hash": state.config_hash,
        "backbone": backbone,
        "labels": labels.description,
        "held_out_trusted_ids": labels.held_out.as_ref().map(|h| &h.ids),
        "metrics": metrics,
        "feature_cache_seconds": cfg.cached_features().then_some(facts.feature_seconds),
        "peak_rss_bytes": crate::metrics::memory::peak_rss_bytes(),
        "created_by": format!("trainer {}", env!("CARGO_PKG_VERSION")),
        "time": chrono::Utc::now().to_rfc3339(),
    }))
}
