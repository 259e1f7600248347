//! The seed papers' variants of the noise kinds, beside our defaults:
//! - [`Flips`]: how many samples a symmetric or asymmetric flip touches — an exact count
//!   (⌊noise·n⌋, chosen uniformly; cleanlab's rule, our default) or an independent coin per
//!   sample with probability noise (IEG's uniform and CIFAR-10 asymmetric noise, ELR's CIFAR-100
//!   asymmetric noise through `multiclass_noisify`).
//! - [`AsymClasses`]: CIFAR-100's asymmetric map — the next class of the true super-class (our
//!   default) or of the block of 5 consecutive indices (ELR, Patrini's `build_for_cifar100`).
//! - [`InstanceModel`]: Xia et al.'s one projection per true class (K×d×K, our default) or
//!   Cheng et al.'s one projection shared by all classes (d×K).
//!
//! Defaults are what `trainer noise` always did, so existing files and results do not change.

use super::rng::NoiseRng;
use super::Kind;
use anyhow::{ensure, Result};
use clap::ValueEnum;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Flips {
    /// Exactly ⌊noise·n⌋ samples, chosen uniformly without replacement.
    #[default]
    Exact,
    /// Each sample independently with probability noise.
    Bernoulli,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AsymClasses {
    /// Next class within the true super-class (coarse label), cyclically.
    #[default]
    Superclasses,
    /// Next class within blocks of 5 consecutive indices, cyclically (ELR, Patrini et al.).
    Blocks,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceModel {
    /// Xia et al. 2020: one d×K projection per true class.
    #[default]
    Xia,
    /// Cheng et al. 2023: one d×K projection shared by all classes.
    Cheng,
}

/// The variant options of one configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Variants {
    pub flips: Flips,
    pub asym_classes: AsymClasses,
    pub instance_model: InstanceModel,
}

impl Variants {
    /// Refuses a variant the kind does not have, naming its flag.
    pub fn check(&self, kind: Kind) -> Result<()> {
        let d = Variants::default();
        ensure!(
            self.flips == d.flips || matches!(kind, Kind::Symmetric | Kind::Asymmetric),
            "--flips {} applies only to --kind symmetric or asymmetric, not {}: drop it",
            self.flips.name(),
            kind.as_str()
        );
        ensure!(
            self.asym_classes == d.asym_classes || kind == Kind::Asymmetric,
            "--asym-classes {} applies only to --kind asymmetric, not {}: drop it",
            self.asym_classes.name(),
            kind.as_str()
        );
        ensure!(
            self.instance_model == d.instance_model || kind == Kind::Instance,
            "--instance-model {} applies only to --kind instance, not {}: drop it",
            self.instance_model.name(),
            kind.as_str()
        );
        Ok(())
    }

    /// The non-default variants as file names spell them: `""`, `"-blocks"`, `"-cheng"`,
    /// `"-blocks-bernoulli"`, ... (defaults add nothing, so existing names stay).
    pub fn name_suffix(&self) -> String {
        let d = Variants::default();
        let mut parts = String::new();
        if self.asym_classes != d.asym_classes {
            parts += &format!("-{}", self.asym_classes.name());
        }
        if self.instance_model != d.instance_model {
            parts += &format!("-{}", self.instance_model.name());
        }
        if self.flips != d.flips {
            parts += &format!("-{}", self.flips.name());
        }
        parts
    }
}

/// The value's command-line spelling.
pub trait Named {
    fn name(&self) -> String;
}

impl<T: ValueEnum> Named for T {
    fn name(&self) -> String {
        self.to_possible_value()
            .expect("no variant is skipped")
            .get_name()
            .to_string()
    }
}

/// The non-default value, for a file's optional field (absent means the default).
pub fn unless_default<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

/// The members of `members` whose label a flip touches: exactly ⌊noise·n⌋ of them chosen
/// uniformly (in random order), or each one with probability `noise` (in index order).
pub fn select(
    rng: &mut NoiseRng,
    members: &[usize],
    noise: super::decimal::Decimal,
    flips: Flips,
) -> Vec<usize> {
    match flips {
        Flips::Exact => super::rng::choose(rng, members, noise.floor_times(members.len())),
        Flips::Bernoulli => {
            let p = noise.to_f64();
            members
                .iter()
                .copied()
                .filter(|_| rng.gen::<f64>() < p)
                .collect()
        }
    }
}
