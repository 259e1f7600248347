//! What to augment and how strongly: the per-method recipes (serde, from run.toml).

use crate::data::normalization::Normalization;
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

pub const CIFAR10_MEAN: [f64; 3] = [0.4914, 0.4822, 0.4465];
pub const CIFAR10_STD: [f64; 3] = [0.2470, 0.2435, 0.2616];

/// ColorJitter strengths: factors uniform in `[max(0, 1 − x), 1 + x]`, hue shift in `[−h, h]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    pub hue: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Output side S.
    pub size: i64,
    /// RandomResizedCrop area fraction range.
    pub crop_scale: (f64, f64),
    /// RandomResizedCrop aspect-ratio range (sampled log-uniformly).
    pub crop_ratio: (f64, f64),
    pub jitter: Jitter,
    pub jitter_p: f64,
    pub gray_p: f64,
    pub solarize_p: f64,
    /// Gaussian blur: probability, sigma range (uniform) and odd kernel size (0 off; the CIFAR
    /// recipes have no blur, ImageNet recipes use about 10% of the image side).
    pub blur_p: f64,
    pub blur_sigma: (f64, f64),
    pub blur_kernel: i64,
    pub flip_p: f64,
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self::simclr()
    }
}

impl AugmentConfig {
    /// The normalization this recipe ends with.
    pub fn normalization(&self) -> Normalization {
        Normalization {
            mean: self.mean,
            std: self.std,
        }
    }

    /// solo-learn's SimCLR CIFAR augmentations.
    pub fn simclr() -> Self {
        Self {
            size: 32,
            crop_scale: (0.08, 1.0),
            crop_ratio: (3.0 / 4.0, 4.0 / 3.0),
            jitter: Jitter {
                brightness: 0.8,
                contrast: 0.8,
                saturation: 0.8,
                hue: 0.2,
            },
            jitter_p: 0.8,
            gray_p: 0.2,
            solarize_p: 0.0,
            blur_p: 0.0,
            blur_sigma: (0.1, 2.0),
            blur_kernel: 3,
            flip_p: 0.5,
            mean: CIFAR10_MEAN,
            std: CIFAR10_STD,
        }
    }

    /// solo-learn's VICReg CIFAR augmentations.
    pub fn vicreg() -> Self {
        Self {
            crop_scale: (0.2, 1.0),
            jitter: Jitter {
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.2,
                hue: 0.1,
            },
            solarize_p: 0.1,
            ..Self::simclr()
        }
    }

    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = self.crop_scale;
        ensure!(self.size > 0, "augment size must be positive");
        ensure!(
            0.0 < lo && lo <= hi && hi <= 1.0,
            "crop_scale must satisfy 0 < lo <= hi <= 1"
        );
        let (rlo, rhi) = self.crop_ratio;
        ensure!(
            0.0 < rlo && rlo <= rhi,
            "crop_ratio must satisfy 0 < lo <= hi"
        );
        let j = &self.jitter;
        ensure!(
            j.brightness >= 0.0 && j.contrast >= 0.0 && j.saturation >= 0.0,
            "jitter strengths must be non-negative"
        );
        ensure!(
            (0.0..=0.5).contains(&j.hue),
            "hue jitter must be in [0, 0.5]"
        );
        for (name, p) in [
            ("jitter_p", self.jitter_p),
            ("gray_p", self.gray_p),
            ("solarize_p", self.solarize_p),
            ("blur_p", self.blur_p),
            ("flip_p", self.flip_p),
        ] {
            ensure!((0.0..=1.0).contains(&p), "{name} must be in [0, 1]");
        }
        ensure!(self.std.iter().all(|&s| s > 0.0), "std must be positive");
        let (slo, shi) = self.blur_sigma;
        ensure!(
            0.0 < slo && slo <= shi,
            "blur_sigma must satisfy 0 < lo <= hi"
        );
        ensure!(
            self.blur_kernel % 2 == 1 && self.blur_kernel < self.size,
            "blur_kernel must be odd and smaller than the image size {}",
            self.size
        );
        Ok(())
    }
}
