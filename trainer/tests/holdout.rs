//! `trainer evaluate --holdout-trusted N` on the real Fashion-MNIST: N clean images, N/K of each
//! class, leave the training set and become the trusted set of mwn and ieg with their true
//! labels; bad values are refused naming the flag; without the flag nothing changes (the
//! configuration, and so its hash, has no new keys).

mod common;

use common::{stderr, trainer, FASHION_MNIST};
use serde_json::Value;
use sha2::Digest;
use std::collections::HashSet;
use std::path::Path;
use trainer::data::{to_classes, Source, Split, SplitData};
use trainer::method::eval::config::EvalConfig;
use trainer::method::eval::holdout::{hold_out, split};
use trainer::method::eval::labels::NoisyLabels;

/// The first `n` Fashion-MNIST training images, with labels shifted by one class as the "noisy"
/// labels (so a mix-up of clean and noisy would show).
fn fashion(n: usize) -> (SplitData, NoisyLabels) {
    let source = Source::detect(Path::new(FASHION_MNIST)).unwrap();
    let mut train = source.load(Split::Train).unwrap();
    train.truncate(n);
    let clean = to_classes(&train.labels, 10).unwrap();
    let noisy = clean.iter().map(|&y| (y + 1) % 10).collect();
    let labels = NoisyLabels {
        clean,
        noisy,
        description: Value::Null,
        held_out: None,
    };
    (train, labels)
}

#[test]
fn held_out_images_leave_training_balanced_with_their_true_labels() {
    let (mut train, mut labels) = fashion(600);
    let original = train.images.shallow_clone();
    let original_ids = train.ids.clone();
    let original_labels = train.labels.clone();
    let held = hold_out(&mut train, &mut labels, 10, 100, 7)
        .unwrap()
        .unwrap();
    // Exactly N/K of each class, with the dataset's own (true) labels.
    let mut per_class = [0; 10];
    for (&id, &label) in held.ids.iter().zip(&held.labels) {
        let at = original_ids.iter().position(|&i| i == id).unwrap();
        assert_eq!(label as i64, original_labels[at], "sample {id}");
        per_class[label] += 1;
    }
    assert_eq!(per_class, [10; 10]);
    // The training set (what the epoch order indexes) is the other 500, none of them held out,
    // each still with its own image and labels.
    let held_ids: HashSet<u64> = held.ids.iter().copied().collect();
    assert_eq!(
        (train.len(), labels.clean.len(), labels.noisy.len()),
        (500, 500, 500)
    );
    assert!(train.ids.iter().all(|id| !held_ids.contains(id)));
    for (j, &id) in train.ids.iter().enumerate() {
        let at = original_ids.iter().position(|&i| i == id).unwrap();
        assert_eq!(train.labels[j], original_labels[at]);
        assert_eq!(labels.clean[j] as i64, original_labels[at]);
        assert_eq!(labels.noisy[j], (labels.clean[j] + 1) % 10);
        assert!(train.images.get(j as i64).equal(&original.get(at as i64)));
    }
    for (j, &id) in held.ids.iter().enumerate() {
        let at = original_ids.iter().position(|&i| i == id).unwrap();
        assert!(held.images.get(j as i64).equal(&original.get(at as i64)));
    }
    assert_eq!(held.images.size()[0], 100);
}

#[test]
fn same_seed_same_holdout_other_seed_other_holdout() {
    let (_, labels) = fashion(600);
    let a = split(&labels.clean, 10, 100, 3).unwrap();
    assert_eq!(a, split(&labels.clean, 10, 100, 3).unwrap());
    assert_ne!(
        a.held_out,
        split(&labels.clean, 10, 100, 4).unwrap().held_out
    );
    let all: HashSet<usize> = a.held_out.iter().chain(&a.train).copied().collect();
    assert_eq!(all.len(), 600);
}

#[test]
fn bad_holdout_sizes_are_refused_naming_the_flag() {
    let (_, labels) = fashion(600);
    let smallest = (0..10)
        .map(|c| labels.clean.iter().filter(|&&y| y == c).count())
        .min()
        .unwrap();
    for n in [15, 10 * smallest] {
        let err = split(&labels.clean, 10, n, 0).unwrap_err();
        assert!(
            format!("{err:#}").contains("--holdout-trusted"),
            "{n}: {err:#}"
        );
    }
}

/// The hash of a configuration that does not use the new keys is the hash of the same
/// configuration serialized without them (what it was before they existed), so such runs still
/// resume; using one changes it.
#[test]
fn without_the_flag_the_configuration_hash_is_unchanged() {
    let default = EvalConfig::default();
    let mut old = serde_json::to_value(&default).unwrap();
    let map = old.as_object_mut().unwrap();
    for key in ["data_dir", "exp_dir", "max_timeouts"] {
        map.remove(key);
    }
    // The keys of `EvalConfig` before the noise variants, protocols and recipes came.
    let before: Vec<String> =
        serde_json::from_str(include_str!("fixtures/eval_keys_v1.json")).unwrap();
    map.retain(|k, _| before.contains(k));
    let old_hash = hex::encode(sha2::Sha256::digest(serde_json::to_string(&old).unwrap()));
    assert_eq!(default.hash().unwrap(), old_hash);
    let held = EvalConfig {
        holdout_trusted: 100,
        ..EvalConfig::default()
    };
    assert_ne!(held.hash().unwrap(), old_hash);
}

fn evaluate(exp: &Path, extra: &[&str]) -> std::process::Output {
    let exp = exp.display().to_string();
    let mut args = vec![
        "evaluate",
        "--data-dir",
        FASHION_MNIST,
        "--backbone",
        "none",
        "--width",
        "8",
        "--kind",
        "symmetric",
        "--noise",
        "0.4",
        "--epochs",
        "1",
        "--batch-size",
        "100",
        "--train-samples",
        "600",
        "--test-samples",
        "200",
        "--backend",
        "gloo",
        "--exp-dir",
        &exp,
    ];
    args.extend_from_slice(extra);
    trainer(&args)
}

/// `--meta-per-class 1000` is more than any class has among 600 images: picking the trusted
/// set from the training images would refuse the run, so it succeeds only if the held-out
/// images are the trusted set.
#[test]
fn mwn_trains_on_the_rest_and_results_say_how_many_were_held_out() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("run");
    let flags = [
        "--method",
        "mwn",
        "--holdout-trusted",
        "100",
        "--meta-per-class",
        "1000",
    ];
    let out = evaluate(&exp, &flags);
    assert!(out.status.success(), "{}", stderr(&out));
    let results: Value =
        serde_json::from_slice(&std::fs::read(exp.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["metrics"]["held_out_trusted"], 100);
    assert_eq!(results["metrics"]["train_images"], 500);
    assert_eq!(
        results["held_out_trusted_ids"].as_array().unwrap().len(),
        100
    );
    assert_eq!(results["config"]["holdout_trusted"], 100);
}

#[test]
fn a_bad_holdout_stops_the_run_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["15", "1000"] {
        let exp = dir.path().join(n);
        let out = evaluate(&exp, &["--method", "ieg", "--holdout-trusted", n]);
        assert_eq!(out.status.code(), Some(2), "{n}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("--holdout-trusted"),
            "{n}: {}",
            stderr(&out)
        );
        assert!(!exp.join("results.json").exists() && !exp.join("config.toml").exists());
    }
}
