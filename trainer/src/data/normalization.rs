//! The per-channel mean and standard deviation images are normalized with.
//!
//! Normalization belongs to the backbone: a network pretrained on inputs normalized one way
//! sees garbage when evaluated on inputs normalized another way (or not at all). Pretraining
//! writes what it used on the export's card and in its checkpoints; evaluation reads it from
//! there unless `--normalize` says otherwise ([`Choice`]).

use super::DatasetName;
use serde::{Deserialize, Serialize};

/// `x ↦ (x − mean) / std` per channel, on images in `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

/// Fashion-MNIST's pixel mean and standard deviation (training split, in [0, 1]).
pub const FASHION_MNIST_MEAN: f64 = 0.2860;
pub const FASHION_MNIST_STD: f64 = 0.3530;

impl Normalization {
    /// CIFAR-10's training-split statistics (per-pixel standard deviation).
    pub const CIFAR10: Normalization = Normalization {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2470, 0.2435, 0.2616],
    };
    /// CIFAR-100's training-split statistics.
    pub const CIFAR100: Normalization = Normalization {
        mean: [0.5071, 0.4865, 0.4409],
        std: [0.2673, 0.2564, 0.2762],
    };
    /// Fashion-MNIST's, on the gray channel repeated three times.
    pub const FASHION_MNIST: Normalization = Normalization {
        mean: [FASHION_MNIST_MEAN; 3],
        std: [FASHION_MNIST_STD; 3],
    };
    /// torchvision's ImageNet statistics, the convention for natural images of any size.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// Clothing1M's statistics as DivideMix's and SSR's Clothing1M loaders normalize with.
    pub const CLOTHING1M: Normalization = Normalization {
        mean: [0.6959, 0.6537, 0.6371],
        std: [0.3113, 0.3192, 0.3214],
    };
    /// The constants of seed 000's `evaluate.py` (and many CIFAR repositories): CIFAR-10's mean
    /// with (0.2023, 0.1994, 0.2010), the mean of per-image standard deviations rather than the
    /// per-pixel one.
    pub const SEED000: Normalization = Normalization {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2023, 0.1994, 0.2010],
    };
    /// No normalization: the network sees `[0, 1]` (seed 001's SimCLR models were trained so).
    pub const IDENTITY: Normalization = Normalization {
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// The dataset's own statistics.
    pub fn of_dataset(name: DatasetName) -> Normalization {
        match name {
            DatasetName::Cifar10 => Self::CIFAR10,
            DatasetName::Cifar100 => Self::CIFAR100,
            DatasetName::FashionMnist => Self::FASHION_MNIST,
            DatasetName::Clothing1m => Self::CLOTHING1M,
            DatasetName::ImageFolder
            | DatasetName::Animal10n
            | DatasetName::MiniWebvision
            | DatasetName::Webvision
            | DatasetName::Food101n
            | DatasetName::Imagenet32
            | DatasetName::Imagenet64 => Self::IMAGENET,
        }
    }

    /// What pretraining used before backbones carried their normalization: CIFAR-10's for
    /// every colour dataset, Fashion-MNIST's for gray ones. Only for cards that say nothing.
    pub fn legacy(channels: i64) -> Normalization {
        if channels == 1 {
            Self::FASHION_MNIST
        } else {
            Self::CIFAR10
        }
    }
}

/// Where an evaluation takes its normalization from (`--normalize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// The backbone's own (its card or checkpoint); the dataset's for `--backbone none`.
    #[default]
    Backbone,
    /// The dataset's statistics, whatever the backbone was trained with.
    Dataset,
    /// Seed 000's constants ([`Normalization::SEED000`]).
    Seed000,
    /// None: inputs in [0, 1].
    None,
}

impl Choice {
    /// The normalization this choice gives for a backbone that was trained with `backbone`
    /// (None: random initialization, or a card from before cards said) on `dataset`.
    pub fn resolve(
        self,
        backbone: Option<Normalization>,
        dataset: DatasetName,
        channels: i64,
        pretrained: bool,
    ) -> Normalization {
        match self {
            Choice::Backbone => match (backbone, pretrained) {
                (Some(n), _) => n,
                (None, true) => Normalization::legacy(channels),
                (None, false) => Normalization::of_dataset(dataset),
            },
            Choice::Dataset => Normalization::of_dataset(dataset),
            Choice::Seed000 => Normalization::SEED000,
            Choice::None => Normalization::IDENTITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backbone_wins_unless_overridden() {
        let own = Normalization::IDENTITY;
        let fm = DatasetName::FashionMnist;
        assert_eq!(Choice::Backbone.resolve(Some(own), fm, 1, true), own);
        assert_eq!(
            Choice::Dataset.resolve(Some(own), fm, 1, true),
            Normalization::FASHION_MNIST
        );
        // A card from before cards carried it: what pretraining used then.
        assert_eq!(
            Choice::Backbone.resolve(None, DatasetName::Cifar100, 3, true),
            Normalization::CIFAR10
        );
        // Random initialization: the dataset's own.
        assert_eq!(
            Choice::Backbone.resolve(None, DatasetName::Cifar100, 3, false),
            Normalization::CIFAR100
        );
    }
}
