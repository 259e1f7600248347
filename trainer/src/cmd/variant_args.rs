//! The noise-variant options `trainer noise` and `trainer evaluate` share, under the same names
//! (see [`crate::noise::variants`]). In `evaluate` they serialize into the flags layer like its
//! other options.

use crate::noise::variants::{AsymClasses, Flips, InstanceModel, Variants};
use clap::Args;
use serde::Serialize;

#[serde_with::skip_serializing_none]
#[derive(Args, Debug, Default, Serialize)]
pub struct VariantArgs {
    /// Symmetric and asymmetric kinds: exactly ⌊noise·n⌋ flips (exact) or each sample flipped
    /// independently with probability noise (bernoulli, as IEG and ELR's CIFAR-100 code).
    /// [default: exact]
    #[arg(long, value_enum)]
    pub flips: Option<Flips>,
    /// Asymmetric CIFAR-100: next class within the super-class (superclasses) or within blocks
    /// of 5 consecutive indices (blocks, as ELR and Patrini et al.). [default: superclasses]
    #[arg(long, value_enum)]
    pub asym_classes: Option<AsymClasses>,
    /// Instance kind: Xia et al.'s projection per class (xia) or Cheng et al.'s one shared
    /// projection (cheng). [default: xia]
    #[arg(long, value_enum)]
    pub instance_model: Option<InstanceModel>,
}

impl VariantArgs {
    /// The variants asked for, defaults where not given.
    pub fn variants(&self) -> Variants {
        let d = Variants::default();
        Variants {
            flips: self.flips.unwrap_or(d.flips),
            asym_classes: self.asym_classes.unwrap_or(d.asym_classes),
            instance_model: self.instance_model.unwrap_or(d.instance_model),
        }
    }
}
