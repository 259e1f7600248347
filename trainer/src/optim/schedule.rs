//! The learning rate of every step, as the VICReg reference's `adjust_learning_rate`:
//! peak = base_lr × global_batch / 256; linear warm-up from 0 over `warmup_epochs`, then a
//! half cosine from the peak down to peak × 0.001 at the last step.
//!
//! It depends only on the step number and the run's shape, never on history, so a run resumed
//! from a checkpoint at step s continues with exactly the rates it would have used.

/// Warm-up length of the reference recipe.
pub const DEFAULT_WARMUP_EPOCHS: usize = 10;
/// The final rate as a fraction of the peak.
pub const END_FRACTION: f64 = 0.001;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The rate for a global batch of 256 (`--base-lr`).
    pub base_lr: f64,
    pub global_batch: usize,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub warmup_epochs: usize,
}

impl LrSchedule {
    /// The reference recipe: 10 warm-up epochs.
    pub fn new(base_lr: f64, global_batch: usize, epochs: usize, steps_per_epoch: usize) -> Self {
        LrSchedule {
            base_lr,
            global_batch,
            epochs,
            steps_per_epoch,
            warmup_epochs: DEFAULT_WARMUP_EPOCHS,
        }
    }

    /// The rate reached at the end of warm-up: base_lr scaled linearly with the batch.
    pub fn peak(&self) -> f64 {
        self.base_lr * self.global_batch as f64 / 256.0
    }

    pub fn total_steps(&self) -> usize {
        self.epochs * self.steps_per_epoch
    }

    /// The rate of step `step` (counted from 0 over the whole run); steps past the end keep
    /// the final rate instead of climbing back up the cosine.
    pub fn lr(&self, step: usize) -> f64 {
        let peak = self.peak();
        let total = self.total_steps();
        let warmup = (self.warmup_epochs * self.steps_per_epoch).min(total);
        if step < warmup {
            return peak * step as f64 / warmup as f64;
        }
        let progress = (step.min(total) - warmup) as f64 / (total - warmup).max(1) as f64;
        let q = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        let end = peak * END_FRACTION;
        peak * q + end * (1.0 - q)
    }
}
