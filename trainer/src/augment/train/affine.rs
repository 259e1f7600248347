//! Batched affine warps with nearest sampling and zero fill, built as torchvision builds them.

use tch::{Kind, Tensor};

/// torchvision's `_get_inverse_affine_matrix` with scale 1 (angles and shears in degrees;
/// `center` relative to the image centre), the output → input map as a row-major 2×3.
pub fn inverse_affine(
    center: [f64; 2],
    angle: f64,
    translate: [f64; 2],
    shear: [f64; 2],
) -> [f64; 6] {
    let rot = angle.to_radians();
    let (sx, sy) = (shear[0].to_radians(), shear[1].to_radians());
    let [cx, cy] = center;
    let (cx_plus_tx, cy_plus_ty) = (cx + translate[0], cy + translate[1]);
    let (cos_sy, tan_sx) = (sy.cos(), sx.tan());
    let a = (rot - sy).cos() / cos_sy;
    let b = -(a * tan_sx + rot.sin());
    let c = (rot - sy).sin() / cos_sy;
    let d = rot.cos() - c * tan_sx;
    let mut m = [d, -b, 0.0, -c, a, 0.0];
    m[2] += cx - m[0] * cx_plus_tx - m[1] * cy_plus_ty;
    m[5] += cy - m[3] * cx_plus_tx - m[4] * cy_plus_ty;
    m
}

/// Warps image `n` of `x` (levels, `N×C×H×W`) by `thetas[n]` (from [`inverse_affine`]): nearest
/// neighbour, zero outside, as torchvision's `_affine_grid` + `grid_sample` (same float32 grid).
pub fn affine_levels(x: &Tensor, thetas: &[[f64; 6]]) -> Tensor {
    let (n, _, h, w) = x.size4().expect("N×C×H×W levels");
    let device = x.device();
    let flat: Vec<f32> = thetas.iter().flatten().map(|&v| v as f32).collect();
    let theta = Tensor::from_slice(&flat).view([n, 2, 3]).to_device(device);
    let opts = (Kind::Float, device);
    let xs = Tensor::linspace((1.0 - w as f64) * 0.5, (w as f64 - 1.0) * 0.5, w, opts);
    let ys = Tensor::linspace((1.0 - h as f64) * 0.5, (h as f64 - 1.0) * 0.5, h, opts);
    let base = Tensor::stack(
        &[
            xs.view([1, w]).expand([h, w], false),
            ys.view([h, 1]).expand([h, w], false),
            Tensor::ones([h, w], opts),
        ],
        -1,
    )
    .view([1, h * w, 3]);
    let half = Tensor::from_slice(&[0.5 * w as f64, 0.5 * h as f64])
        .to_kind(Kind::Float)
        .to_device(device);
    let rescaled = theta.transpose(1, 2) / half;
    let grid = base
        .expand([n, h * w, 3], false)
        .bmm(&rescaled)
        .view([n, h, w, 2]);
    // interpolation 1 = nearest, padding 0 = zeros.
    x.grid_sampler(&grid, 1, 0, false)
}
