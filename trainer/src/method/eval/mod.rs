//! Evaluation on noisy labels: a classifier on a backbone, trained with a noise-robust loss.
//!
//! `config` (the run's options) → `backbone` (export, checkpoint or none) → `labels` (noisy
//! training labels, read or generated) → `holdout` (`--holdout-trusted`: clean images out of
//! training, into the trusted set) → `head` (the reference classifier) → `probe` (training
//! steps over the global batch, the feature cache, testing) → `run` (epochs, early stopping,
//! checkpoints, metrics). [`losses`]: CE, ELR, GCE, MAE, SCE; [`methods`]: Meta-Weight-Net, SSR,
//! the representation regularizer and IEG-style re-weighting on top of the head.

pub mod backbone;
pub mod config;
pub mod head;
pub mod holdout;
pub mod labels;
pub mod losses;
pub mod methods;
pub mod probe;
pub mod protocol;
pub mod run;

pub use losses::{LossKind, LossParams, RobustLoss, ELR_TARGETS_KEY};
