//! Batched SSL image augmentations on the training device.
//!
//! The pipeline follows solo-learn's CIFAR recipe (RandomResizedCrop → ColorJitter (p) →
//! RandomGrayscale → Solarization (p) → optional GaussianBlur (p) → HorizontalFlip → Normalize), but every op works on a
//! whole `N×3×H×W` batch at once on the batch's device; there is no per-image loop over pixels.
//!
//! Randomness: all per-sample parameters are drawn on the CPU from one Xoshiro256++ stream keyed
//! by [`ViewKey`] (seed, epoch, step, rank, view), so the key alone fixes the output. They are
//! small `[N]`/`[N, k]` tensors ([`Params`]) that move to the device once per batch.
//!
//! Deviations from torchvision, by design:
//! - Crop and flip are one `affine_grid` + `grid_sample` (bilinear, `align_corners = false`,
//!   border padding). Inside the crop this equals torchvision's `resized_crop` (crop, then
//!   `interpolate(bilinear, align_corners=False, antialias=False)`) exactly; on the outermost
//!   half output pixel of an upsampled crop torchvision clamps to the crop's edge pixel while
//!   we blend in the neighbouring image pixel just outside the crop.
//! - Colour jitter applies brightness, contrast, saturation, hue in that fixed order; torchvision
//!   draws a random order per image.

mod blur;
mod color;
mod config;
mod geometry;
mod mixup;
mod params;
pub mod preview;
pub mod train;
mod views;

pub use blur::*;
pub use color::*;
pub use config::*;
pub use geometry::*;
pub use mixup::*;
pub use params::*;
pub use views::*;

use color::select;
use tch::Tensor;

/// Apply a view's parameters: `x` uint8 or float `[0, 1]` `N×3×H×W` → normalized float `N×3×S×S`.
pub fn apply(x: &Tensor, cfg: &AugmentConfig, params: &Params) -> Tensor {
    let p = params.to_device(x.device());
    let y = resized_crop_flip(&to_unit_float(x), &p.crop, &p.flip, cfg.size);
    colour_and_normalize(y, cfg, &p)
}

/// The half of [`apply`] after the crop and flip, on float `[0, 1]` images.
fn colour_and_normalize(mut y: Tensor, cfg: &AugmentConfig, p: &Params) -> Tensor {
    if cfg.jitter_p > 0.0 {
        y = color_jitter(&y, &p.jitter_factors.to_kind(y.kind()), &p.jitter);
    }
    if cfg.gray_p > 0.0 {
        y = select(&p.gray, &grayscale(&y), &y);
    }
    if cfg.solarize_p > 0.0 {
        y = select(&p.solarize, &solarize(&y, 0.5), &y);
    }
    if let Some(sigma) = &p.blur_sigma {
        y = select(&p.blur, &gaussian_blur(&y, sigma, cfg.blur_kernel), &y);
    }
    normalize(&y, cfg.mean, cfg.std)
}

/// One augmented view of `batch`, fully determined by `key`.
pub fn augment(batch: &Tensor, cfg: &AugmentConfig, key: ViewKey) -> Tensor {
    let (n, c, h, w) = batch.size4().expect("N×3×H×W batch");
    assert_eq!(c, 3, "augment expects RGB batches");
    let params = Params::sample(cfg, n, h, w, key);
    apply(batch, cfg, &params)
}

/// The view of rows `start..start + local.size(0)` of a global batch of `global_n` images: the
/// parameters are drawn for the whole global batch, so a rank's part does not depend on how
/// many ranks share the batch.
pub fn augment_part(
    local: &Tensor,
    cfg: &AugmentConfig,
    key: ViewKey,
    global_n: i64,
    start: i64,
) -> Tensor {
    apply(local, cfg, &part_params(local, cfg, key, global_n, start))
}

/// The parameters of `local`'s rows of the global batch.
fn part_params(
    local: &Tensor,
    cfg: &AugmentConfig,
    key: ViewKey,
    global_n: i64,
    start: i64,
) -> Params {
    let (n, c, h, w) = local.size4().expect("N×3×H×W batch");
    assert_eq!(c, 3, "augment expects RGB batches");
    Params::sample(cfg, global_n, h, w, key).rows(start, n)
}

/// As [`augment_part`] for images already cropped, resized and flipped on the CPU
/// ([`crate::data::stream`]): only the colour half of the view and the normalization. uint8
/// `N×3×S×S` in, `S` being the view's size.
pub fn augment_cut_part(
    local: &Tensor,
    cfg: &AugmentConfig,
    key: ViewKey,
    global_n: i64,
    start: i64,
) -> Tensor {
    let side = local.size()[2..].to_vec();
    assert_eq!(side, [cfg.size; 2], "cut views are at the view's size");
    let params = part_params(local, cfg, key, global_n, start).to_device(local.device());
    colour_and_normalize(to_unit_float(local), cfg, &params)
}

/// Two views with `key.view` = 0 and 1 (the `view` field of `key` is ignored).
pub fn two_views(batch: &Tensor, cfg: &AugmentConfig, key: ViewKey) -> (Tensor, Tensor) {
    (
        augment(batch, cfg, key.with_view(0)),
        augment(batch, cfg, key.with_view(1)),
    )
}
