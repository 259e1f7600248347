//! The seed papers' noise variants (`--flips bernoulli`, `--asym-classes blocks`,
//! `--instance-model cheng`) against numpy re-implementations of the reference code
//! (`tests/python/noise_reference.py`). numpy's draws are not ours, so both sides are held to the
//! same statistics: counts against their binomial expectation, with tolerances of a stated
//! number of binomial standard deviations, and exact structural properties (the blocks-of-5 map
//! as a hand-written table; a shared projection giving every class the same flip targets).

// Matrix cells are indexed (s, y), as in the formulas they are checked against.
#![allow(clippy::needless_range_loop)]

mod common;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::json;
use trainer::data::DatasetName;
use trainer::noise::decimal::Decimal;
use trainer::noise::file::file_name;
use trainer::noise::symmetric::Convention;
use trainer::noise::variants::{AsymClasses, Flips, InstanceModel, Variants};
use trainer::noise::{asymmetric, generate, CleanSet, Kind, Spec};

/// ELR's CIFAR-100 map, written out by hand from `build_for_cifar100(5, n)`: P[i, i+1] = n within
/// each block of 5 consecutive classes, P[4, 0] = n.
const ELR_BLOCKS: [usize; 100] = [
    1, 2, 3, 4, 0, 6, 7, 8, 9, 5, //
    11, 12, 13, 14, 10, 16, 17, 18, 19, 15, //
    21, 22, 23, 24, 20, 26, 27, 28, 29, 25, //
    31, 32, 33, 34, 30, 36, 37, 38, 39, 35, //
    41, 42, 43, 44, 40, 46, 47, 48, 49, 45, //
    51, 52, 53, 54, 50, 56, 57, 58, 59, 55, //
    61, 62, 63, 64, 60, 66, 67, 68, 69, 65, //
    71, 72, 73, 74, 70, 76, 77, 78, 79, 75, //
    81, 82, 83, 84, 80, 86, 87, 88, 89, 85, //
    91, 92, 93, 94, 90, 96, 97, 98, 99, 95, //
];

fn balanced_labels(k: usize, per_class: usize, seed: u64) -> Vec<usize> {
    let mut labels: Vec<usize> = (0..k)
        .flat_map(|c| std::iter::repeat_n(c, per_class))
        .collect();
    labels.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed));
    labels
}

fn spec(kind: Kind, noise: &str, seed: u64, convention: Convention, variants: Variants) -> Spec {
    Spec {
        kind,
        noise: Decimal::parse(noise).unwrap(),
        sparsity: Decimal::parse("0").unwrap(),
        seed,
        convention,
        valid_check: false,
        variants,
    }
}

fn ours(
    spec: &Spec,
    dataset: DatasetName,
    k: usize,
    labels: &[usize],
    pixels: Option<&[u8]>,
) -> Vec<usize> {
    let clean = CleanSet {
        dataset,
        num_classes: k,
        labels,
        pixels,
    };
    generate(spec, &clean).unwrap().labels
}

/// The reference's noisy labels for `variant` (see noise_reference.py).
fn reference(
    variant: &str,
    labels: &[usize],
    k: usize,
    noise: f64,
    extra: serde_json::Value,
) -> Vec<usize> {
    let mut input =
        json!({"variant": variant, "labels": labels, "k": k, "noise": noise, "seed": 0});
    if let serde_json::Value::Object(more) = extra {
        input.as_object_mut().unwrap().extend(more);
    }
    let out = common::python_with_stdin(
        "import noise_reference; noise_reference.main()",
        &input.to_string(),
    );
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    serde_json::from_value(parsed["labels"].clone()).unwrap()
}

/// counts[s][y]: samples of true class y labelled s.
fn pair_counts(clean: &[usize], noisy: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut c = vec![vec![0; k]; k];
    clean.iter().zip(noisy).for_each(|(&y, &s)| c[s][y] += 1);
    c
}

fn changed(clean: &[usize], noisy: &[usize]) -> usize {
    clean.iter().zip(noisy).filter(|(a, b)| a != b).count()
}

/// Binomial standard deviation of a count of n trials with probability p.
fn binomial_sd(n: usize, p: f64) -> f64 {
    (n as f64 * p * (1.0 - p)).sqrt()
}

fn variance(xs: &[f64]) -> f64 {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len() - 1) as f64
}

fn blocks_bernoulli() -> Variants {
    Variants {
        flips: Flips::Bernoulli,
        asym_classes: AsymClasses::Blocks,
        ..Variants::default()
    }
}

#[test]
fn blocks_map_is_elrs_hand_written_table_not_the_super_classes() {
    let map = asymmetric::class_map(DatasetName::Cifar100, 100, AsymClasses::Blocks).unwrap();
    let expected: Vec<Option<usize>> = ELR_BLOCKS.iter().map(|&t| Some(t)).collect();
    assert_eq!(map, expected);
    // Apple (0) is in super-class 4 (fruit and vegetables) with 51, 53, 57 and 83: the default
    // map keeps to it, the blocks do not.
    let superclasses =
        asymmetric::class_map(DatasetName::Cifar100, 100, AsymClasses::Superclasses).unwrap();
    assert_eq!((superclasses[0], map[0]), (Some(51), Some(1)));
    let err = asymmetric::class_map(DatasetName::Cifar10, 10, AsymClasses::Blocks).unwrap_err();
    assert!(
        format!("{err:#}").contains("--asym-classes blocks"),
        "{err:#}"
    );
}

/// ELR's CIFAR-100 asymmetric noise: per class, the flips to the next class of the block are
/// Binomial(200, 0.4) (mean 80, sd 6.93); the total over 100 classes Binomial(20000, 0.4)
/// (mean 8000, sd 69.3). Exact counts would give every class exactly 80 (variance 0); per-sample
/// draws give a spread of per-class counts whose sample variance (99 degrees of freedom) lies
/// within 0.5–1.5 × 48 except with probability below 1e-3.
#[test]
fn blocks_with_bernoulli_flips_realize_elrs_statistics() {
    let (k, per_class, r) = (100, 200, 0.4);
    let clean = balanced_labels(k, per_class, 1);
    let ours = ours(
        &spec(
            Kind::Asymmetric,
            "0.4",
            0,
            Convention::Any,
            blocks_bernoulli(),
        ),
        DatasetName::Cifar100,
        k,
        &clean,
        None,
    );
    let elr = reference("elr_cifar100_asym", &clean, k, r, json!({}));
    let (class_sd, total_sd) = (binomial_sd(per_class, r), binomial_sd(k * per_class, r));
    for (who, noisy) in [("ours", &ours), ("ELR", &elr)] {
        let counts = pair_counts(&clean, noisy, k);
        let mut per_class_flips = Vec::new();
        for y in 0..k {
            let to_next = counts[ELR_BLOCKS[y]][y];
            assert_eq!(
                counts[y][y] + to_next,
                per_class,
                "{who}: class {y} flipped outside its block's next class"
            );
            assert!(
                (to_next as f64 - per_class as f64 * r).abs() < 5.0 * class_sd,
                "{who}: class {y} has {to_next} flips, expected 80 ± 5·{class_sd:.2}"
            );
            per_class_flips.push(to_next as f64);
        }
        let total = changed(&clean, noisy) as f64;
        assert!(
            (total - 8000.0).abs() < 4.0 * total_sd,
            "{who}: {total} flips, expected 8000 ± 4·{total_sd:.1}"
        );
        let ratio = variance(&per_class_flips) / class_sd.powi(2);
        assert!(
            (0.5..1.5).contains(&ratio),
            "{who}: per-class flip counts vary {ratio:.2}× the binomial variance (exact counts give 0)"
        );
    }
}

/// IEG's uniform noise: each sample with probability 0.4 takes a uniform class (maybe its own).
/// 10 classes × 2000: changed labels ~ Binomial(20000, 0.36) (mean 7200, sd 67.9); each
/// off-diagonal cell ~ Binomial(2000, 0.04) (mean 80, sd 8.76), 5 sd over 90 cells.
#[test]
fn bernoulli_symmetric_flips_realize_iegs_statistics() {
    let (k, per_class, r) = (10, 2000, 0.4);
    let clean = balanced_labels(k, per_class, 2);
    let variants = Variants {
        flips: Flips::Bernoulli,
        ..Variants::default()
    };
    let ours = ours(
        &spec(Kind::Symmetric, "0.4", 0, Convention::Any, variants),
        DatasetName::Cifar10,
        k,
        &clean,
        None,
    );
    let ieg = reference("ieg_uniform", &clean, k, r, json!({}));
    let p_changed = r * (k - 1) as f64 / k as f64;
    let total_sd = binomial_sd(k * per_class, p_changed);
    let cell_sd = binomial_sd(per_class, r / k as f64);
    for (who, noisy) in [("ours", &ours), ("IEG", &ieg)] {
        let total = changed(&clean, noisy) as f64;
        assert!(
            (total - 7200.0).abs() < 4.0 * total_sd,
            "{who}: {total} changed labels, expected 7200 ± 4·{total_sd:.1}"
        );
        let counts = pair_counts(&clean, noisy, k);
        for y in 0..k {
            for s in (0..k).filter(|&s| s != y) {
                let c = counts[s][y] as f64;
                assert!(
                    (c - 80.0).abs() < 5.0 * cell_sd,
                    "{who}: {c} samples of class {y} labelled {s}, expected 80 ± 5·{cell_sd:.2}"
                );
            }
        }
    }
}

/// The flip count is random under `bernoulli` and fixed under `exact`: over 20 seeds with the
/// `other` convention (every selected sample changes), exact always changes ⌊0.4·20000⌋ = 8000;
/// bernoulli's counts ~ Binomial(20000, 0.4) have a sample variance (19 degrees of freedom)
/// within 0.25–2.5 × 4800 except with probability below 2e-3.
#[test]
fn bernoulli_flip_counts_vary_between_seeds_and_exact_ones_do_not() {
    let clean = balanced_labels(10, 2000, 3);
    let count = |flips: Flips, seed: u64| {
        let variants = Variants {
            flips,
            ..Variants::default()
        };
        let s = spec(Kind::Symmetric, "0.4", seed, Convention::Other, variants);
        changed(&clean, &ours(&s, DatasetName::Cifar10, 10, &clean, None)) as f64
    };
    let exact: Vec<f64> = (0..20).map(|seed| count(Flips::Exact, seed)).collect();
    assert!(exact.iter().all(|&c| c == 8000.0), "{exact:?}");
    let sampled: Vec<f64> = (0..20).map(|seed| count(Flips::Bernoulli, seed)).collect();
    let ratio = variance(&sampled) / binomial_sd(20000, 0.4).powi(2);
    assert!((0.25..2.5).contains(&ratio), "{ratio:.2}: {sampled:?}");
}

/// Images of `n` samples with `d` random bytes each.
fn random_pixels(n: usize, d: usize, seed: u64) -> Vec<u8> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..n * d).map(|_| rng.gen()).collect()
}

fn cheng() -> Variants {
    Variants {
        instance_model: InstanceModel::Cheng,
        ..Variants::default()
    }
}

/// Mean flip rate ≈ noise for Cheng's model, ours and the reference's: q_i ~ N(0.4, 0.1²)
/// truncated to [0, 1] has mean 0.4 (the truncation is 4 sd away); a flip happens with
/// probability q_i, so the count over 10000 samples has variance Σ q_i(1 − q_i) ≈
/// 10000·(0.4·0.6 − 0.01) (sd 48): the rate is within 4·0.0048 of 0.4.
#[test]
fn cheng_instance_noise_realizes_the_requested_mean_rate() {
    let (n, d, k) = (10_000, 12, 10);
    let clean = balanced_labels(k, n / k, 4);
    let pixels = random_pixels(n, d, 5);
    let ours = ours(
        &spec(Kind::Instance, "0.4", 0, Convention::Any, cheng()),
        DatasetName::Cifar10,
        k,
        &clean,
        Some(&pixels),
    );
    let cheng_ref = reference(
        "cheng_instance",
        &clean,
        k,
        0.4,
        json!({"pixels": pixels, "d": d}),
    );
    let tolerance = 4.0 * (n as f64 * 0.23).sqrt() / n as f64;
    for (who, noisy) in [("ours", &ours), ("Cheng", &cheng_ref)] {
        let rate = changed(&clean, noisy) as f64 / n as f64;
        assert!(
            (rate - 0.4).abs() < tolerance,
            "{who}: flip rate {rate}, expected 0.4 ± {tolerance:.4}"
        );
    }
}

/// The flip targets' distribution for true class y, over the classes other than `skip`,
/// normalized.
fn target_shares(clean: &[usize], noisy: &[usize], k: usize, y: usize, skip: usize) -> Vec<f64> {
    let mut counts = vec![0.0; k];
    for (&c, &s) in clean.iter().zip(noisy) {
        if c == y && s != y && s != skip {
            counts[s] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    counts.iter().map(|c| c / total).collect()
}

/// Largest difference between two classes' flip-target shares over the targets they share.
fn largest_share_gap(clean: &[usize], noisy: &[usize], k: usize) -> f64 {
    let mut gap: f64 = 0.0;
    for a in 0..k {
        for b in (a + 1)..k {
            let (sa, sb) = (
                target_shares(clean, noisy, k, a, b),
                target_shares(clean, noisy, k, b, a),
            );
            for j in (0..k).filter(|&j| j != a && j != b) {
                gap = gap.max((sa[j] - sb[j]).abs());
            }
        }
    }
    gap
}

/// With one shared W, the flip target depends on the image only through x·W, whatever the class:
/// every sample has the same image, so every class flips to the others with the same
/// proportions (softmax of one logit vector with its own class masked). 4 classes × 3000
/// samples at noise 0.5: about 1500 flips per class, a share's sd at most √(0.25/1000) ≈ 0.016
/// over the two remaining targets' ~1000 flips, a difference's at most 0.023; 0.12 is 5 of those.
/// Xia's per-class projections give each class its own proportions, which the same bound
/// tells apart (the check that the statistic can fail).
#[test]
fn cheng_flip_targets_depend_on_the_image_only_through_the_shared_projection() {
    let (k, per_class, d) = (4, 3000, 6);
    let clean = balanced_labels(k, per_class, 6);
    let image = random_pixels(1, d, 7);
    let pixels: Vec<u8> = image
        .iter()
        .copied()
        .cycle()
        .take(k * per_class * d)
        .collect();
    let run = |variants: Variants| {
        let s = spec(Kind::Instance, "0.5", 0, Convention::Any, variants);
        ours(&s, DatasetName::Cifar10, k, &clean, Some(&pixels))
    };
    let cheng_ref = reference(
        "cheng_instance",
        &clean,
        k,
        0.5,
        json!({"pixels": pixels, "d": d}),
    );
    for (who, noisy) in [("ours", run(cheng())), ("Cheng", cheng_ref)] {
        let gap = largest_share_gap(&clean, &noisy, k);
        assert!(
            gap < 0.12,
            "{who}: classes' flip targets differ by {gap:.3}"
        );
    }
    let xia_gap = largest_share_gap(&clean, &run(Variants::default()), k);
    assert!(
        xia_gap > 0.12,
        "Xia's per-class projections: gap only {xia_gap:.3}"
    );
}

#[test]
fn same_seed_same_labels_for_every_variant() {
    let k = 100;
    let clean = balanced_labels(k, 30, 8);
    let pixels = random_pixels(clean.len(), 6, 9);
    let cases = [
        (Kind::Asymmetric, blocks_bernoulli(), DatasetName::Cifar100),
        (
            Kind::Symmetric,
            Variants {
                flips: Flips::Bernoulli,
                ..Variants::default()
            },
            DatasetName::Cifar100,
        ),
        (Kind::Instance, cheng(), DatasetName::Cifar100),
    ];
    for (kind, variants, dataset) in cases {
        let draw = |seed| {
            let s = spec(kind, "0.4", seed, Convention::Any, variants);
            ours(&s, dataset, k, &clean, Some(&pixels))
        };
        assert_eq!(draw(3), draw(3), "{kind:?} {variants:?}");
        assert_ne!(draw(3), draw(4), "{kind:?} {variants:?}");
    }
}

#[test]
fn variants_get_their_own_file_names_and_defaults_keep_the_old_ones() {
    let name = |kind, variants| {
        file_name(
            DatasetName::Cifar100,
            &spec(kind, "0.4", 0, Convention::Any, variants),
        )
    };
    assert_eq!(
        name(Kind::Asymmetric, Variants::default()),
        "cifar100-asymmetric-noise0.4-seed0.json"
    );
    assert_eq!(
        name(Kind::Asymmetric, blocks_bernoulli()),
        "cifar100-asymmetric-blocks-bernoulli-noise0.4-seed0.json"
    );
    assert_eq!(
        name(Kind::Instance, cheng()),
        "cifar100-instance-cheng-noise0.4-seed0.json"
    );
}

#[test]
fn a_variant_of_another_kind_is_refused_naming_its_flag() {
    for (kind, variants, flag) in [
        (Kind::Matrix, blocks_bernoulli(), "--flips"),
        (Kind::Symmetric, cheng(), "--instance-model"),
        (
            Kind::Instance,
            Variants {
                asym_classes: AsymClasses::Blocks,
                ..Variants::default()
            },
            "--asym-classes",
        ),
    ] {
        let err = spec(kind, "0.4", 0, Convention::Any, variants)
            .validate()
            .unwrap_err();
        assert!(format!("{err:#}").contains(flag), "{kind:?}: {err:#}");
    }
}

/// `trainer noise` on the real Fashion-MNIST: a variant is in the file name and the file, the
/// default leaves both as before, and a variant of another kind is refused with nothing written.
#[test]
fn noise_command_records_variants_and_refuses_misplaced_ones() {
    if !std::path::Path::new(common::FASHION_MNIST).exists() {
        eprintln!("SKIPPED: {} is missing", common::FASHION_MNIST);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &str, extra: &[&str]| {
        let out = dir.path().join(out).display().to_string();
        let mut args = vec![
            "noise",
            "--data-dir",
            common::FASHION_MNIST,
            "--noise",
            "0.4",
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        common::trainer(&args)
    };
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.path().join(name)).unwrap()).unwrap()
    };
    let out = run("a", &["--kind", "symmetric", "--flips", "bernoulli"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let file = read("a/fashion-mnist-symmetric-any-bernoulli-noise0.4-seed0.json");
    assert_eq!(file["flips"], "bernoulli");
    // Expected changed labels: 60000·0.4·0.9 = 21600, sd √(60000·0.36·0.64) = 118; 4 sd.
    let rate = file["realized_flip_rate"].as_f64().unwrap();
    assert!((rate * 60000.0 - 21600.0).abs() < 4.0 * 117.6, "{rate}");
    let out = run("b", &["--kind", "symmetric"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let file = read("b/fashion-mnist-symmetric-any-noise0.4-seed0.json");
    assert!(
        file.get("flips").is_none(),
        "a default variant is not written"
    );
    for (extra, flag) in [
        (&["--kind", "matrix", "--flips", "bernoulli"][..], "--flips"),
        (
            &["--kind", "asymmetric", "--asym-classes", "blocks"][..],
            "--asym-classes",
        ),
        (
            &["--kind", "symmetric", "--instance-model", "cheng"][..],
            "--instance-model",
        ),
    ] {
        let out = run("c", extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(
            common::stderr(&out).contains(flag),
            "{extra:?}: {}",
            common::stderr(&out)
        );
        assert!(!dir.path().join("c").exists(), "{extra:?} wrote output");
    }
}

/// `trainer evaluate` takes the same options for its generated labels, and refuses them where
/// they do not apply (another kind, another dataset, or a `--labels` file), naming the flag.
#[test]
fn evaluate_refuses_misplaced_variants_naming_the_flag() {
    if !std::path::Path::new(common::FASHION_MNIST).exists() {
        eprintln!("SKIPPED: {} is missing", common::FASHION_MNIST);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("run").display().to_string();
    let labels = dir.path().join("labels.json").display().to_string();
    for (extra, flag) in [
        (&["--kind", "matrix", "--flips", "bernoulli"][..], "--flips"),
        (
            &["--kind", "asymmetric", "--asym-classes", "blocks"][..],
            "--asym-classes",
        ),
        (
            &["--labels", &labels, "--instance-model", "cheng"][..],
            "--instance-model",
        ),
    ] {
        let mut args = vec![
            "evaluate",
            "--data-dir",
            common::FASHION_MNIST,
            "--backbone",
            "none",
            "--width",
            "8",
            "--noise",
            "0.4",
            "--epochs",
            "1",
            "--batch-size",
            "100",
            "--train-samples",
            "600",
            "--backend",
            "gloo",
            "--exp-dir",
            &exp,
        ];
        args.extend_from_slice(extra);
        let out = common::trainer(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            common::stderr(&out)
        );
        assert!(
            common::stderr(&out).contains(flag),
            "{extra:?}: {}",
            common::stderr(&out)
        );
        assert!(!dir.path().join("run/results.json").exists());
    }
}
