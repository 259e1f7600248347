//! Crop, resize and flip as one batched `affine_grid` + `grid_sample`.

use tch::{Kind, Tensor};

/// `[N]` → `[N, 1, 1, 1]`, for per-sample broadcasting.
pub(super) fn per_sample(t: &Tensor) -> Tensor {
    t.view([-1, 1, 1, 1])
}

/// uint8 `[0, 255]` → float `[0, 1]`; float input is taken to be in `[0, 1]` already.
pub fn to_unit_float(x: &Tensor) -> Tensor {
    if x.kind() == Kind::Uint8 {
        x.to_kind(Kind::Float) / 255.0
    } else {
        x.to_kind(Kind::Float)
    }
}

/// Crop `crop[n] = (top, left, height, width)` from each image, resize it to `size × size`
/// (bilinear, `align_corners = false`, no antialias) and mirror it where `flip[n]`; one
/// `affine_grid` + `grid_sample` for the whole batch. `x`: float `N×C×H×W`.
pub fn resized_crop_flip(x: &Tensor, crop: &Tensor, flip: &Tensor, size: i64) -> Tensor {
    let (n, c, h, w) = x.size4().expect("N×C×H×W batch");
    let crop = crop.to_device(x.device()).to_kind(Kind::Float);
    let (top, left) = (crop.select(1, 0), crop.select(1, 1));
    let (ch, cw) = (crop.select(1, 2), crop.select(1, 3));
    // Output pixel u ↦ source pixel left + (u + ½)·cw/S − ½, i.e. in grid_sample's normalized
    // coordinates x_src = (cw/W)·x_out + (2·left + cw)/W − 1.
    let sign = Tensor::ones([n], (Kind::Float, x.device()))
        .where_scalarother(&flip.to_device(x.device()).logical_not(), -1.0);
    let ax = &cw / w as f64 * sign;
    let bx = (&left * 2.0 + &cw) / w as f64 - 1.0;
    let ay = &ch / h as f64;
    let by = (&top * 2.0 + &ch) / h as f64 - 1.0;
    let zero = Tensor::zeros([n], (Kind::Float, x.device()));
    let theta = Tensor::stack(&[ax, zero.shallow_clone(), bx, zero, ay, by], 1).view([n, 2, 3]);
    let grid = Tensor::affine_grid_generator(&theta.to_kind(x.kind()), [n, c, size, size], false);
    // interpolation 0 = bilinear, padding 1 = border.
    x.grid_sampler(&grid, 0, 1, false)
}
