//! Colour ops over a batch with per-sample factors, as torchvision computes them.

use super::geometry::per_sample;
use crate::model::precision::upload;
use tch::{Kind, Tensor};

/// ITU-R 601-2 luma, `N×1×H×W`, with torchvision's tensor-path weights (0.2989, 0.587, 0.114;
/// its PIL path and the ITU text use 0.299 for red). Grayscale, contrast and saturation use it.
pub fn luma(x: &Tensor) -> Tensor {
    let (r, g, b) = (x.narrow(1, 0, 1), x.narrow(1, 1, 1), x.narrow(1, 2, 1));
    r * 0.2989 + g * 0.587 + b * 0.114
}

/// torchvision `rgb_to_grayscale(num_output_channels=3)`.
pub fn grayscale(x: &Tensor) -> Tensor {
    luma(x).expand_as(x)
}

/// torchvision's `_blend`: `clamp(f·x + (1 − f)·other, 0, 1)` with per-sample `f` `[N]`.
fn blend(x: &Tensor, other: &Tensor, f: &Tensor) -> Tensor {
    let f = per_sample(f);
    (x * &f + other * (f.ones_like() - &f)).clamp(0.0, 1.0)
}

pub fn adjust_brightness(x: &Tensor, factor: &Tensor) -> Tensor {
    (x * per_sample(factor)).clamp(0.0, 1.0)
}

pub fn adjust_contrast(x: &Tensor, factor: &Tensor) -> Tensor {
    let mean = luma(x).mean_dim(&[-3i64, -2, -1][..], true, Kind::Float);
    blend(x, &mean, factor)
}

pub fn adjust_saturation(x: &Tensor, factor: &Tensor) -> Tensor {
    blend(x, &luma(x), factor)
}

/// torchvision v2's `_rgb_to_hsv`.
fn rgb_to_hsv(x: &Tensor) -> Tensor {
    let (r, g) = (x.select(1, 0), x.select(1, 1));
    let (minc, maxc) = x.aminmax(1, false);
    let eqc = maxc.eq_tensor(&minc);
    let range = &maxc - &minc;
    let ones = maxc.ones_like();
    let s = &range / ones.where_self(&eqc, &maxc);
    let divisor = ones.where_self(&eqc, &range).unsqueeze(1);
    let rgbc = (maxc.unsqueeze(1) - x) / divisor;
    let (rc, gc, bc) = (rgbc.select(1, 0), rgbc.select(1, 1), rgbc.select(1, 2));
    let maxc_neq_r = maxc.ne_tensor(&r);
    let maxc_eq_g = maxc.eq_tensor(&g);
    let hg = (&rc + 2.0 - &bc) * maxc_eq_g.logical_and(&maxc_neq_r);
    let hr = (&bc - &gc) * maxc_neq_r.logical_not();
    let hb = (&gc + 4.0 - &rc) * maxc_neq_r.logical_and(&maxc_eq_g.logical_not());
    let h = ((hr + hg + hb) / 6.0 + 1.0).fmod(1.0);
    Tensor::stack(&[h, s, maxc], 1)
}

/// torchvision v2's `_hsv_to_rgb`.
fn hsv_to_rgb(x: &Tensor) -> Tensor {
    let (h, s, v) = (x.select(1, 0), x.select(1, 1), x.select(1, 2));
    let h6 = &h * 6.0;
    let i = h6.floor();
    let f = &h6 - &i;
    let i = i.to_kind(Kind::Int64).remainder(6);
    let sxf = &s * &f;
    let one_minus_s = s.ones_like() - &s;
    let q = ((sxf.ones_like() - &sxf) * &v).clamp(0.0, 1.0);
    let t = ((&sxf + &one_minus_s) * &v).clamp(0.0, 1.0);
    let p = (&one_minus_s * &v).clamp(0.0, 1.0);
    let vpqt = Tensor::stack(&[v, p, q, t], 1);
    let select = upload(
        &Tensor::from_slice(&[0i64, 2, 1, 1, 3, 0, 3, 0, 0, 2, 1, 1, 1, 1, 3, 0, 0, 2])
            .view([3, 6]),
        x.device(),
    );
    // select[:, i] → [3, N, H, W] → [N, 3, H, W]
    let (n, hh, ww) = (i.size()[0], i.size()[1], i.size()[2]);
    let index = select
        .index_select(1, &i.flatten(0, -1))
        .view([3, n, hh, ww])
        .permute([1, 0, 2, 3]);
    vpqt.gather(1, &index, false)
}

/// torchvision `adjust_hue` with a per-sample shift `[N]` in `[−0.5, 0.5]`.
pub fn adjust_hue(x: &Tensor, shift: &Tensor) -> Tensor {
    let hsv = rgb_to_hsv(x);
    let h = (hsv.select(1, 0) + shift.view([-1, 1, 1])).remainder(1.0);
    let hsv = Tensor::stack(&[h, hsv.select(1, 1), hsv.select(1, 2)], 1);
    hsv_to_rgb(&hsv)
}

/// torchvision `solarize` with `threshold` on `[0, 1]` images.
pub fn solarize(x: &Tensor, threshold: f64) -> Tensor {
    (x.ones_like() - x).where_self(&x.ge(threshold), x)
}

/// `mask[n]` ? `a[n]` : `b[n]`.
pub(super) fn select(mask: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    a.where_self(&per_sample(mask), b)
}

/// Brightness, contrast, saturation, hue (fixed order) with `factors` `[N, 4]`, where `mask`.
pub fn color_jitter(x: &Tensor, factors: &Tensor, mask: &Tensor) -> Tensor {
    let y = adjust_brightness(x, &factors.select(1, 0));
    let y = adjust_contrast(&y, &factors.select(1, 1));
    let y = adjust_saturation(&y, &factors.select(1, 2));
    let y = adjust_hue(&y, &factors.select(1, 3));
    select(mask, &y, x)
}

/// `(x − mean) / std` per channel.
pub fn normalize(x: &Tensor, mean: [f64; 3], std: [f64; 3]) -> Tensor {
    let per_channel = |v: [f64; 3]| {
        upload(&Tensor::from_slice(&v).to_kind(Kind::Float), x.device()).view([1, 3, 1, 1])
    };
    (x - per_channel(mean)) / per_channel(std)
}
