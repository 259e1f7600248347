//! The augmentations a whole-network method can ask for, each a batched tensor op keyed by a
//! [`ViewKey`] over a global batch (a rank's rows do not depend on the number of ranks).

use crate::augment::train::{train_view, Geometry, Policy, TrainAugment};
use crate::augment::{
    augment_cut_part, augment_part, normalize, to_unit_float, AugmentConfig, ViewKey,
};
use anyhow::Result;
use tch::Tensor;

/// Which augmentation a view gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipe {
    /// The run's training recipe (`--geometry`, `--policy`; by default resized crop + flip).
    Train,
    /// The run's geometry, then torchvision's AutoAugment (CIFAR-10 policy): SSR's and IEG's
    /// strong view.
    AutoAugment,
    /// SimCLR's views (resized crop, flip, colour jitter, grayscale): the regularizer's
    /// contrastive pair.
    Contrastive,
    /// Normalized only (evaluation).
    Plain,
}

/// The recipes of one run, normalized as the backbone expects.
pub struct Views {
    /// The SSL pipeline's resized crop + flip (the default training view).
    pub crop_flip: AugmentConfig,
    /// The supervised recipe when it is not the default.
    pub train: Option<TrainAugment>,
    /// The supervised recipe with AutoAugment.
    pub autoaugment: TrainAugment,
    /// SimCLR's augmentation.
    pub contrastive: AugmentConfig,
}

impl Views {
    /// Rows `start..start + images.size(0)` of the view `recipe` of a global batch of `global_n`
    /// images (uint8 or float `[0, 1]`, RGB) → normalized float.
    pub fn view(
        &self,
        images: &Tensor,
        recipe: Recipe,
        key: ViewKey,
        global_n: i64,
        start: i64,
    ) -> Result<Tensor> {
        Ok(match (recipe, &self.train) {
            (Recipe::Plain, _) => self.plain(images),
            (Recipe::Train, None) => augment_part(images, &self.crop_flip, key, global_n, start),
            (Recipe::Train, Some(recipe)) => train_view(images, recipe, key, global_n, start)?,
            (Recipe::AutoAugment, _) => {
                train_view(images, &self.autoaugment, key, global_n, start)?
            }
            (Recipe::Contrastive, _) => {
                augment_part(images, &self.contrastive, key, global_n, start)
            }
        })
    }

    /// As [`view`](Self::view) for images a stream has already cut (the recipe's crop and flip
    /// done on the CPU, [`crate::data::stream`]): the rest of the recipe, on the device.
    pub fn after_cut(
        &self,
        cut: &Tensor,
        recipe: Recipe,
        key: ViewKey,
        global_n: i64,
        start: i64,
    ) -> Result<Tensor> {
        Ok(match recipe {
            Recipe::Train | Recipe::Plain => self.plain(cut),
            Recipe::AutoAugment => {
                let policy_only = TrainAugment {
                    geometry: Geometry::None,
                    size: None,
                    ..self.autoaugment.clone()
                };
                train_view(cut, &policy_only, key, global_n, start)?
            }
            Recipe::Contrastive => augment_cut_part(cut, &self.contrastive, key, global_n, start),
        })
    }

    /// Normalized, not augmented.
    pub fn plain(&self, images: &Tensor) -> Tensor {
        normalize(
            &to_unit_float(images),
            self.crop_flip.mean,
            self.crop_flip.std,
        )
    }
}

/// `recipe` with AutoAugment added (the policy replaced).
pub fn with_autoaugment(recipe: &TrainAugment) -> TrainAugment {
    TrainAugment {
        policy: Policy::Autoaugment,
        ..recipe.clone()
    }
}
