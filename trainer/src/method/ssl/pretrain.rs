//! The pretraining loop: data order → two augmented views → backbone + projector → global-batch
//! loss → backward → bucketed gradient averaging → optimizer step, with logging, the kNN
//! monitor, checkpoints, and a stop at the next step boundary after SIGUSR1/SIGTERM.
//!
//! Every rank runs the same sequence of collectives: the stop flag is all-reduced after every
//! step (so no rank is left waiting in a collective when the others stop), and the logged loss
//! is averaged at the same steps everywhere. Only rank 0 writes files.

use super::config::PretrainConfig;
use super::model::SslModel;
use super::monitor::Monitor;
use super::state::{self, TrainState};
use super::SslLoss;
use crate::augment::{augment_cut_part, augment_part, AugmentConfig, ViewKey};
use crate::checkpoint::CheckpointDir;
use crate::cluster::signals::StopSignal;
use crate::data::order::EpochOrder;
use crate::data::stream::{Cut, Streamed, BATCHES_AHEAD};
use crate::data::{Source, Split, SplitData};
use crate::distributed::agree::StopPoll;
use crate::distributed::ddp::{broadcast_variables, GradSync};
use crate::distributed::ProcessGroup;
use crate::model::precision::{upload, upload_slice};
use crate::model::{to_rgb, Precision};
use crate::optim::{LrSchedule, Optimizer};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tch::Tensor;

/// Gradient buckets of this many megabytes (PyTorch DDP's default is 25).
const BUCKET_MB: f64 = 25.0;

/// How the loop ended.
pub enum Outcome {
    /// The schedule (or `max_steps`) is done and the backbone exported.
    Finished(TrainState),
    /// A stop signal: the checkpoint of the step reached holds everything needed to continue.
    Stopped {
        signal: StopSignal,
        state: TrainState,
        checkpoint: PathBuf,
    },
}

/// Where the files of a run go.
pub fn checkpoint_dir(cfg: &PretrainConfig) -> CheckpointDir {
    CheckpointDir::new(cfg.exp_dir.join("checkpoints"), cfg.keep_checkpoints)
}

/// Where the training images come from.
enum Images {
    /// On the training device, uint8 N×3×H×W.
    Resident(Tensor),
    /// Read from their files, both views cut on the CPU (`--stream`).
    Streamed(Streamed),
}

pub struct Pretrainer<'a> {
    cfg: &'a PretrainConfig,
    group: &'a ProcessGroup,
    train: SplitData,
    images: Images,
    /// The two views' recipes.
    augs: [AugmentConfig; 2],
    model: SslModel,
    precision: Precision,
    optimizer: Box<dyn Optimizer>,
    schedule: LrSchedule,
    loss: SslLoss,
    grad_sync: GradSync,
    checkpoints: CheckpointDir,
    monitor: Monitor,
    state: TrainState,
    end_step: u64,
}

impl<'a> Pretrainer<'a> {
    /// Loads the data and builds the model. Every check that can fail runs here, before the
    /// first step and before anything is written; [`resume`](Self::resume) comes next.
    pub fn new(cfg: &'a PretrainConfig, source: &Source, group: &'a ProcessGroup) -> Result<Self> {
        let device = group.device();
        let train = load_train(cfg, source)?;
        cfg.check_job(group.world_size(), train.len())?;
        let (_, _, side, _) = train.images.size4()?;
        let augs = cfg.augment_views(side, source.name)?;
        let images = match train.paths.clone().filter(|_| train.streamed) {
            Some(paths) => Images::Streamed(
                Streamed::with_views(
                    source.files(),
                    paths,
                    &augs.each_ref().map(Cut::resized_crop),
                    source.images.bad,
                    Arc::default(),
                )
                .with_decode_scale(cfg.decode_scale.unwrap_or_default())
                .for_device(device),
            ),
            None => Images::Resident(to_rgb(&train.images)?.to_device(device)),
        };
        let model = SslModel::new(cfg, device)?;
        let deterministic = cfg.deterministic.unwrap_or(false);
        let precision =
            Precision::new(device, cfg.memory_format.unwrap_or_default(), deterministic);
        precision.convert(&model.vs);
        log::info!(
            "{} ({} parameters) on {device:?}, {}",
            cfg.net()?,
            crate::model::count_parameters(&model.vs),
            precision.describe()
        );
        let optimizer = cfg.optimizer.build(&model.vs, cfg.wd);
        let steps_per_epoch = (train.len() / cfg.batch_size) as u64;
        let schedule = LrSchedule {
            warmup_epochs: cfg.warmup_epochs,
            ..LrSchedule::new(
                cfg.base_lr,
                cfg.batch_size,
                cfg.epochs,
                steps_per_epoch as usize,
            )
        };
        let total = schedule.total_steps() as u64;
        let end_step = match cfg.max_steps {
            0 => total,
            m => total.min(m as u64),
        };
        let grad_sync = GradSync::new(&model.vs, BUCKET_MB);
        let monitor = Monitor::new(cfg, source, group, &train, &augs[0])?;
        let state = TrainState::fresh(cfg, steps_per_epoch, augs[0].normalization())?;
        Ok(Pretrainer {
            cfg,
            group,
            train,
            images,
            augs,
            model,
            precision,
            optimizer,
            schedule,
            loss: cfg.loss(),
            grad_sync,
            checkpoints: checkpoint_dir(cfg),
            monitor,
            state,
            end_step,
        })
    }

    pub fn state(&self) -> &TrainState {
        &self.state
    }

    /// Continues from the newest valid checkpoint (every rank must find the same one), opens the
    /// metrics log and gives every rank rank 0's weights. The first write into the exp-dir: call
    /// it once the run holds the folder's lock.
    pub fn resume(&mut self) -> Result<()> {
        self.resume_from_checkpoint()?;
        broadcast_variables(self.group, &self.model.vs)?;
        Ok(())
    }

    fn resume_from_checkpoint(&mut self) -> Result<()> {
        let found = self.checkpoints.load_agreed(self.group)?;
        let Some((step, path, ckpt)) = found else {
            self.monitor.start(None)?;
            return Ok(());
        };
        let state = state::restore(ckpt, &self.model.vs, self.optimizer.as_mut())
            .with_context(|| format!("resuming from {}", path.display()))?;
        state
            .check_matches(self.cfg)
            .with_context(|| format!("resuming from {}", path.display()))?;
        log::info!(
            "resuming from {} (step {step}, epoch {})",
            path.display(),
            state.epoch
        );
        self.state = state;
        self.monitor.start(Some(step))?;
        Ok(())
    }

    /// Trains until the end of the schedule or a stop signal. `on_stop` records the stop
    /// (timeout or preemption counters) in the state before it is checkpointed.
    pub fn run(mut self, mut on_stop: impl FnMut(StopSignal, &mut TrainState)) -> Result<Outcome> {
        let spe = self.state.steps_per_epoch;
        let mut order: Option<EpochOrder> = None;
        let mut saved_at = self.state.step;
        let mut stop = StopPoll::default();
        if self.state.step == 0 {
            self.monitor_knn_if_due()?;
        }
        while self.state.step < self.end_step {
            let epoch = self.state.step / spe;
            if order
                .as_ref()
                .is_none_or(|_| self.state.step.is_multiple_of(spe))
            {
                order = Some(self.epoch_order(epoch));
            }
            self.train_step(order.as_ref().expect("set above"), epoch)?;
            let epoch_done = self.state.step.is_multiple_of(spe);
            self.log_if_due(epoch_done)?;
            if epoch_done {
                self.state.epoch = self.state.step / spe;
                self.monitor_knn_if_due()?;
            }
            let every = self.cfg.checkpoint_every as u64;
            if epoch_done || (every > 0 && self.state.step.is_multiple_of(every)) {
                self.save()?;
                saved_at = self.state.step;
            }
            if let Some(signal) = stop.poll(self.group)? {
                on_stop(signal, &mut self.state);
                let checkpoint = self.save()?;
                self.group.barrier()?;
                return Ok(Outcome::Stopped {
                    signal,
                    state: self.state,
                    checkpoint,
                });
            }
        }
        if saved_at != self.state.step {
            self.save()?;
        }
        self.monitor.finish(&self.model, &self.state)?;
        self.group.barrier()?;
        Ok(Outcome::Finished(self.state))
    }

    fn train_step(&mut self, order: &EpochOrder, epoch: u64) -> Result<()> {
        let started = Instant::now();
        let (v1, v2) = self.views(order, epoch)?;
        let data_time = started.elapsed();
        // The network under autocast; the loss outside it, in fp32: NT-Xent's logits and
        // VICReg's covariance are sums over the batch that bf16 would round away.
        let (z1, z2) = self.precision.autocast(|| -> Result<_> {
            let project = |v: &Tensor| self.model.project(&self.precision.layout(v), self.group);
            Ok((project(&v1)?, project(&v2)?))
        })?;
        let loss = self.loss.compute(&z1, &z2, self.group)?;
        self.optimizer.zero_grad();
        // Buckets are averaged while backward still computes the earlier layers.
        self.grad_sync.arm(self.group)?;
        loss.total
            .f_backward()
            .map_err(|e| self.group.failed_during("backward", e))
            .with_context(|| format!("backward at step {}", self.state.step))?;
        self.grad_sync.average(self.group)?;
        let lr = self.schedule.lr(self.state.step as usize);
        self.optimizer.step(lr);
        self.state.step += 1;
        self.monitor
            .record_step(&loss, lr, data_time, started.elapsed());
        Ok(())
    }

    /// This rank's two augmented views for the current step. Streamed, the views are cut from
    /// the files (the next step's are decoded meanwhile) and only coloured on the device.
    fn views(&self, order: &EpochOrder, epoch: u64) -> Result<(Tensor, Tensor)> {
        let (rank, world) = (self.group.rank(), self.group.world_size());
        let step_in_epoch = (self.state.step % self.state.steps_per_epoch) as usize;
        let part = order.slice(step_in_epoch, rank, world);
        let key = view_key(self.cfg.seed, epoch, step_in_epoch);
        let global = self.cfg.batch_size as i64;
        let start = rank * part.len();
        let recipe = |v: usize| (&self.augs[v], key.with_view(v as u64));
        let views = match &self.images {
            Images::Resident(images) => {
                let index = upload_slice(part, images.device());
                let local = images.index_select(0, &index);
                let view = |v| {
                    let (aug, key) = recipe(v);
                    augment_part(&local, aug, key, global, start as i64)
                };
                (view(0), view(1))
            }
            Images::Streamed(files) => {
                let cut = files.views(part, key, start as u64)?;
                let reaches = order.ahead_reaches_next(step_in_epoch, BATCHES_AHEAD);
                let next_order = (reaches && epoch + 1 < self.cfg.epochs as u64)
                    .then(|| self.epoch_order(epoch + 1));
                let ahead = order.steps_ahead(next_order.as_ref(), step_in_epoch, BATCHES_AHEAD);
                for (on, step, order) in ahead {
                    let next = order.slice(step, rank, world);
                    let key = view_key(self.cfg.seed, epoch + on as u64, step);
                    files.prefetch(next, key, start as u64);
                }
                let device = self.group.device();
                let view = |v| {
                    let (aug, key) = recipe(v);
                    let cut = upload(&cut[v], device);
                    augment_cut_part(&cut, aug, key, global, start as i64)
                };
                (view(0), view(1))
            }
        };
        Ok(views)
    }

    fn epoch_order(&self, epoch: u64) -> EpochOrder {
        EpochOrder::new(self.cfg.seed, epoch, self.train.len(), self.cfg.batch_size)
    }

    fn log_if_due(&mut self, epoch_done: bool) -> Result<()> {
        if epoch_done || self.state.step.is_multiple_of(self.cfg.log_every as u64) {
            let grey = match &self.images {
                Images::Streamed(files) => Some(files.take_grey_samples()),
                Images::Resident(_) => None,
            };
            let loss = self.monitor.log(&self.state, self.group, grey)?;
            self.state.last_loss = Some(loss);
        }
        Ok(())
    }

    fn monitor_knn_if_due(&mut self) -> Result<()> {
        let every = self.cfg.knn_every as u64;
        let last = self.state.step >= self.end_step;
        if every > 0 && (self.state.epoch.is_multiple_of(every) || last || self.state.step == 0) {
            if let Some(acc) = self.monitor.knn(&self.model, &self.state)? {
                self.state.last_knn = Some(acc);
            }
        }
        Ok(())
    }

    /// Rank 0 writes the checkpoint of the current step; returns its path on every rank.
    fn save(&self) -> Result<PathBuf> {
        let step = self.state.step;
        if self.group.rank() != 0 {
            return Ok(self.checkpoints.path_for(step));
        }
        let ckpt = state::capture(&self.state, &self.model.vs, self.optimizer.as_ref())?;
        let path = self.checkpoints.save(step, &ckpt)?;
        log::info!("checkpoint {}", path.display());
        Ok(path)
    }
}

/// The key of a step's views (view 0 and 1; the same for the crops cut from files).
fn view_key(seed: u64, epoch: u64, step_in_epoch: usize) -> ViewKey {
    ViewKey {
        seed,
        epoch,
        step: step_in_epoch as u64,
        rank: 0,
        view: 0,
    }
}

/// The training split, cut to `train_samples` when set; streamed, only its files and labels.
fn load_train(cfg: &PretrainConfig, source: &Source) -> Result<SplitData> {
    let mut train = match cfg.image_size.filter(|_| cfg.streams()) {
        Some(size) => source.load_streamed(Split::Train, size)?,
        None => source.load(Split::Train)?,
    };
    train.truncate(cfg.train_samples);
    Ok(train)
}
