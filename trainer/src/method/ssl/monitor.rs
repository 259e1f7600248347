//! What the pretraining loop reports: loss, learning rate and throughput as JSON lines every
//! `log_every` steps, the kNN accuracy of the backbone on the test split every `knn_every`
//! epochs, and at the end the exported backbone with its card. Rank 0 writes; every rank takes
//! part in averaging the loss.

use super::config::PretrainConfig;
use super::model::SslModel;
use super::state::TrainState;
use super::LossParts;
use crate::augment::AugmentConfig;
use crate::data::{Source, Split, SplitData};
use crate::distributed::{ProcessGroup, ReduceOp};
use crate::method::embed::embed;
use crate::metrics::{knn_accuracy, MetricsLog, Progress};
use anyhow::Result;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

/// Images embedded at once by the kNN monitor.
const EMBED_CHUNK: i64 = 256;

/// Labelled images for the kNN monitor (rank 0 only).
struct KnnData {
    bank: Tensor,
    bank_labels: Tensor,
    test: Tensor,
    test_labels: Tensor,
    classes: i64,
}

pub struct Monitor {
    /// Rank 0: the one that writes.
    main: bool,
    log: Option<MetricsLog>,
    progress: Progress,
    knn: Option<KnnData>,
    knn_k: usize,
    aug: AugmentConfig,
    global_batch: usize,
    exp_dir: PathBuf,
    card: Map<String, Value>,
    interval: Interval,
}

/// Sums over the steps since the last log line.
struct Interval {
    names: Vec<&'static str>,
    sums: Option<Tensor>,
    steps: usize,
    data: Duration,
    busy: Duration,
    since: Instant,
    lr: f64,
}

impl Monitor {
    pub fn new(
        cfg: &PretrainConfig,
        source: &Source,
        group: &ProcessGroup,
        train: &SplitData,
        aug: &AugmentConfig,
    ) -> Result<Monitor> {
        let main = group.rank() == 0;
        let knn = if main && cfg.knn_every > 0 {
            Some(KnnData::load(cfg, source, train, group)?)
        } else {
            None
        };
        let total = cfg.epochs * (train.len() / cfg.batch_size);
        let end_step = if cfg.max_steps > 0 {
            total.min(cfg.max_steps)
        } else {
            total
        };
        Ok(Monitor {
            main,
            log: None,
            progress: Progress::new(end_step, main),
            knn,
            knn_k: cfg.knn_k,
            aug: aug.clone(),
            global_batch: cfg.batch_size,
            exp_dir: cfg.exp_dir.clone(),
            card: card_base(cfg, source, train.len())?,
            interval: Interval::new(),
        })
    }

    /// Opens `metrics.jsonl` (rank 0), cut back to `resume_step` when resuming, and a new
    /// TensorBoard event file.
    pub fn start(&mut self, resume_step: Option<u64>) -> Result<()> {
        if self.main {
            self.log = Some(MetricsLog::open(&self.exp_dir, resume_step)?);
        }
        self.interval = Interval::new();
        Ok(())
    }

    pub fn record_step(&mut self, loss: &LossParts, lr: f64, data: Duration, busy: Duration) {
        let i = &mut self.interval;
        let values: Vec<Tensor> = std::iter::once(loss.total.detach())
            .chain(loss.parts.iter().map(|(_, t)| t.shallow_clone()))
            .map(|t| t.to_kind(Kind::Double).reshape([1]))
            .collect();
        let stacked = Tensor::cat(&values, 0);
        i.sums = Some(match i.sums.take() {
            Some(s) => s + stacked,
            None => stacked,
        });
        if i.names.is_empty() {
            i.names = std::iter::once("loss")
                .chain(loss.parts.iter().map(|(n, _)| *n))
                .collect();
        }
        i.steps += 1;
        i.data += data;
        i.busy += busy;
        i.lr = lr;
    }

    /// Averages the interval's losses over steps and ranks (a collective: every rank calls it
    /// at the same step) and writes one line, with the interval's `grey` samples of a streamed
    /// split summed over ranks (`bad_samples`). Returns the mean total loss.
    pub fn log(
        &mut self,
        state: &TrainState,
        group: &ProcessGroup,
        grey: Option<usize>,
    ) -> Result<f64> {
        let i = std::mem::replace(&mut self.interval, Interval::new());
        let Some(sums) = i.sums else {
            return Ok(f64::NAN);
        };
        let mut mean = (sums / i.steps as f64).to_kind(Kind::Float).contiguous();
        group.all_reduce(&mut mean, ReduceOp::Avg)?;
        let values = Vec::<f64>::try_from(mean.to_kind(Kind::Double).to_device(tch::Device::Cpu))?;
        let elapsed = i.since.elapsed().as_secs_f64();
        let images_per_s = (i.steps * self.global_batch) as f64 / elapsed.max(1e-9);
        let mut record = json!({
            "epoch": state.step as f64 / state.steps_per_epoch as f64,
            "step": state.step,
            "lr": i.lr,
            "images_per_s": images_per_s,
            "data_s": i.data.as_secs_f64(),
            "compute_s": (i.busy - i.data.min(i.busy)).as_secs_f64(),
            "steps": i.steps,
        });
        for (name, v) in i.names.iter().zip(&values) {
            record[*name] = json!(v);
        }
        if let Some(grey) = grey {
            let mut sum = Tensor::from_slice(&[grey as i64]).to_device(group.device());
            group.all_reduce(&mut sum, ReduceOp::Sum)?;
            record["bad_samples"] = json!(sum.int64_value(&[0]));
        }
        self.write(record)?;
        self.progress.update(
            state.step as usize,
            &format!("loss {:.4} · {images_per_s:.0} img/s", values[0]),
        );
        log::info!(
            "step {} epoch {:.2}: loss {:.4}, {images_per_s:.1} images/s",
            state.step,
            state.step as f64 / state.steps_per_epoch as f64,
            values[0]
        );
        Ok(values[0])
    }

    /// kNN accuracy of the backbone on the test split (rank 0; `None` elsewhere).
    pub fn knn(&mut self, model: &SslModel, state: &TrainState) -> Result<Option<f64>> {
        let Some(data) = &self.knn else {
            return Ok(None);
        };
        let started = Instant::now();
        let features = |images: &Tensor| {
            embed(
                &model.backbone,
                images,
                &self.aug,
                images.device(),
                EMBED_CHUNK,
                &mut |_| Ok(()),
            )
        };
        let (bank, test) = (features(&data.bank)?, features(&data.test)?);
        let acc = knn_accuracy(
            &bank,
            &data.bank_labels,
            &test,
            &data.test_labels,
            self.knn_k,
            data.classes,
        );
        log::info!(
            "kNN accuracy at epoch {}: {:.2}% (k={}, {:.1} s)",
            state.epoch,
            acc * 100.0,
            self.knn_k,
            started.elapsed().as_secs_f64()
        );
        self.write(json!({
            "epoch": state.epoch, "step": state.step, "knn_acc1": acc, "knn_k": self.knn_k,
        }))?;
        Ok(Some(acc))
    }

    /// Rank 0 exports `backbone.safetensors` (torchvision names) and `backbone.json`.
    pub fn finish(&mut self, model: &SslModel, state: &TrainState) -> Result<()> {
        self.progress.finish();
        if !self.main {
            return Ok(());
        }
        let mut card = self.card.clone();
        card.insert("steps".into(), state.step.into());
        card.insert("epochs_done".into(), state.epoch.into());
        card.insert("final_loss".into(), json!(state.last_loss));
        card.insert("knn_acc1".into(), json!(state.last_knn));
        card.insert("created".into(), chrono::Utc::now().to_rfc3339().into());
        card.insert("normalization".into(), json!(self.aug.normalization()));
        let path = self.exp_dir.join("backbone.safetensors");
        let tensors = model.backbone_state_dict(state.step as i64);
        crate::checkpoint::export(&path, &tensors, &Value::Object(card))?;
        log::info!("exported the backbone to {}", path.display());
        Ok(())
    }

    fn write(&mut self, record: Value) -> Result<()> {
        match &mut self.log {
            Some(log) => log.write(record),
            None => Ok(()),
        }
    }
}

impl Interval {
    fn new() -> Interval {
        Interval {
            names: Vec::new(),
            sums: None,
            steps: 0,
            data: Duration::ZERO,
            busy: Duration::ZERO,
            since: Instant::now(),
            lr: f64::NAN,
        }
    }
}

impl KnnData {
    fn load(
        cfg: &PretrainConfig,
        source: &Source,
        train: &SplitData,
        group: &ProcessGroup,
    ) -> Result<KnnData> {
        let test = source.load(Split::Test)?;
        let device = group.device();
        let take = |d: &SplitData, n: usize| -> (Tensor, Tensor) {
            let n = if n == 0 { d.len() } else { n.min(d.len()) };
            let images = d.images.narrow(0, 0, n as i64).to_device(device);
            let labels = Tensor::from_slice(&d.labels[..n]).to_device(device);
            (images, labels)
        };
        let (bank, bank_labels) = if train.streamed {
            let n = match cfg.knn_train_samples {
                0 => train.len(),
                n => n.min(train.len()),
            };
            take(&source.load_first(Split::Train, n)?, n)
        } else {
            take(train, cfg.knn_train_samples)
        };
        let (test, test_labels) = take(&test, cfg.knn_test_samples);
        Ok(KnnData {
            bank,
            bank_labels,
            test,
            test_labels,
            classes: source.num_classes as i64,
        })
    }
}

fn card_base(
    cfg: &PretrainConfig,
    source: &Source,
    train_images: usize,
) -> Result<Map<String, Value>> {
    let net = cfg.net()?;
    let mut card = Map::new();
    let format = if net.arch.is_torchvision() {
        "torchvision-resnet-state-dict"
    } else {
        // Names of the reference module the architecture's docs cite.
        "reference-state-dict"
    };
    card.insert("format".into(), format.into());
    card.insert("method".into(), cfg.method.to_string().into());
    card.insert("arch".into(), json!(net.arch));
    card.insert("stem".into(), json!(net.stem));
    card.insert("width".into(), net.width.into());
    if let Some(depth) = net.depth {
        card.insert("depth".into(), depth.into());
    }
    card.insert("embedding_dim".into(), net.embedding_dim().into());
    card.insert(
        "classifier_prefix".into(),
        net.arch.classifier_prefix().into(),
    );
    card.insert("epochs".into(), cfg.epochs.into());
    card.insert("batch_size".into(), cfg.batch_size.into());
    card.insert("seed".into(), cfg.seed.into());
    card.insert("dataset".into(), source.name.as_str().into());
    card.insert("data_dir".into(), json!(cfg.data_dir));
    card.insert("train_images".into(), train_images.into());
    card.insert("config_hash".into(), cfg.hash().unwrap_or_default().into());
    Ok(card)
}
