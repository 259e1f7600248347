//! The small trusted set that Meta-Weight-Net (its meta set) and IEG (its probe set) learn
//! from: `per_class` training samples of each class, with their *true* labels, drawn by the
//! seed. The samples stay in the noisy training set too (with their noisy labels), so every
//! method trains on the same images. With `--holdout-trusted` the trusted set is instead the
//! images held out of training ([`crate::method::eval::holdout`]).

use anyhow::{ensure, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use tch::Tensor;

/// Seed domain, so this draw never repeats another module's.
const DOMAIN: u64 = 0x5452_5553_5445_4421;

/// The held-out trusted images as a method sees them: cached features, true labels, sample ids.
pub struct HeldOutFeatures<'a> {
    pub features: Tensor,
    pub labels: &'a [usize],
    pub ids: &'a [u64],
}

/// Features `[per_class·K, emb]` and true labels of the trusted set.
pub struct Trusted {
    pub features: Tensor,
    pub labels: Tensor,
    pub ids: Vec<usize>,
}

impl Trusted {
    /// The trusted set of a method's setup: the held-out images when there are any, else
    /// `--meta-per-class` training images of each class drawn by the run's seed.
    pub fn for_setup(setup: &super::Setup) -> Result<Trusted> {
        if let Some(held) = &setup.held_out {
            return Ok(Trusted::held_out(held));
        }
        Trusted::pick(
            setup.features,
            setup.clean,
            setup.classes,
            setup.params.meta_per_class,
            setup.seed,
        )
    }

    pub fn pick(
        features: &Tensor,
        clean: &[usize],
        classes: i64,
        per_class: usize,
        seed: u64,
    ) -> Result<Trusted> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ DOMAIN);
        let mut ids = Vec::new();
        for class in 0..classes as usize {
            let mut members: Vec<usize> = (0..clean.len()).filter(|&i| clean[i] == class).collect();
            ensure!(
                members.len() >= per_class,
                "--meta-per-class {per_class}: class {class} has only {} training samples; \
                 lower it or use more --train-samples",
                members.len()
            );
            members.shuffle(&mut rng);
            ids.extend_from_slice(&members[..per_class]);
        }
        let device = features.device();
        let index = Tensor::from_slice(&ids.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let labels: Vec<i64> = ids.iter().map(|&i| clean[i] as i64).collect();
        Ok(Trusted {
            features: features.index_select(0, &index.to_device(device)),
            labels: Tensor::from_slice(&labels).to_device(device),
            ids,
        })
    }

    fn held_out(held: &HeldOutFeatures) -> Trusted {
        let labels: Vec<i64> = held.labels.iter().map(|&y| y as i64).collect();
        Trusted {
            features: held.features.shallow_clone(),
            labels: Tensor::from_slice(&labels).to_device(held.features.device()),
            ids: held.ids.iter().map(|&i| i as usize).collect(),
        }
    }

    /// Cross-entropy of the head at `params` on the whole trusted set (batch statistics).
    pub fn loss(&self, params: &super::functional::HeadParams) -> Tensor {
        super::per_sample_ce(&params.forward(&self.features, None), &self.labels).mean(None)
    }
}
