//! AutoAugment / RandAugment image ops over a batch, one magnitude per sample.
//!
//! Images are "levels": float `N×3×H×W` holding the integers 0..=255 of a uint8 image.
//! torchvision runs these ops on uint8 tensors, computing in float32 and casting back (which
//! truncates); every op here does the same float32 arithmetic and then `floor`s (the values are
//! non-negative, so floor = truncation), so a level differs from torchvision's only where a
//! float32 result lands within rounding of an integer (fused or reordered multiply-adds).
//! `magnitude` means what it means in torchvision's `_apply_image_or_video_transform`.

use super::affine::{affine_levels, inverse_affine};
use crate::augment::geometry::per_sample;
use crate::augment::luma;
use tch::{Device, Kind, Tensor};

/// The ops of torchvision's AutoAugment and RandAugment, named as there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
    Invert,
}

impl Op {
    pub const ALL: [Op; 15] = [
        Op::Identity,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateX,
        Op::TranslateY,
        Op::Rotate,
        Op::Brightness,
        Op::Color,
        Op::Contrast,
        Op::Sharpness,
        Op::Posterize,
        Op::Solarize,
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
    ];

    /// torchvision's name (`"ShearX"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Identity => "Identity",
            Op::ShearX => "ShearX",
            Op::ShearY => "ShearY",
            Op::TranslateX => "TranslateX",
            Op::TranslateY => "TranslateY",
            Op::Rotate => "Rotate",
            Op::Brightness => "Brightness",
            Op::Color => "Color",
            Op::Contrast => "Contrast",
            Op::Sharpness => "Sharpness",
            Op::Posterize => "Posterize",
            Op::Solarize => "Solarize",
            Op::AutoContrast => "AutoContrast",
            Op::Equalize => "Equalize",
            Op::Invert => "Invert",
        }
    }

    /// Whether the magnitude gets a random sign.
    pub fn signed(self) -> bool {
        matches!(
            self,
            Op::ShearX
                | Op::ShearY
                | Op::TranslateX
                | Op::TranslateY
                | Op::Rotate
                | Op::Brightness
                | Op::Color
                | Op::Contrast
                | Op::Sharpness
        )
    }

    /// torchvision's magnitudes of the `bins` bins for an `height × width` image (its float32
    /// `linspace` values, as torchvision reads them); empty for ops without one.
    pub fn magnitudes(self, bins: i64, height: i64, width: i64) -> Vec<f64> {
        let opts = (Kind::Float, Device::Cpu);
        let linspace = |lo: f64, hi: f64| Tensor::linspace(lo, hi, bins, opts);
        let t = match self {
            Op::ShearX | Op::ShearY => linspace(0.0, 0.3),
            Op::TranslateX => linspace(0.0, 150.0 / 331.0 * width as f64),
            Op::TranslateY => linspace(0.0, 150.0 / 331.0 * height as f64),
            Op::Rotate => linspace(0.0, 30.0),
            Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness => linspace(0.0, 0.9),
            Op::Posterize => {
                let step = (bins - 1) as f64 / 4.0;
                ((Tensor::arange(bins, (Kind::Int64, Device::Cpu)) / step).neg() + 8.0).round()
            }
            Op::Solarize => linspace(1.0, 0.0),
            Op::Identity | Op::AutoContrast | Op::Equalize | Op::Invert => return Vec::new(),
        };
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).expect("a 1-D tensor")
    }
}

/// `op` on every image of `x` (levels), image `n` with `magnitudes[n]`.
pub fn apply_op(x: &Tensor, op: Op, magnitudes: &[f64]) -> Tensor {
    let (n, _, h, w) = x.size4().expect("N×3×H×W levels");
    assert_eq!(n as usize, magnitudes.len(), "one magnitude per image");
    let factor = |m: &[f64]| factors(m.iter().map(|m| 1.0 + m), x.device());
    match op {
        Op::Identity => x.shallow_clone(),
        Op::ShearX | Op::ShearY | Op::TranslateX | Op::TranslateY | Op::Rotate => {
            let thetas: Vec<[f64; 6]> = magnitudes
                .iter()
                .map(|&m| affine_matrix(op, m, h, w))
                .collect();
            affine_levels(x, &thetas)
        }
        Op::Brightness => (x * per_sample(&factor(magnitudes)))
            .clamp(0.0, 255.0)
            .floor(),
        Op::Color => blend(x, &luma(x).floor(), magnitudes),
        Op::Contrast => {
            let mean = luma(x)
                .floor()
                .mean_dim(&[-3i64, -2, -1][..], true, Kind::Float);
            blend(x, &mean, magnitudes)
        }
        Op::Sharpness => sharpness(x, magnitudes),
        Op::Posterize => {
            // Keeping the top `bits` bits = flooring to a multiple of 2^(8 − bits).
            let unit = factors(
                magnitudes.iter().map(|&b| 2f64.powi(8 - b as i32)),
                x.device(),
            );
            let unit = per_sample(&unit);
            (x / &unit).floor() * unit
        }
        Op::Solarize => {
            let threshold = factors(magnitudes.iter().map(|m| 255.0 * m), x.device());
            invert(x).where_self(&x.ge_tensor(&per_sample(&threshold)), x)
        }
        Op::AutoContrast => autocontrast(x),
        Op::Equalize => equalize(x),
        Op::Invert => invert(x),
    }
}

/// Per-sample float32 values (each rounded from f64 once, as torchvision's Python floats are).
fn factors(values: impl Iterator<Item = f64>, device: Device) -> Tensor {
    let v: Vec<f32> = values.map(|v| v as f32).collect();
    Tensor::from_slice(&v).to_device(device)
}

/// The inverse affine matrix torchvision builds for a geometric op.
fn affine_matrix(op: Op, m: f64, h: i64, w: i64) -> [f64; 6] {
    // AutoAugment passes center=[0, 0] for shears: the top-left corner, relative to the centre.
    let corner = [-(w as f64) * 0.5, -(h as f64) * 0.5];
    let shear = |s: [f64; 2]| inverse_affine(corner, 0.0, [0.0, 0.0], s);
    match op {
        Op::ShearX => shear([m.atan().to_degrees(), 0.0]),
        Op::ShearY => shear([0.0, m.atan().to_degrees()]),
        Op::TranslateX => inverse_affine([0.0; 2], 0.0, [m.trunc(), 0.0], [0.0; 2]),
        Op::TranslateY => inverse_affine([0.0; 2], 0.0, [0.0, m.trunc()], [0.0; 2]),
        Op::Rotate => inverse_affine([0.0; 2], -m.rem_euclid(360.0), [0.0; 2], [0.0; 2]),
        _ => unreachable!("{op:?} is not geometric"),
    }
}

fn invert(x: &Tensor) -> Tensor {
    x.neg() + 255.0
}

/// torchvision's `_blend` on uint8: `trunc(clamp(r·x + (1 − r)·other, 0, 255))`, r = 1 + m.
fn blend(x: &Tensor, other: &Tensor, magnitudes: &[f64]) -> Tensor {
    let ratio = factors(magnitudes.iter().map(|m| 1.0 + m), x.device());
    let rest = factors(magnitudes.iter().map(|m| 1.0 - (1.0 + m)), x.device());
    (x * per_sample(&ratio) + other * per_sample(&rest))
        .clamp(0.0, 255.0)
        .floor()
}

/// torchvision's `adjust_sharpness` on uint8: blend the interior with the rounded 3×3 smoothing
/// (1s around a 5, over 13); the one-pixel border stays.
fn sharpness(x: &Tensor, magnitudes: &[f64]) -> Tensor {
    let (_, c, h, w) = x.size4().expect("N×C×H×W levels");
    if h <= 2 || w <= 2 {
        return x.shallow_clone();
    }
    let (a, b) = ((1.0 / 13.0) as f32, (5.0 / 13.0) as f32);
    let kernel = Tensor::from_slice(&[a, a, a, a, b, a, a, a, a])
        .view([1, 1, 3, 3])
        .expand([c, 1, 3, 3], false)
        .contiguous()
        .to_device(x.device());
    let smooth = x
        .conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)
        .round();
    let alpha = factors(magnitudes.iter().map(|m| 1.0 - (1.0 + m)), x.device());
    let out = x.copy();
    let mut inner = out.narrow(2, 1, h - 2).narrow(3, 1, w - 2);
    let blended = &inner + (smooth - &inner) * per_sample(&alpha);
    inner.copy_(&blended);
    out.clamp(0.0, 255.0).floor()
}

/// torchvision's `autocontrast` on uint8: each channel stretched to 0..255.
fn autocontrast(x: &Tensor) -> Tensor {
    let lo = x.amin(&[-2i64, -1][..], true);
    let hi = x.amax(&[-2i64, -1][..], true);
    let flat = hi.eq_tensor(&lo);
    let inv_scale = (&hi - &lo) * (1.0 / 255.0);
    let lo = lo.zeros_like().where_self(&flat, &lo);
    let inv_scale = inv_scale.ones_like().where_self(&flat, &inv_scale);
    ((x - lo) / inv_scale).clamp(0.0, 255.0).floor()
}

/// torchvision's (= PIL's) `equalize` for every channel of every image at once: histograms by
/// `scatter_add` over `N×C` rows of 256 bins, then PIL's look-up table.
fn equalize(x: &Tensor) -> Tensor {
    let (n, c, h, w) = x.size4().expect("N×C×H×W levels");
    let flat = x.to_kind(Kind::Int64).view([n, c, h * w]);
    let hist = Tensor::zeros([n, c, 256], (Kind::Int64, x.device())).scatter_add(
        -1,
        &flat,
        &flat.ones_like(),
    );
    let cum = hist.cumsum(-1, Kind::Int64);
    // The last non-empty bin is where the cumulative histogram first reaches its maximum.
    let last = cum.argmax(-1, true);
    let step = (hist.gather(-1, &last, false).neg() + h * w).divide_scalar_mode(255, "floor");
    let valid = step.ne(0);
    let lut = (cum.narrow(-1, 0, 255) + step.divide_scalar_mode(2, "floor"))
        .divide_tensor_mode(&step.clamp_min(1), "floor")
        .clamp(0, 255);
    let lut = Tensor::cat(&[lut.zeros_like().narrow(-1, 0, 1), lut], -1);
    let equalized = lut.gather(-1, &flat, false).view([n, c, h, w]);
    equalized
        .to_kind(x.kind())
        .where_self(&valid.unsqueeze(-1), x)
}
