//! Checks every whole-network run must pass, whichever method trains it: a run stopped by
//! SIGUSR1 resumes bit-exactly, and two ranks train the network one process trains.

use super::{
    final_acc, interrupt_after, metrics_without_time, results, run, stderr, trainer_ranks,
};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;
use trainer::checkpoint::CheckpointDir;

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
    let (one, two) = (dir.join("one"), dir.join("two"));
    run_ok(&args(&one));
    trainer_ranks(&args(&two), 2);
    let gap = loss_gap(&metrics_without_time(&one), &metrics_without_time(&two));
    let acc = (final_acc(&one) - final_acc(&two)).abs();
    eprintln!("1 vs 2 ranks: loss {gap:.2e} relative, top-1 {acc}");
    (gap, acc)
}
