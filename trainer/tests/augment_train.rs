//! Supervised augmentations (`trainer::augment::train`) and mixup against torchvision: each op
//! with fixed per-image parameters on uint8 images, the policies' op frequencies over many
//! draws against the published tables, and mixup's λ against Beta(α, α).

mod common;

use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};
use trainer::augment::train::{
    self, apply_op, apply_train, AutoaugmentPolicy, Geometry, Op, Policy, TrainAugment, TrainParams,
};
use trainer::augment::{mixup, normalize, resized_crop_flip, ViewKey};

fn key(step: u64) -> ViewKey {
    ViewKey {
        seed: 3,
        epoch: 1,
        step,
        rank: 0,
        view: 0,
    }
}

/// uint8 test images: full-range noise, low-contrast noise (autocontrast and equalize have
/// work to do), a flat image (their degenerate case) and smooth ramps (sharpness, shears).
fn images() -> Tensor {
    common::seeded(11, || {
        let opts = (Kind::Int64, Device::Cpu);
        let noise = Tensor::randint(256, [3, 3, 32, 32], opts);
        let low = Tensor::randint_low(60, 140, [2, 3, 32, 32], opts);
        let flat = Tensor::full([1, 3, 32, 32], 77, opts);
        let ramp = (Tensor::arange(32, opts).view([1, 1, 1, 32]) * 7
            + Tensor::arange(32, opts).view([1, 1, 32, 1]) * 3)
            .expand([2, 3, 32, 32], false)
            .remainder(256);
        Tensor::cat(&[noise, low, flat, ramp], 0).to_kind(Kind::Uint8)
    })
}

/// Per image: a bin of 10 and a sign, so every op is seen at several magnitudes, both signs.
const BINS: [i64; 8] = [9, 0, 3, 6, 9, 5, 2, 7];

fn magnitudes(op: Op) -> Vec<f64> {
    let table = op.magnitudes(10, 32, 32);
    (0..BINS.len())
        .map(|i| {
            let m = table.get(BINS[i] as usize).copied().unwrap_or(0.0);
            if op.signed() && i % 2 == 1 {
                -m
            } else {
                m
            }
        })
        .collect()
}

const TESTED: [Op; 14] = [
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

const CROPS: [[i64; 2]; 8] = [
    [0, 0],
    [8, 8],
    [4, 4],
    [0, 8],
    [8, 0],
    [3, 5],
    [7, 1],
    [2, 6],
];
const RESIZED: [[i64; 4]; 8] = [
    [0, 0, 32, 32],
    [0, 0, 20, 24],
    [5, 3, 17, 17],
    [10, 2, 22, 30],
    [1, 1, 31, 16],
    [12, 12, 16, 20],
    [0, 8, 32, 24],
    [4, 0, 28, 18],
];
const FLIPS: [bool; 8] = [false, true, true, false, true, false, false, true];

fn torchvision_ops(x: &Tensor) -> BTreeMap<String, Tensor> {
    let dir = tempfile::tempdir().unwrap();
    let (inp, out) = (dir.path().join("in.npz"), dir.path().join("out.npz"));
    let mags: Vec<f64> = TESTED.iter().flat_map(|&op| magnitudes(op)).collect();
    let crop: Vec<i64> = CROPS.concat();
    let resized: Vec<i64> = RESIZED.concat();
    let flip: Vec<u8> = FLIPS.iter().map(|&f| f as u8).collect();
    Tensor::write_npz(
        &[
            ("x", x.shallow_clone()),
            (
                "mags",
                Tensor::from_slice(&mags).view([TESTED.len() as i64, -1]),
            ),
            ("crop", Tensor::from_slice(&crop).view([-1, 2])),
            ("resized", Tensor::from_slice(&resized).view([-1, 4])),
            ("flip", Tensor::from_slice(&flip)),
            ("padding", Tensor::from_slice(&[4i64])),
            ("size", Tensor::from_slice(&[16i64])),
        ],
        &inp,
    )
    .unwrap();
    common::run_python(
        "import sys, train_augment_reference as r; r.ops(sys.argv[1], sys.argv[2])",
        &[inp.to_str().unwrap(), out.to_str().unwrap()],
    );
    Tensor::read_npz(&out).unwrap().into_iter().collect()
}

/// (largest level difference, pixels that differ) between our levels and torchvision's uint8.
fn difference(ours: &Tensor, theirs: &Tensor) -> (i64, i64) {
    assert_eq!(ours.size(), theirs.size());
    let d = (ours.to_kind(Kind::Int64) - theirs.to_kind(Kind::Int64)).abs();
    (
        d.max().int64_value(&[]),
        d.ne(0).sum(Kind::Int64).int64_value(&[]),
    )
}

/// Every op, image by image, against torchvision's AutoAugment applying it (its own
/// `_apply_image_or_video_transform`, so magnitude → argument mappings such as `int()` of a
/// translation and `255·m` of a solarize threshold are covered too).
///
/// Tolerance: geometric ops, posterize, solarize, autocontrast, equalize and invert are exact
/// (same float32 grid and nearest sampling; integer or correctly rounded arithmetic). The
/// blends (brightness, color, contrast, sharpness) are torchvision's float32 formula followed by
/// truncation to uint8; a result within one float32 rounding of an integer can truncate to
/// the neighbouring level when the multiply-adds are fused or ordered differently, so they may
/// differ by 1 level on a few pixels (allowed: 1 level on ≤ 1% of the pixels; measured on
/// AVX2: Color 1 level on 68 of 24576 pixels (0.28%), through its floored luma; the other
/// three exact).
#[test]
fn policy_ops_match_torchvision() {
    let x = images();
    let theirs = torchvision_ops(&x);
    let levels = train::to_levels(&x);
    let pixels = x.numel() as i64;
    for op in TESTED {
        let ours = apply_op(&levels, op, &magnitudes(op));
        let (max, count) = difference(&ours, &theirs[op.name()]);
        eprintln!(
            "{}: max level difference {max}, {count} of {pixels} pixels",
            op.name()
        );
        let exact = !matches!(
            op,
            Op::Brightness | Op::Color | Op::Contrast | Op::Sharpness
        );
        if exact {
            assert_eq!((max, count), (0, 0), "{} must equal torchvision", op.name());
        } else {
            assert!(
                max <= 1 && count * 200 <= pixels,
                "{}: {max}, {count}",
                op.name()
            );
        }
        // The op did something (an identity by mistake would pass an identity in torchvision).
        assert!(
            !ours.equal(&levels),
            "{} left every image unchanged",
            op.name()
        );
    }
}

/// RandomCrop(16, padding 4, zero fill) + flip is exact. The resized crop: torchvision resizes
/// uint8 images with PyTorch's uint8 bilinear kernel (fixed-point weights, then rounding), ours
/// is a float32 grid_sample rounded to levels; a bilinear value is a convex combination of
/// levels, so the two roundings of nearly the same value differ by at most 1 level (measured:
/// 1 level on about a quarter of the pixels, never more).
#[test]
fn geometry_matches_torchvision() {
    let x = images();
    let theirs = torchvision_ops(&x);
    let levels = train::to_levels(&x);
    let at: Vec<Vec<i64>> = CROPS.iter().map(|c| c.to_vec()).collect();
    let crop = train::crop_at(&levels.constant_pad_nd([4, 4, 4, 4]), &at, 16, 16);
    let flip = Tensor::from_slice(&FLIPS).view([-1, 1, 1, 1]);
    let crop = crop.flip([3]).where_self(&flip, &crop);
    assert_eq!(difference(&crop, &theirs["crop"]), (0, 0));
    let resized = Tensor::from_slice(&RESIZED.concat()).view([-1, 4]);
    let ours = resized_crop_flip(&levels, &resized, &Tensor::from_slice(&FLIPS), 16).round();
    let (max, count) = difference(&ours, &theirs["resized"]);
    eprintln!("resized crop: max level difference {max}, {count} pixels");
    assert!(max <= 1, "{max} levels on {count} pixels");
}

/// The drawn crop and flip, applied through `apply_train`, equal the same crop done by hand
/// with plain indexing (and the normalization is `(level / 255 − mean) / std`).
#[test]
fn train_view_applies_its_crop_and_flip() {
    let x = images();
    let aug = TrainAugment::default();
    let params = TrainParams::sample(&aug, 8, 32, 32, key(1));
    let ours = apply_train(&x, &aug, &params);
    let float = x.to_kind(Kind::Float);
    for i in 0..8usize {
        let (top, left) = (params.crop[i][0] - 4, params.crop[i][1] - 4);
        let expected = Tensor::zeros([3, 32, 32], (Kind::Float, Device::Cpu));
        for r in 0..32i64 {
            for c in 0..32i64 {
                let (sr, sc) = (top + r, left + c);
                if (0..32).contains(&sr) && (0..32).contains(&sc) {
                    let dc = if params.flip[i] { 31 - c } else { c };
                    expected
                        .narrow(1, r, 1)
                        .narrow(2, dc, 1)
                        .copy_(&float.get(i as i64).narrow(1, sr, 1).narrow(2, sc, 1));
                }
            }
        }
        let expected = normalize(&(expected.unsqueeze(0) / 255.0), aug.mean, aug.std);
        let err = (ours.get(i as i64) - expected.squeeze_dim(0))
            .abs()
            .max()
            .double_value(&[]);
        assert!(err == 0.0, "image {i}: {err}");
    }
    assert!(params.flip.iter().any(|&f| f) && params.flip.iter().any(|&f| !f));
}

/// A rank's rows of the global batch equal the same rows of the whole batch's view, for every
/// geometry and policy; the same key repeats exactly; another step differs.
#[test]
fn parts_do_not_depend_on_world_size() {
    let x = Tensor::cat(&[images(), images().flip([2])], 0);
    for (geometry, policy) in [
        (Geometry::Crop, Policy::Autoaugment),
        (Geometry::ResizedCrop, Policy::Randaugment),
        (Geometry::Flip, Policy::None),
    ] {
        let aug = TrainAugment {
            geometry,
            policy,
            ..TrainAugment::default()
        };
        let whole = train::train_view(&x, &aug, key(4), 16, 0).unwrap();
        let part = train::train_view(&x.narrow(0, 8, 8), &aug, key(4), 16, 8).unwrap();
        assert!(
            part.equal(&whole.narrow(0, 8, 8)),
            "{geometry:?} {policy:?}"
        );
        assert!(whole.equal(&train::train_view(&x, &aug, key(4), 16, 0).unwrap()));
        assert!(!whole.equal(&train::train_view(&x, &aug, key(5), 16, 0).unwrap()));
    }
}

/// No geometry, no policy: the images as they are, normalized (hand-computed).
#[test]
fn identity_recipe_is_normalize() {
    let x = images();
    let aug = TrainAugment {
        geometry: Geometry::None,
        ..TrainAugment::default()
    };
    let ours = train::train_view(&x, &aug, key(0), 8, 0).unwrap();
    let mean = Tensor::from_slice(&aug.mean).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&aug.std).view([1, 3, 1, 1]);
    let expected = (x.to_kind(Kind::Double) / 255.0 - mean) / std;
    let err = (ours.to_kind(Kind::Double) - expected)
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 1e-5, "{err}");
}

#[test]
fn bad_recipes_are_refused_with_the_reason() {
    let x = images();
    let too_big = TrainAugment {
        size: Some(48),
        ..TrainAugment::default()
    };
    let err = train::train_view(&x, &too_big, key(0), 8, 0).unwrap_err();
    assert!(err.to_string().contains("padding"), "{err}");
    let bad_bin = TrainAugment {
        magnitude: 31,
        ..TrainAugment::default()
    };
    assert!(train::train_view(&x, &bad_bin, key(0), 8, 0).is_err());
    let misplaced = TrainAugment {
        geometry: Geometry::Flip,
        size: Some(16),
        ..TrainAugment::default()
    };
    assert!(train::train_view(&x, &misplaced, key(0), 8, 0).is_err());
    let toml: Result<TrainAugment, _> =
        toml::from_str("policy = \"autoaugment\"\ngeometry = \"resized-crop\"\nnum_ops = 3");
    let parsed = toml.unwrap();
    assert_eq!(
        (parsed.geometry, parsed.policy, parsed.num_ops),
        (Geometry::ResizedCrop, Policy::Autoaugment, 3)
    );
    assert!(toml::from_str::<TrainAugment>("policy = \"trivial\"").is_err());
}

/// Expected P(slot, op, |m|) from torchvision's own policy tables.
fn published(policy: &str) -> BTreeMap<(i64, String, String), f64> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.json");
    common::run_python(
        "import sys, train_augment_reference as r; r.policy(sys.argv[1], 32, 31, 9)",
        &[out.to_str().unwrap()],
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    let mut expected = BTreeMap::new();
    for r in rows.iter().filter(|r| r["policy"] == policy) {
        let k = (
            r["slot"].as_i64().unwrap(),
            r["op"].as_str().unwrap().to_string(),
            format!("{:.6}", r["value"].as_f64().unwrap()),
        );
        *expected.entry(k).or_insert(0.0) += r["p"].as_f64().unwrap();
    }
    expected
}

/// Counted (slot, op, |m|) frequencies over `n` drawn images, and the fraction of negative
/// magnitudes among signed ops.
fn counted(aug: &TrainAugment, n: i64) -> (BTreeMap<(i64, String, String), f64>, f64) {
    let params = TrainParams::sample(aug, n, 32, 32, key(9));
    let mut freq = BTreeMap::new();
    let (mut negative, mut signed) = (0usize, 0usize);
    for (k, slot) in params.slots.iter().enumerate() {
        for c in slot {
            if c.op == Op::Identity && aug.policy == Policy::Autoaugment {
                continue;
            }
            if c.op.signed() && c.magnitude != 0.0 {
                signed += 1;
                negative += (c.magnitude < 0.0) as usize;
            }
            let key = (
                k as i64,
                c.op.name().to_string(),
                format!("{:.6}", c.magnitude.abs()),
            );
            *freq.entry(key).or_insert(0.0) += 1.0 / n as f64;
        }
    }
    (freq, negative as f64 / signed as f64)
}

/// Counted statistics of the draws against the published policies: every (slot, op, |m|)
/// within 5 binomial standard errors of its probability, nothing unpublished, signs ½.
fn assert_frequencies(
    expected: &BTreeMap<(i64, String, String), f64>,
    counted: &BTreeMap<(i64, String, String), f64>,
    n: f64,
) {
    for (k, &p) in expected {
        let f = counted.get(k).copied().unwrap_or(0.0);
        let se = (p * (1.0 - p) / n).sqrt();
        assert!(
            (f - p).abs() <= 5.0 * se + 1e-12,
            "{k:?}: counted {f}, published {p}"
        );
    }
    for k in counted.keys() {
        assert!(
            expected.contains_key(k),
            "{k:?} is not in the published policy"
        );
    }
}

/// AutoAugment's draws against torchvision's published table of `policy`, tagged `tag`.
fn assert_follows_published(policy: AutoaugmentPolicy, tag: &str) {
    let aug = TrainAugment {
        geometry: Geometry::None,
        policy: Policy::Autoaugment,
        autoaugment_policy: policy,
        ..TrainAugment::default()
    };
    let n = 100_000;
    let (freq, negative) = counted(&aug, n);
    // Ops of probability 0 (CIFAR-10's Invert after Solarize, ImageNet's first Equalize of
    // sub-policy 12) never show.
    let expected: BTreeMap<_, _> = published(tag)
        .into_iter()
        .filter(|(_, p)| *p > 0.0)
        .collect();
    assert_frequencies(&expected, &freq, n as f64);
    assert!((negative - 0.5).abs() < 0.01, "{negative}");
}

#[test]
fn autoaugment_draws_follow_the_cifar10_policy() {
    assert_follows_published(AutoaugmentPolicy::Cifar10, "autoaugment");
}

#[test]
fn autoaugment_draws_follow_the_imagenet_policy() {
    assert_follows_published(AutoaugmentPolicy::Imagenet, "autoaugment-imagenet");
}

#[test]
fn randaugment_draws_are_uniform_over_its_ops() {
    let aug = TrainAugment {
        geometry: Geometry::None,
        policy: Policy::Randaugment,
        ..TrainAugment::default()
    };
    let n = 50_000;
    let (freq, negative) = counted(&aug, n);
    // Both places draw from the same space: compare each against the published slot-0 table.
    for slot in 0..2 {
        let one: BTreeMap<_, _> = freq
            .iter()
            .filter(|(k, _)| k.0 == slot)
            .map(|((_, op, v), f)| ((0, op.clone(), v.clone()), *f))
            .collect();
        assert_frequencies(&published("randaugment"), &one, n as f64);
    }
    assert!((negative - 0.5).abs() < 0.01, "{negative}");
}

/// λ over many keys: mean ½ and variance 1/(4(2α + 1)) of Beta(α, α), within 5 standard errors
/// (the variance's from E[(λ − ½)⁴] ≤ 1/16); the mixed batch is λ·x + (1 − λ)·x[partner]
/// (in float64, within the ≤ 5 float32 roundings of values ≤ 1: 5·2⁻²⁴ ≈ 3e-7) and the
/// partners are a permutation.
#[test]
fn mixup_lambda_is_beta_and_mixes_exactly() {
    let x = images();
    let unit = x.to_kind(Kind::Double) / 255.0;
    for alpha in [0.2, 1.0] {
        let draws = 4000;
        let mut lambdas = Vec::with_capacity(draws);
        for step in 0..draws as u64 {
            let (mixed, partner, lambda) = mixup(&x, key(step), alpha).unwrap();
            lambdas.push(lambda);
            if step < 20 {
                let sorted = partner.sort(0, false).0;
                assert!(sorted.equal(&Tensor::arange(8, (Kind::Int64, Device::Cpu))));
                let expected = &unit * lambda + unit.index_select(0, &partner) * (1.0 - lambda);
                let err = (mixed.to_kind(Kind::Double) - expected)
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(err <= 3e-7, "alpha {alpha}: {err}");
            }
        }
        let n = draws as f64;
        let mean = lambdas.iter().sum::<f64>() / n;
        let var = lambdas.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let expected_var = 1.0 / (4.0 * (2.0 * alpha + 1.0));
        assert!(
            (mean - 0.5).abs() <= 5.0 * (expected_var / n).sqrt(),
            "mean {mean}"
        );
        assert!(
            (var - expected_var).abs() <= 5.0 * (1.0 / 16.0 / n).sqrt(),
            "var {var}"
        );
    }
    let (a, pa, la) = mixup(&x, key(1), 0.4).unwrap();
    let (b, pb, lb) = mixup(&x, key(1), 0.4).unwrap();
    assert!(a.equal(&b) && pa.equal(&pb) && la == lb, "a key repeats");
    assert!(mixup(&x, key(1), 0.0).is_err());
}

// ---- Per-view SSL recipes (`[augment.views.<v>]`, presets) ----

use trainer::augment::{augment_part, AugmentConfig};
use trainer::data::DatasetName;
use trainer::method::ssl::config::PretrainConfig;

fn pretrain_config(toml_text: &str) -> anyhow::Result<PretrainConfig> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(
        &file,
        format!("data_dir = \"/d\"\nexp_dir = \"/e\"\n{toml_text}"),
    )
    .unwrap();
    PretrainConfig::resolve(Some(&file), toml::Table::new())
}

/// No per-view table: both views get exactly the recipe a single `[augment]` table gave before
/// (solo-learn's VICReg recipe with the overrides), so the views are bit-identical to it.
#[test]
fn without_views_both_views_share_the_old_recipe() {
    let c = pretrain_config("[augment]\ncrop_scale = [0.3, 1.0]\n").unwrap();
    let [v0, v1] = c.augment_views(32, DatasetName::Cifar10).unwrap();
    let expected = AugmentConfig {
        crop_scale: (0.3, 1.0),
        ..AugmentConfig::vicreg()
    };
    assert_eq!((&v0, &v1), (&expected, &expected));
    let x = images();
    let k = key(2).with_view(1);
    assert!(augment_part(&x, &v1, k, 8, 0).equal(&augment_part(&x, &expected, k, 8, 0)));
}

/// VICReg's original recipe written by hand and through the preset, and an explicit view key
/// overriding the preset's.
#[test]
fn per_view_tables_and_preset_parse() {
    let by_hand = pretrain_config(
        "[augment]\nblur_kernel = 3\n[augment.views.0]\nblur_p = 1.0\nsolarize_p = 0.0\n\
         [augment.views.1]\nblur_p = 0.1\nsolarize_p = 0.2\n",
    )
    .unwrap()
    .augment_views(32, DatasetName::Cifar10)
    .unwrap();
    assert_eq!((by_hand[0].blur_p, by_hand[0].solarize_p), (1.0, 0.0));
    assert_eq!((by_hand[1].blur_p, by_hand[1].solarize_p), (0.1, 0.2));
    // Everything else is the shared VICReg recipe.
    let shared = AugmentConfig {
        blur_p: 1.0,
        solarize_p: 0.0,
        ..AugmentConfig::vicreg()
    };
    assert_eq!(by_hand[0], shared);
    let preset = pretrain_config("[augment]\npreset = \"vicreg-asymmetric\"\n")
        .unwrap()
        .augment_views(32, DatasetName::Cifar10)
        .unwrap();
    assert_eq!(preset, by_hand);
    let overridden = pretrain_config(
        "[augment]\npreset = \"vicreg-asymmetric\"\n[augment.views.1]\nsolarize_p = 0.3\n",
    )
    .unwrap()
    .augment_views(32, DatasetName::Cifar10)
    .unwrap();
    assert_eq!((overridden[1].blur_p, overridden[1].solarize_p), (0.1, 0.3));
    // The views really differ: view 0 blurs every image, so it differs from the shared recipe.
    let x = images();
    let k = key(0);
    assert!(!augment_part(&x, &preset[0], k, 8, 0).equal(&augment_part(
        &x,
        &AugmentConfig::vicreg(),
        k,
        8,
        0
    )));
}

#[test]
fn bad_per_view_tables_are_named() {
    for (text, needle) in [
        ("[augment.views.2]\nblur_p = 0.5\n", "views.2"),
        ("[augment.views.1]\nblur_q = 0.5\n", "blur_q"),
        ("[augment.views.1]\nblur_p = 1.5\n", "blur_p"),
        ("[augment]\npreset = \"byol\"\n", "byol"),
        ("[augment.views.1]\nsize = 24\n", "same size"),
    ] {
        let err = pretrain_config(text).map(|_| ()).unwrap_err();
        assert!(format!("{err:#}").contains(needle), "{text}: {err:#}");
    }
}
