//! Whole-network runs under label noise, and the checks every one must pass whichever method
//! trains it: a run stopped by SIGUSR1 resumes bit-exactly, and two ranks train the network one
//! process trains.

use super::{
    final_acc, interrupt_after, metrics_without_time, results, run, stderr, trainer_ranks,
    with_flags, FASHION_MNIST,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;
use trainer::checkpoint::CheckpointDir;

/// A narrow ResNet-32 (width 4) from scratch with a linear classifier: the whole-network
/// methods' test network.
pub const SCRATCH_RESNET32: [(&str, &str); 4] = [
    ("--backbone", "none"),
    ("--arch", "resnet32"),
    ("--width", "4"),
    ("--head", "linear"),
];

/// `trainer train` of the whole network (`--weights finetune`) on Fashion-MNIST under 60%
/// symmetric noise, without early stopping, on Gloo, into `exp`; then `flags`, each replacing
/// a default or added.
pub fn noisy_train(exp: &Path, seed: u64, flags: &[(&str, &str)]) -> Vec<String> {
    let seed = seed.to_string();
    let exp = exp.display().to_string();
    let base = [
        "train",
        "--data-dir",
        FASHION_MNIST,
        "--weights",
        "finetune",
        "--kind",
        "symmetric",
        "--noise",
        "0.6",
        "--stopping",
        "0",
        "--seed",
        &seed,
        "--backend",
        "gloo",
        "--exp-dir",
        &exp,
    ];
    with_flags(base.iter().map(|s| s.to_string()).collect(), flags)
}

/// [`run`], panicking with the trainer's stderr unless it succeeds.
pub fn run_ok(args: &[String]) {
    let out = run(args);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The newest checkpoint's tensors.
pub fn checkpoint_tensors(exp: &Path) -> HashMap<String, Tensor> {
    let (_, _, ckpt) = CheckpointDir::new(exp.join("checkpoints"), 1)
        .load_latest()
        .unwrap()
        .expect("a checkpoint");
    ckpt.tensors.into_iter().collect()
}

/// Runs `args(exp)` straight, and again stopped by SIGUSR1 after its first epoch and resumed:
/// results, metrics and every checkpointed tensor (network, optimizers, the method's state
/// under `method/`) must be identical. Returns the checkpoint's tensor names.
pub fn assert_resumes_bit_exactly(dir: &Path, args: impl Fn(&Path) -> Vec<String>) -> Vec<String> {
    let (straight, resumed) = (dir.join("straight"), dir.join("resumed"));
    run_ok(&args(&straight));
    assert_eq!(interrupt_after(&args(&resumed), &resumed, 1), Some(75));
    run_ok(&args(&resumed));
    assert_eq!(results(&straight)["metrics"], results(&resumed)["metrics"]);
    assert_eq!(
        metrics_without_time(&straight),
        metrics_without_time(&resumed)
    );
    let (a, b) = (checkpoint_tensors(&straight), checkpoint_tensors(&resumed));
    assert!(a.keys().any(|k| k.starts_with("backbone/")));
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after the resume");
    }
    a.into_keys().collect()
}

/// The largest relative difference between two runs' per-epoch losses.
pub fn loss_gap(a: &[Value], b: &[Value]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let (x, y) = (x["loss"].as_f64().unwrap(), y["loss"].as_f64().unwrap());
            (x - y).abs() / x.abs()
        })
        .fold(0.0, f64::max)
}

/// Runs `args(exp)` on one rank and on two Gloo ranks; returns the relative gap of their
/// per-epoch losses and the difference of their final top-1 accuracies.
pub fn one_and_two_ranks(dir: &Path, args: impl Fn(&Path) -> Vec<String>) -> (f64, f64) {
    let (one, two) = run_on_one_and_two_ranks(dir, args);
    let gap = loss_gap(&metrics_without_time(&one), &metrics_without_time(&two));
    let acc = (final_acc(&one) - final_acc(&two)).abs();
    eprintln!("1 vs 2 ranks: loss {gap:.2e} relative, top-1 {acc}");
    (gap, acc)
}

/// Runs `args(exp)` on one rank into `dir/one` and on two Gloo ranks into `dir/two`; returns
/// the two experiment directories.
pub fn run_on_one_and_two_ranks(
    dir: &Path,
    args: impl Fn(&Path) -> Vec<String>,
) -> (PathBuf, PathBuf) {
    let (one, two) = (dir.join("one"), dir.join("two"));
    run_ok(&args(&one));
    trainer_ranks(&args(&two), 2);
    (one, two)
}
