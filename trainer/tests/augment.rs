//! Batched augmentations vs torchvision.transforms.v2.functional with fixed parameters, plus
//! determinism, crop-sampling statistics (vs torchvision's own `get_params`) and output format.

mod common;

use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};
use trainer::augment::{self, AugmentConfig, Params, ViewKey};

const REFERENCE: &str = r#"
import sys, numpy as np, torch
from torchvision.transforms.v2 import functional as F
d = np.load(sys.argv[1])
x = torch.from_numpy(d['x']); f = d['factors'].astype(np.float64); crops = d['crops']
flips = d['flips']; mask = d['mask']; size = int(d['size'][0])
n = x.shape[0]
out = {}
def each(fn):
    return torch.stack([fn(i) for i in range(n)]).numpy()
out['brightness'] = each(lambda i: F.adjust_brightness(x[i], f[i, 0]))
out['contrast'] = each(lambda i: F.adjust_contrast(x[i], f[i, 1]))
out['saturation'] = each(lambda i: F.adjust_saturation(x[i], f[i, 2]))
out['hue'] = each(lambda i: F.adjust_hue(x[i], f[i, 3]))
out['gray'] = each(lambda i: F.rgb_to_grayscale(x[i], num_output_channels=3))
out['solarize'] = each(lambda i: F.solarize(x[i], 0.5))
def jitter(i):
    y = x[i]
    if not mask[i]:
        return y
    y = F.adjust_brightness(y, f[i, 0]); y = F.adjust_contrast(y, f[i, 1])
    y = F.adjust_saturation(y, f[i, 2]); return F.adjust_hue(y, f[i, 3])
out['jitter'] = each(jitter)
def crop(i):
    t, l, h, w = (int(v) for v in crops[i])
    y = F.resized_crop(x[i], t, l, h, w, [size, size],
                       interpolation=F.InterpolationMode.BILINEAR, antialias=False)
    return F.hflip(y) if flips[i] else y
out['crop'] = each(crop)
sig = d['sigma'].astype(np.float64)
out['blur'] = each(lambda i: F.gaussian_blur(x[i], [5, 5], [float(sig[i])] * 2))
np.savez(sys.argv[2], **out)
"#;

fn all(t: Tensor) -> bool {
    t.all().int64_value(&[]) != 0
}

fn cpu() -> Device {
    Device::Cpu
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn torchvision(inputs: &[(&str, Tensor)]) -> BTreeMap<String, Tensor> {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.npz"), dir.path().join("out.npz"));
    // npz has no bool kind here: masks travel as uint8.
    let inputs: Vec<(&str, Tensor)> = inputs
        .iter()
        .map(|(k, t)| {
            let t = if t.kind() == Kind::Bool {
                t.to_kind(Kind::Uint8)
            } else {
                t.shallow_clone()
            };
            (*k, t)
        })
        .collect();
    Tensor::write_npz(&inputs, &inp).unwrap();
    common::run_python(REFERENCE, &[inp.to_str().unwrap(), out.to_str().unwrap()]);
    Tensor::read_npz(&out).unwrap().into_iter().collect()
}

/// Each op with fixed per-sample parameters vs torchvision on the same images.
///
/// Tolerances: brightness/contrast/saturation/grayscale/solarize are the same float32 formulas
/// (1e-5 covers reassociation); crop compares grid_sample with interpolate, whose source
/// coordinates are computed differently in float32 (1e-4); hue goes through RGB→HSV→RGB with
/// divisions by small channel ranges (1e-4; observed ~1e-6).
#[test]
fn ops_match_torchvision() {
    tch::manual_seed(7);
    let n = 6;
    let x = Tensor::rand([n, 3, 64, 64], (Kind::Float, cpu()));
    // Factors exactly representable in f32, so both sides use identical values.
    let factors = Tensor::from_slice(&[
        0.5f32, 0.25, 0.0, -0.5, //
        1.25, 1.5, 1.75, 0.125, //
        1.75, 0.75, 0.5, -0.25, //
        0.875, 1.0, 1.25, 0.375, //
        0.0, 1.75, 2.0, 0.5, //
        1.0, 0.5, 0.25, -0.0625,
    ])
    .view([n, 4]);
    let mask = Tensor::from_slice(&[true, false, true, true, false, true]);
    // Downscaling crops (height, width ≥ output size): grid_sample equals interpolate everywhere.
    let crops = Tensor::from_slice(&[
        0i64, 0, 64, 64, //
        3, 5, 40, 33, //
        10, 0, 32, 50, //
        20, 12, 44, 52, //
        0, 30, 64, 34, //
        7, 7, 50, 50,
    ])
    .view([n, 4]);
    let flips = Tensor::from_slice(&[false, true, false, true, true, false]);
    let size = 32i64;
    let sigma = Tensor::from_slice(&[0.1f32, 0.5, 1.0, 1.5, 2.0, 0.75]);
    let theirs = torchvision(&[
        ("x", x.shallow_clone()),
        ("factors", factors.shallow_clone()),
        ("crops", crops.shallow_clone()),
        ("flips", flips.shallow_clone()),
        ("mask", mask.shallow_clone()),
        ("size", Tensor::from_slice(&[size])),
        ("sigma", sigma.shallow_clone()),
    ]);
    let f = |k: i64| factors.select(1, k);
    let ours: Vec<(&str, Tensor, f64)> = vec![
        ("brightness", augment::adjust_brightness(&x, &f(0)), 1e-5),
        ("contrast", augment::adjust_contrast(&x, &f(1)), 1e-5),
        ("saturation", augment::adjust_saturation(&x, &f(2)), 1e-5),
        ("hue", augment::adjust_hue(&x, &f(3)), 1e-4),
        ("gray", augment::grayscale(&x), 1e-5),
        ("solarize", augment::solarize(&x, 0.5), 1e-6),
        ("blur", augment::gaussian_blur(&x, &sigma, 5), 1e-5),
        ("jitter", augment::color_jitter(&x, &factors, &mask), 1e-4),
        (
            "crop",
            augment::resized_crop_flip(&x, &crops, &flips, size),
            1e-4,
        ),
    ];
    for (name, ours, tol) in ours {
        let err = max_abs(&ours, &theirs[name]);
        eprintln!("{name}: max |ours − torchvision| = {err:.2e}");
        assert!(err <= tol, "{name}: max abs error {err} > {tol}");
    }
}

/// Upscaling crops match torchvision away from the outermost output pixels, where torchvision
/// clamps to the crop's edge and grid_sample blends in the pixel just outside (documented).
#[test]
fn upscaling_crop_matches_inside() {
    tch::manual_seed(8);
    let x = Tensor::rand([3, 3, 32, 32], (Kind::Float, cpu()));
    let crops = Tensor::from_slice(&[5i64, 7, 16, 20, 0, 0, 12, 12, 10, 3, 22, 29]).view([3, 4]);
    let flips = Tensor::from_slice(&[false, true, true]);
    let theirs = torchvision(&[
        ("x", x.shallow_clone()),
        ("factors", Tensor::zeros([3, 4], (Kind::Float, cpu()))),
        ("crops", crops.shallow_clone()),
        ("flips", flips.shallow_clone()),
        ("mask", Tensor::from_slice(&[false, false, false])),
        ("size", Tensor::from_slice(&[32i64])),
        ("sigma", Tensor::ones([3], (Kind::Float, cpu()))),
    ]);
    let ours = augment::resized_crop_flip(&x, &crops, &flips, 32);
    let inner = |t: &Tensor| t.narrow(2, 1, 30).narrow(3, 1, 30);
    let err = max_abs(&inner(&ours), &inner(&theirs["crop"]));
    assert!(err <= 1e-4, "interior error {err}");
    // The border does differ (otherwise the documented caveat would be stale).
    assert!(max_abs(&ours, &theirs["crop"]) > 1e-3);
}

fn key(step: u64, rank: u64) -> ViewKey {
    ViewKey {
        seed: 1,
        epoch: 3,
        step,
        rank,
        view: 0,
    }
}

#[test]
fn same_key_same_batch_other_keys_differ() {
    let x = Tensor::randint(256, [16, 3, 32, 32], (Kind::Uint8, cpu()));
    for cfg in [AugmentConfig::simclr(), AugmentConfig::vicreg()] {
        let (a0, a1) = augment::two_views(&x, &cfg, key(5, 0));
        let (b0, b1) = augment::two_views(&x, &cfg, key(5, 0));
        assert!(
            a0.equal(&b0) && a1.equal(&b1),
            "same key must repeat exactly"
        );
        assert!(!a0.equal(&a1), "the two views must differ");
        for other in [
            key(6, 0),
            key(5, 1),
            ViewKey {
                epoch: 4,
                ..key(5, 0)
            },
        ] {
            let (c0, _) = augment::two_views(&x, &cfg, other);
            assert!(!a0.equal(&c0), "{other:?} repeated {:?}", key(5, 0));
        }
    }
}

#[test]
fn params_are_deterministic_and_masks_have_their_rates() {
    let cfg = AugmentConfig::vicreg();
    let n = 20_000;
    let p = Params::sample(&cfg, n, 32, 32, key(0, 0));
    let q = Params::sample(&cfg, n, 32, 32, key(0, 0));
    assert!(p.crop.equal(&q.crop) && p.jitter_factors.equal(&q.jitter_factors));
    let rate = |t: &Tensor| t.to_kind(Kind::Double).mean(Kind::Double).double_value(&[]);
    // 4.5 standard errors at p = 0.5 with n = 20000 is 0.016.
    for (what, t, p) in [
        ("jitter", &p.jitter, cfg.jitter_p),
        ("gray", &p.gray, cfg.gray_p),
        ("solarize", &p.solarize, cfg.solarize_p),
        ("flip", &p.flip, cfg.flip_p),
    ] {
        assert!(
            (rate(t) - p).abs() < 0.016,
            "{what}: rate {} vs {p}",
            rate(t)
        );
    }
    let f = &p.jitter_factors;
    let j = cfg.jitter;
    for (k, lo, hi) in [
        (0, 1.0 - j.brightness, 1.0 + j.brightness),
        (1, 1.0 - j.contrast, 1.0 + j.contrast),
        (2, 1.0 - j.saturation, 1.0 + j.saturation),
        (3, -j.hue, j.hue),
    ] {
        let c = f.select(1, k);
        let (min, max) = (c.min().double_value(&[]), c.max().double_value(&[]));
        assert!(
            min >= lo - 1e-6 && max <= hi + 1e-6,
            "factor {k}: [{min}, {max}]"
        );
        assert!(
            min < lo + 0.01 && max > hi - 0.01,
            "factor {k} should span its range"
        );
    }
}

/// Sampled crop areas lie in the scale range (up to rounding of the sides) and their mean
/// matches torchvision's `RandomResizedCrop.get_params` on the same image size.
#[test]
fn crop_statistics_match_torchvision() {
    let n = 20_000;
    for (cfg, lo) in [
        (AugmentConfig::simclr(), 0.08),
        (AugmentConfig::vicreg(), 0.2),
    ] {
        let p = Params::sample(&cfg, n, 32, 32, key(1, 0));
        let c = p.crop.to_kind(Kind::Double);
        let (top, left, h, w) = (
            c.select(1, 0),
            c.select(1, 1),
            c.select(1, 2),
            c.select(1, 3),
        );
        assert!(all((&top + &h).le(32.0)) && all((&left + &w).le(32.0)));
        assert!(all(top.ge(0.0)) && all(left.ge(0.0)));
        let frac = &h * &w / 1024.0;
        // Sides are rounded from √(t·r) and √(t/r) (target area t): each loses at most ½ px, so
        // h·w ≥ t − ½(h + w) − ¼ ≥ lo·1024 − ½(h + w) − ¼.
        let slack = (&h * &w + (&h + &w) * 0.5 + 0.25) / 1024.0;
        let min = slack.min().double_value(&[]);
        assert!(
            min >= lo,
            "area below the scale range beyond rounding: {min}"
        );
        assert!(frac.max().double_value(&[]) <= 1.0);
        let ours = frac.mean(Kind::Double).double_value(&[]);
        let ratio = (&w / &h).log();
        let ratio_ok = ratio.abs().max().double_value(&[]) <= (4.0f64 / 3.0).ln() + 0.25;
        assert!(ratio_ok, "aspect ratios out of range");
        let theirs: f64 = common::run_python(
            r#"
import sys, torch
from torchvision.transforms import v2
torch.manual_seed(0)
img = torch.zeros(3, 32, 32); lo = float(sys.argv[1]); n = int(sys.argv[2])
s = 0.0
for _ in range(n):
    i, j, h, w = v2.RandomResizedCrop.get_params(img, [lo, 1.0], [3 / 4, 4 / 3])
    s += h * w / 1024
print(s / n)
"#,
            &[&lo.to_string(), &n.to_string()],
        )
        .trim()
        .parse()
        .unwrap();
        // Area fractions have sd ≲ 0.27: the difference of two means of 20000 has sd ≲ 0.003.
        assert!(
            (ours - theirs).abs() < 0.012,
            "mean area {ours} vs torchvision {theirs}"
        );
    }
}

#[test]
fn crop_falls_back_to_center() {
    // No aspect ratio in [2, 3] fits at full area: torchvision's fallback is the centre crop
    // clamped to the smallest ratio: width 32, height round(32 / 2) = 16, top 8.
    let mut rng = key(0, 0).rng();
    for _ in 0..10 {
        let c = augment::sample_crop(&mut rng, 32, 32, (1.0, 1.0), (2.0, 3.0));
        assert_eq!(c, [8, 0, 16, 32]);
    }
    let c = augment::sample_crop(&mut rng, 32, 32, (1.0, 1.0), (0.9, 1.1));
    assert_eq!(c, [0, 0, 32, 32]);
}

#[test]
fn output_shape_kind_and_normalization() {
    let x = Tensor::randint(256, [5, 3, 40, 40], (Kind::Uint8, cpu()));
    let cfg = AugmentConfig::simclr();
    let y = augment::augment(&x, &cfg, key(0, 0));
    assert_eq!(y.size(), [5, 3, 32, 32]);
    assert_eq!(y.kind(), Kind::Float);
    // Identity pipeline (full crop, no flip/jitter/gray/solarize, same size): exactly
    // normalize(x / 255), for uint8 and for float input.
    let identity = AugmentConfig {
        size: 40,
        crop_scale: (1.0, 1.0),
        crop_ratio: (1.0, 1.0),
        jitter_p: 0.0,
        gray_p: 0.0,
        solarize_p: 0.0,
        flip_p: 0.0,
        ..AugmentConfig::simclr()
    };
    identity.validate().unwrap();
    let mean = Tensor::from_slice(&augment::CIFAR10_MEAN).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&augment::CIFAR10_STD).view([1, 3, 1, 1]);
    let expect = ((x.to_kind(Kind::Double) / 255.0 - mean) / std).to_kind(Kind::Float);
    let from_u8 = augment::augment(&x, &identity, key(0, 0));
    let from_f32 = augment::augment(&(x.to_kind(Kind::Float) / 255.0), &identity, key(0, 0));
    // The full crop still goes through grid_sample: a sampling coordinate off by 40 px × the
    // float32 epsilon (5e-6 px) mixes in a neighbour up to 1/std ≈ 5 normalized units away, so
    // up to 2.5e-5. Measured on random images: up to 1.2e-5 with ATEN_CPU_CAPABILITY=default,
    // 6.4e-6 with avx2 and avx512. The flip is the same grid mirrored.
    const GRID_TOLERANCE: f64 = 5e-5;
    let (du8, df32) = (max_abs(&from_u8, &expect), max_abs(&from_f32, &expect));
    assert!(du8 < GRID_TOLERANCE, "uint8 input: max |error| {du8}");
    assert!(df32 < GRID_TOLERANCE, "float input: max |error| {df32}");
    // Flip always: the mirror image.
    let flipped = augment::augment(
        &x,
        &AugmentConfig {
            flip_p: 1.0,
            ..identity.clone()
        },
        key(0, 0),
    );
    let dflip = max_abs(&flipped, &expect.flip([3]));
    assert!(dflip < GRID_TOLERANCE, "flipped: max |error| {dflip}");
    // Grayscale always: all channels equal before normalization.
    let gray = augment::augment(
        &x,
        &AugmentConfig {
            gray_p: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            ..identity
        },
        key(0, 0),
    );
    assert!(max_abs(&gray.select(1, 0), &gray.select(1, 2)) < 1e-6);
}

#[test]
fn config_round_trips_through_toml() {
    let cfg = AugmentConfig::vicreg();
    let text = toml::to_string(&cfg).unwrap();
    let back: AugmentConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
    let partial: AugmentConfig = toml::from_str("size = 64\nsolarize_p = 0.3").unwrap();
    assert_eq!(partial.size, 64);
    assert_eq!(partial.crop_scale, (0.08, 1.0));
    cfg.validate().unwrap();
    AugmentConfig::simclr().validate().unwrap();
}

/// The same key gives the same views on an accelerator (within float tolerance).
#[test]
fn cuda_matches_cpu() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device; skipping");
        return;
    }
    let x = Tensor::randint(256, [8, 3, 32, 32], (Kind::Uint8, cpu()));
    let cfg = AugmentConfig::simclr();
    let on_cpu = augment::augment(&x, &cfg, key(2, 0));
    let on_gpu = augment::augment(&x.to_device(Device::Cuda(0)), &cfg, key(2, 0));
    assert_eq!(on_gpu.device(), Device::Cuda(0));
    assert!(max_abs(&on_cpu, &on_gpu.to_device(cpu())) < 1e-3);
}

#[test]
fn blur_is_applied_where_drawn_and_leaves_other_samples_alone() {
    let mut cfg = AugmentConfig::simclr();
    (cfg.jitter_p, cfg.gray_p, cfg.flip_p, cfg.crop_scale) = (0.0, 0.0, 0.0, (1.0, 1.0));
    (cfg.blur_p, cfg.blur_kernel, cfg.crop_ratio) = (0.5, 5, (1.0, 1.0));
    cfg.validate().unwrap();
    let x = Tensor::randint(256, [16, 3, 32, 32], (Kind::Uint8, cpu()));
    let params = augment::Params::sample(&cfg, 16, 32, 32, key(0, 0));
    let blurred = augment::apply(&x, &cfg, &params);
    cfg.blur_p = 0.0;
    let plain = augment::apply(&x, &cfg, &params);
    let sigma = params.blur_sigma.as_ref().expect("sigmas drawn");
    let expected_blur = augment::gaussian_blur(
        &augment::normalize(&augment::to_unit_float(&x), cfg.mean, cfg.std),
        sigma,
        5,
    );
    let mut blurred_count = 0;
    for i in 0..16 {
        let (b, p) = (blurred.get(i), plain.get(i));
        if params.blur.get(i).int64_value(&[]) != 0 {
            blurred_count += 1;
            // Blur is linear and per channel, so it commutes with the normalization.
            assert!(max_abs(&b, &expected_blur.get(i)) < 1e-4, "sample {i}");
        } else {
            assert!(max_abs(&b, &p) == 0.0, "sample {i} changed without blur");
        }
    }
    assert!(
        (3..=13).contains(&blurred_count),
        "{blurred_count} of 16 blurred at p = 0.5"
    );
}
