//! The supervised recipe: geometry, then an automatic policy, then normalize (serde + clap).

use crate::augment::{CIFAR10_MEAN, CIFAR10_STD};
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// The geometric part, first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Geometry {
    /// The image as it is.
    None,
    /// Horizontal flip with probability ½.
    Flip,
    /// RandomCrop(size, padding, zero fill) + flip: the standard CIFAR recipe.
    Crop,
    /// RandomResizedCrop(size, scale (0.08, 1), ratio (3/4, 4/3)) + flip: the ImageNet recipe.
    ResizedCrop,
}

/// AutoAugment's table of sub-policies: torchvision's `AutoAugmentPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AutoaugmentPolicy {
    /// `AutoAugmentPolicy.CIFAR10`.
    #[default]
    Cifar10,
    /// `AutoAugmentPolicy.IMAGENET` (SSR's strong view on Clothing1M and WebVision).
    Imagenet,
}

/// The automatic policy, after the geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    None,
    /// torchvision's `AutoAugment` with the table of `autoaugment_policy`.
    Autoaugment,
    /// torchvision's `RandAugment(num_ops, magnitude, num_magnitude_bins)`.
    Randaugment,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainAugment {
    pub geometry: Geometry,
    pub policy: Policy,
    /// AutoAugment's table (CIFAR-10 unless set).
    pub autoaugment_policy: AutoaugmentPolicy,
    /// Output side for `crop` and `resized-crop` (default: the image's own size).
    pub size: Option<i64>,
    /// Zero padding on each side before `crop`.
    pub padding: i64,
    /// RandAugment: ops per image, magnitude bin and number of bins.
    pub num_ops: usize,
    pub magnitude: i64,
    pub num_magnitude_bins: i64,
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Default for TrainAugment {
    fn default() -> Self {
        Self {
            geometry: Geometry::Crop,
            policy: Policy::None,
            autoaugment_policy: AutoaugmentPolicy::Cifar10,
            size: None,
            padding: 4,
            num_ops: 2,
            magnitude: 9,
            num_magnitude_bins: 31,
            mean: CIFAR10_MEAN,
            std: CIFAR10_STD,
        }
    }
}

/// Scale range of the `resized-crop` geometry (torchvision's default).
pub const RESIZED_CROP_SCALE: (f64, f64) = (0.08, 1.0);
pub const RESIZED_CROP_RATIO: (f64, f64) = (3.0 / 4.0, 4.0 / 3.0);

impl TrainAugment {
    /// Output `(height, width)` for `height × width` images.
    pub fn output_size(&self, height: i64, width: i64) -> (i64, i64) {
        match (self.geometry, self.size) {
            (Geometry::Crop | Geometry::ResizedCrop, Some(s)) => (s, s),
            _ => (height, width),
        }
    }

    /// Checks the recipe against `height × width` images.
    pub fn validate(&self, height: i64, width: i64) -> Result<()> {
        ensure!(self.padding >= 0, "augment padding must be >= 0");
        ensure!(
            self.std.iter().all(|&s| s > 0.0),
            "augment std must be positive"
        );
        ensure!(
            self.num_magnitude_bins >= 2 && (0..self.num_magnitude_bins).contains(&self.magnitude),
            "RandAugment magnitude must be a bin in 0..{} (num_magnitude_bins >= 2)",
            self.num_magnitude_bins
        );
        if let Some(s) = self.size {
            ensure!(
                matches!(self.geometry, Geometry::Crop | Geometry::ResizedCrop),
                "augment size applies only to the crop and resized-crop geometries"
            );
            ensure!(s > 0, "augment size must be positive");
        }
        let (oh, ow) = self.output_size(height, width);
        match self.geometry {
            Geometry::Crop => ensure!(
                oh <= height + 2 * self.padding && ow <= width + 2 * self.padding,
                "crop size {oh}×{ow} is larger than the padded {height}×{width} images \
                 (padding {}): lower size or raise padding",
                self.padding
            ),
            Geometry::ResizedCrop => ensure!(
                oh == ow,
                "resized-crop makes square images: set size for {height}×{width} images"
            ),
            Geometry::None | Geometry::Flip => {}
        }
        Ok(())
    }
}
