//! Per-image parameters of a supervised view, drawn on the CPU for the whole global batch.

use super::config::{Geometry, Policy, TrainAugment, RESIZED_CROP_RATIO, RESIZED_CROP_SCALE};
use super::policy::{sample_autoaugment, sample_randaugment, Chosen, Magnitudes, Side};
use crate::augment::params::unit;
use crate::augment::{sample_crop, ViewKey};
use crate::noise::rng::below;

#[derive(Clone, Debug, PartialEq)]
pub struct TrainParams {
    /// Per image: `crop`: (top, left) in the padded image, `resized-crop`: (top, left, height,
    /// width); empty for the other geometries.
    pub crop: Vec<Vec<i64>>,
    pub flip: Vec<bool>,
    /// `slots[k][n]`: the op image `n` gets in the policy's `k`-th place.
    pub slots: Vec<Vec<Chosen>>,
}

impl TrainParams {
    /// Draw for `n` images of `height × width`; per image, in a fixed order (geometry, flip,
    /// policy).
    pub fn sample(aug: &TrainAugment, n: i64, height: i64, width: i64, key: ViewKey) -> Self {
        let mut rng = key.rng();
        let (oh, ow) = aug.output_size(height, width);
        let side = Side {
            height: oh,
            width: ow,
        };
        let table = match aug.policy {
            Policy::None => None,
            Policy::Autoaugment => Some(Magnitudes::new(10, side)),
            Policy::Randaugment => Some(Magnitudes::new(aug.num_magnitude_bins, side)),
        };
        let mut out = Self {
            crop: Vec::with_capacity(n as usize),
            flip: Vec::with_capacity(n as usize),
            slots: Vec::new(),
        };
        let mut per_image = Vec::with_capacity(n as usize);
        for _ in 0..n {
            out.crop.push(match aug.geometry {
                Geometry::Crop => {
                    let p = aug.padding;
                    let top = below(&mut rng, (height + 2 * p - oh + 1) as usize) as i64;
                    let left = below(&mut rng, (width + 2 * p - ow + 1) as usize) as i64;
                    vec![top, left]
                }
                Geometry::ResizedCrop => sample_crop(
                    &mut rng,
                    height,
                    width,
                    RESIZED_CROP_SCALE,
                    RESIZED_CROP_RATIO,
                )
                .to_vec(),
                Geometry::None | Geometry::Flip => Vec::new(),
            });
            out.flip
                .push(aug.geometry != Geometry::None && unit(&mut rng) < 0.5);
            per_image.push(match (aug.policy, &table) {
                (Policy::Autoaugment, Some(t)) => {
                    sample_autoaugment(&mut rng, aug.autoaugment_policy, t).to_vec()
                }
                (Policy::Randaugment, Some(t)) => {
                    sample_randaugment(&mut rng, t, aug.num_ops, aug.magnitude)
                }
                _ => Vec::new(),
            });
        }
        let slots = per_image.first().map_or(0, Vec::len);
        out.slots = (0..slots)
            .map(|k| per_image.iter().map(|ops| ops[k]).collect())
            .collect();
        out
    }

    /// Images `start..start + len`: one rank's part of parameters drawn for the global batch.
    pub fn rows(&self, start: i64, len: i64) -> Self {
        let r = start as usize..(start + len) as usize;
        Self {
            crop: self.crop[r.clone()].to_vec(),
            flip: self.flip[r.clone()].to_vec(),
            slots: self.slots.iter().map(|s| s[r.clone()].to_vec()).collect(),
        }
    }
}
