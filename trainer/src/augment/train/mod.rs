//! Supervised training augmentations as batched tensor ops: the standard CIFAR recipe
//! (RandomCrop with zero padding + flip) or RandomResizedCrop + flip, then torchvision's
//! AutoAugment (CIFAR-10 policy) or RandAugment, then normalize.
//!
//! As for the SSL views, every per-image parameter (crop offsets, flip, op, magnitude, sign) is
//! drawn on the CPU from the stream of a [`ViewKey`] for the whole global batch, and a rank takes
//! its rows, so its images do not depend on the world size.
//!
//! The policy ops run on uint8 "levels" (float tensors holding 0..=255), as torchvision runs
//! them on uint8 tensors (see [`ops`]); a float `[0, 1]` input is rounded to levels first, and a
//! resized crop (bilinear) is rounded as torchvision rounds it for uint8 images.

mod affine;
mod config;
mod ops;
mod params;
mod policy;

pub use affine::*;
pub use config::*;
pub use ops::*;
pub use params::*;
pub use policy::*;

use super::{normalize, resized_crop_flip, ViewKey};
use anyhow::{ensure, Context, Result};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// uint8 or float `[0, 1]` images → levels (float 0..=255 integers).
pub fn to_levels(x: &Tensor) -> Tensor {
    if x.kind() == Kind::Uint8 {
        x.to_kind(Kind::Float)
    } else {
        (x.to_kind(Kind::Float) * 255.0).round().clamp(0.0, 255.0)
    }
}

/// The supervised view of rows `start..start + local.size(0)` of a global batch of `global_n`
/// images (uint8 or float `[0, 1]`, `N×3×H×W`) → normalized float.
pub fn train_view(
    local: &Tensor,
    aug: &TrainAugment,
    key: ViewKey,
    global_n: i64,
    start: i64,
) -> Result<Tensor> {
    let (n, c, h, w) = local
        .size4()
        .context("train_view expects an N×3×H×W batch")?;
    ensure!(c == 3, "train_view expects RGB batches, got {c} channels");
    ensure!(
        start >= 0 && start + n <= global_n,
        "rows {start}..{} are outside the global batch of {global_n}",
        start + n
    );
    aug.validate(h, w)?;
    let params = TrainParams::sample(aug, global_n, h, w, key).rows(start, n);
    Ok(apply_train(local, aug, &params))
}

/// Apply drawn parameters: geometry, policy, normalize.
pub fn apply_train(x: &Tensor, aug: &TrainAugment, params: &TrainParams) -> Tensor {
    let mut y = geometry(&to_levels(x), aug, params);
    for slot in &params.slots {
        y = apply_slot(&y, slot);
    }
    normalize(&(y / 255.0), aug.mean, aug.std)
}

fn flip_mask(params: &TrainParams, x: &Tensor) -> Tensor {
    Tensor::from_slice(&params.flip)
        .to_device(x.device())
        .view([-1, 1, 1, 1])
}

fn geometry(x: &Tensor, aug: &TrainAugment, params: &TrainParams) -> Tensor {
    let (_, _, h, w) = x.size4().expect("N×3×H×W levels");
    let (oh, ow) = aug.output_size(h, w);
    match aug.geometry {
        Geometry::None => x.shallow_clone(),
        Geometry::Flip => x.flip([3]).where_self(&flip_mask(params, x), x),
        Geometry::Crop => {
            let p = aug.padding;
            let padded = x.constant_pad_nd([p, p, p, p]);
            let y = crop_at(&padded, &params.crop, oh, ow);
            y.flip([3]).where_self(&flip_mask(params, x), &y)
        }
        Geometry::ResizedCrop => {
            let crops: Vec<i64> = params.crop.concat();
            let crops = Tensor::from_slice(&crops).view([-1, 4]);
            let flip = Tensor::from_slice(&params.flip);
            resized_crop_flip(x, &crops, &flip, oh).round()
        }
    }
}

/// The `oh × ow` window at `(top, left) = at[n]` of image `n`: two gathers, exact.
pub fn crop_at(x: &Tensor, at: &[Vec<i64>], oh: i64, ow: i64) -> Tensor {
    let (n, c, _, w) = x.size4().expect("N×C×H×W images");
    let device = x.device();
    let column = |k: usize| {
        let v: Vec<i64> = at.iter().map(|a| a[k]).collect();
        Tensor::from_slice(&v).to_device(device)
    };
    let range = |len: i64| Tensor::arange(len, (Kind::Int64, device));
    let rows =
        (column(0).view([n, 1, 1, 1]) + range(oh).view([1, 1, oh, 1])).expand([n, c, oh, w], false);
    let y = x.gather(2, &rows, false);
    let cols = (column(1).view([n, 1, 1, 1]) + range(ow).view([1, 1, 1, ow]))
        .expand([n, c, oh, ow], false);
    y.gather(3, &cols, false)
}

/// One policy place: each op on the images that drew it (gathered, transformed, put back).
pub fn apply_slot(x: &Tensor, slot: &[Chosen]) -> Tensor {
    let mut by_op: BTreeMap<Op, (Vec<i64>, Vec<f64>)> = BTreeMap::new();
    for (i, chosen) in slot.iter().enumerate() {
        if chosen.op != Op::Identity {
            let entry = by_op.entry(chosen.op).or_default();
            entry.0.push(i as i64);
            entry.1.push(chosen.magnitude);
        }
    }
    let mut y = x.shallow_clone();
    for (op, (rows, magnitudes)) in by_op {
        let rows = Tensor::from_slice(&rows).to_device(x.device());
        let part = apply_op(&y.index_select(0, &rows), op, &magnitudes);
        y = y.index_copy(0, &rows, &part);
    }
    y
}
