//! Learning-rate schedules for supervised training, each as its `torch.optim.lr_scheduler`
//! counterpart: `cosine` = CosineAnnealingLR (eta_min = lr_end·base), `step` = MultiStepLR,
//! `restarts` = CosineAnnealingWarmRestarts (SGDR), `constant`; optionally after a linear
//! warm-up from 0 (LinearLR + SequentialLR, whose start factor must be > 0: ours is 0, so the
//! first step of a run does not move the weights, as in the VICReg recipe of [`super::schedule`]).
//!
//! The rate is a pure function of the step, so a resumed run recomputes it. Time is counted
//! in steps (`per_epoch = false`) or in whole epochs (`per_epoch = true`: the rate changes at
//! epoch boundaries only, as a scheduler stepped once per epoch); the main schedule starts when
//! the warm-up ends, and milestones are epochs of the whole run.

use anyhow::{bail, ensure};
use serde::{Deserialize, Serialize};

/// The shape of the learning rate after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// Half cosine from the base rate down to `lr_end`·base at the end of the run.
    #[default]
    Cosine,
    /// The base rate times `gamma` for each milestone passed.
    Step,
    /// Cosine cycles of `restart_epochs`, each `restart_mult` times longer than the last.
    Restarts,
    /// The base rate throughout.
    Constant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSchedule {
    pub schedule: ScheduleKind,
    /// The lowest rate as a fraction of the base (cosine: at the end; restarts: of each cycle).
    pub lr_end: f64,
    /// Linear warm-up from 0 to the base rate, in epochs (fractions allowed per step).
    pub warmup_epochs: f64,
    /// Epochs of the run at which `step` multiplies the rate by `gamma`.
    pub milestones: Vec<f64>,
    pub gamma: f64,
    /// Length of the first `restarts` cycle, in epochs.
    pub restart_epochs: f64,
    /// Growth of each `restarts` cycle over the previous one (>= 1).
    pub restart_mult: f64,
    /// Change the rate at epoch boundaries only (a scheduler stepped once per epoch).
    pub per_epoch: bool,
}

impl Default for TrainSchedule {
    fn default() -> Self {
        TrainSchedule {
            schedule: ScheduleKind::Cosine,
            lr_end: 0.0,
            warmup_epochs: 0.0,
            milestones: Vec::new(),
            gamma: 0.1,
            restart_epochs: 10.0,
            restart_mult: 1.0,
            per_epoch: false,
        }
    }
}

impl TrainSchedule {
    /// Checks the schedule against a run of `epochs` epochs; errors name the setting.
    pub fn validate(&self, epochs: usize) -> anyhow::Result<()> {
        ensure!(epochs > 0, "a schedule needs at least one epoch");
        let epochs_f = epochs as f64;
        let w = self.warmup_epochs;
        ensure!(
            w.is_finite() && (0.0..epochs_f).contains(&w),
            "warmup_epochs must be in [0, epochs = {epochs}), got {w}"
        );
        ensure!(
            !self.per_epoch || w.fract() == 0.0,
            "warmup_epochs = {w} is not a whole number of epochs, but per_epoch changes the rate \
             only at epoch boundaries; use a whole number or per_epoch = false"
        );
        ensure!(
            (0.0..=1.0).contains(&self.lr_end),
            "lr_end is a fraction of the base rate, in [0, 1]; got {}",
            self.lr_end
        );
        if self.schedule != ScheduleKind::Step && !self.milestones.is_empty() {
            bail!(
                "milestones apply only to schedule = \"step\" (this one is {:?}); remove them",
                self.schedule
            );
        }
        match self.schedule {
            ScheduleKind::Step => self.validate_steps(epochs_f),
            ScheduleKind::Restarts => self.validate_restarts(),
            ScheduleKind::Cosine | ScheduleKind::Constant => Ok(()),
        }
    }

    fn validate_steps(&self, epochs: f64) -> anyhow::Result<()> {
        ensure!(
            self.gamma > 0.0 && self.gamma <= 1.0,
            "gamma must be in (0, 1], got {}",
            self.gamma
        );
        ensure!(
            !self.milestones.is_empty(),
            "schedule = \"step\" needs milestones (epochs at which the rate drops), e.g. [30, 60]"
        );
        for pair in self.milestones.windows(2) {
            ensure!(
                pair[0] < pair[1],
                "milestones must increase strictly, got {:?}",
                self.milestones
            );
        }
        for &m in &self.milestones {
            ensure!(
                m.is_finite() && m >= self.warmup_epochs && m < epochs,
                "milestone {m} is outside the run after warm-up: each must be in \
                 [warmup_epochs = {}, epochs = {epochs})",
                self.warmup_epochs
            );
        }
        Ok(())
    }

    fn validate_restarts(&self) -> anyhow::Result<()> {
        ensure!(
            self.restart_epochs.is_finite() && self.restart_epochs > 0.0,
            "restart_epochs must be > 0, got {}",
            self.restart_epochs
        );
        ensure!(
            self.restart_mult.is_finite() && self.restart_mult >= 1.0,
            "restart_mult must be >= 1, got {}",
            self.restart_mult
        );
        Ok(())
    }

    /// The rate of step `step` (from 0 over the whole run) for base rate `base`, in a run of
    /// `epochs` epochs of `steps_per_epoch` steps. Assumes [`TrainSchedule::validate`] passed.
    /// Past the end the cosine stays at its end instead of climbing back.
    pub fn lr(&self, base: f64, step: usize, steps_per_epoch: usize, epochs: usize) -> f64 {
        // Positions and lengths in the scheduler's own unit: steps, or whole epochs.
        let (now, unit) = if self.per_epoch {
            ((step / steps_per_epoch) as f64, 1.0)
        } else {
            (step as f64, steps_per_epoch as f64)
        };
        let warmup = self.warmup_epochs * unit;
        if now < warmup {
            return base * now / warmup;
        }
        let since = now - warmup;
        let length = epochs as f64 * unit - warmup;
        let low = base * self.lr_end;
        match self.schedule {
            ScheduleKind::Constant => base,
            ScheduleKind::Cosine => cosine(base, low, since.min(length) / length),
            ScheduleKind::Step => {
                let passed = self.milestones.iter().filter(|m| now >= *m * unit).count();
                base * self.gamma.powi(passed as i32)
            }
            ScheduleKind::Restarts => {
                let (into, cycle) = self.cycle_position(since, self.restart_epochs * unit);
                cosine(base, low, into / cycle)
            }
        }
    }

    /// Where `since` falls in the SGDR cycles (first of length `first`): the position within
    /// its cycle and that cycle's length. Cycle by cycle, as the scheduler steps, which is exact
    /// for whole-step lengths where a logarithm would round at the boundaries.
    fn cycle_position(&self, since: f64, first: f64) -> (f64, f64) {
        if self.restart_mult == 1.0 {
            return (since % first, first);
        }
        let (mut into, mut cycle) = (since, first);
        while into >= cycle {
            into -= cycle;
            cycle *= self.restart_mult;
        }
        (into, cycle)
    }
}

/// Half cosine from `high` (progress 0) to `low` (progress 1).
fn cosine(high: f64, low: f64, progress: f64) -> f64 {
    low + (high - low) * (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0
}
