//! `--holdout-trusted N`: N clean training images, N/K of each class drawn by the seed, leave
//! the training set and become the trusted set of mwn and ieg, with their true labels (as IEG
//! holds out its balanced clean probe set before training). The remaining images keep the
//! noisy labels they have without the flag (noise is drawn over all kept images first), so a
//! run with and one without a holdout differ only in the trusted set and the held-out images.

use super::labels::NoisyLabels;
use crate::data::SplitData;
use crate::noise::rng::{choose, stream, Stream};
use anyhow::{ensure, Context, Result};
use tch::Tensor;

/// Indices into the kept training images, each ascending.
#[derive(Debug, PartialEq, Eq)]
pub struct HoldoutSplit {
    pub held_out: Vec<usize>,
    pub train: Vec<usize>,
}

/// The held-out trusted images, with their true labels and sample ids.
pub struct HeldOut {
    /// No rows when the split is streamed: `paths` locates the images.
    pub images: Tensor,
    pub paths: Option<Vec<String>>,
    pub labels: Vec<usize>,
    pub ids: Vec<u64>,
}

/// Which of the images with true labels `clean` (classes 0..k) are held out: `n / k` of each
/// class, uniformly, by `seed`. Refuses an `n` that does not divide by `k`, or that would take
/// every image of a class.
pub fn split(clean: &[usize], k: usize, n: usize, seed: u64) -> Result<HoldoutSplit> {
    ensure!(
        n.is_multiple_of(k),
        "--holdout-trusted {n} must be a multiple of the {k} classes (it holds out the same \
         number of each class): use {} or {}",
        n / k * k,
        (n / k + 1) * k
    );
    let per_class = n / k;
    let mut rng = stream(seed, Stream::Holdout);
    let mut held_out = Vec::with_capacity(n);
    for class in 0..k {
        let members: Vec<usize> = (0..clean.len()).filter(|&i| clean[i] == class).collect();
        ensure!(
            per_class < members.len(),
            "--holdout-trusted {n} holds out {per_class} images of each class, but class {class} \
             has only {} training images and needs at least one left to train on: lower it, or \
             use more --train-samples",
            members.len()
        );
        held_out.extend(choose(&mut rng, &members, per_class));
    }
    held_out.sort_unstable();
    let mut is_held = vec![false; clean.len()];
    held_out.iter().for_each(|&i| is_held[i] = true);
    let train = (0..clean.len()).filter(|&i| !is_held[i]).collect();
    Ok(HoldoutSplit { held_out, train })
}

/// Takes the held-out images out of `train` and `labels` (the kept training images and their
/// labels) and returns them; `n == 0` leaves both as they are.
pub fn hold_out(
    train: &mut SplitData,
    labels: &mut NoisyLabels,
    k: usize,
    n: usize,
    seed: u64,
) -> Result<Option<HeldOut>> {
    if n == 0 {
        return Ok(None);
    }
    let parts = split(&labels.clean, k, n, seed)?;
    let images = match train.streamed {
        true => train.images.shallow_clone(),
        false => (train.images_at(&parts.held_out)).context("selecting the held-out images")?,
    };
    let paths = (train.paths.as_ref())
        .map(|paths| parts.held_out.iter().map(|&i| paths[i].clone()).collect());
    let held = HeldOut {
        images,
        paths,
        labels: parts.held_out.iter().map(|&i| labels.clean[i]).collect(),
        ids: parts.held_out.iter().map(|&i| train.ids[i]).collect(),
    };
    train.keep(&parts.train)?;
    labels.keep(&parts.train);
    Ok(Some(held))
}
