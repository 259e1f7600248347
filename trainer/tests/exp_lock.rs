//! One run per exp-dir: a second `pretrain` or `evaluate` on a folder a run holds refuses at
//! start, naming the holder, on 1 and on 2 ranks; after the holder is SIGKILLed the lock left
//! behind is not stale and the next run (a restart, a requeued job) takes it.

mod common;

use common::ranks::{as_rank, free_port, wait_all};
use common::{metrics, stderr, with_flags, FASHION_MNIST};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn pretrain_args(exp: &Path, seed: &str, epochs: &str) -> Vec<String> {
    [
        "pretrain",
        "--data-dir",
        FASHION_MNIST,
        "--width",
        "8",
        "--mlp",
        "32-32",
        "--epochs",
        epochs,
        "--warmup-epochs",
        "1",
        "--batch-size",
        "32",
        "--train-samples",
        "256",
        "--optimizer",
        "sgd",
        "--seed",
        seed,
        "--log-every",
        "1",
        "--knn-every",
        "0",
        "--backend",
        "gloo",
        "--exp-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([exp.display().to_string()])
    .collect()
}

fn trainer(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(args)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(args: &[String]) -> Output {
    wait_all(vec![trainer(args).spawn().unwrap()], LIMIT)
        .pop()
        .unwrap()
}

fn assert_in_use(o: &Output, holder_pid: u32) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is in use by another run"), "{err}");
    assert!(err.contains(&format!("pid {holder_pid},")), "{err}");
    assert!(err.contains("another --exp-dir"), "{err}");
}

#[test]
fn a_second_run_on_a_held_exp_dir_refuses_and_a_killed_holder_frees_it() {
    if !Path::new(FASHION_MNIST).exists() {
        eprintln!("skipping: {FASHION_MNIST} is missing");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("exp");
    let mut holder = trainer(&pretrain_args(&exp, "0", "500"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LIMIT;
    while metrics(&exp).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !metrics(&exp).is_empty(),
        "the holder never started training"
    );
    let config_before = std::fs::read_to_string(exp.join("config.toml")).unwrap();
    assert!(config_before.contains("seed = 0"), "{config_before}");

    // The same command with another seed: refused, the folder untouched.
    assert_in_use(&run(&pretrain_args(&exp, "5", "500")), holder.id());
    // On 2 ranks every rank stops: rank 0 names the holder, rank 1 points to rank 0.
    let port = free_port();
    let ranks: Vec<_> = (0..2)
        .map(|r| {
            let cmd = trainer(&pretrain_args(&exp, "5", "500"));
            as_rank(cmd, r, 2, port).spawn().unwrap()
        })
        .collect();
    let outputs = wait_all(ranks, LIMIT);
    assert_in_use(&outputs[0], holder.id());
    assert_eq!(outputs[1].status.code(), Some(2), "{}", stderr(&outputs[1]));
    assert!(stderr(&outputs[1]).contains("rank 0 could not lock"));
    // evaluate takes the same lock.
    let eval: Vec<String> = [
        "evaluate",
        "--data-dir",
        FASHION_MNIST,
        "--backbone",
        "none",
        "--arch",
        "resnet18",
        "--width",
        "8",
        "--train-samples",
        "256",
        "--test-samples",
        "64",
        "--batch-size",
        "32",
        "--epochs",
        "1",
        "--exp-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([exp.display().to_string()])
    .collect();
    assert_in_use(&run(&eval), holder.id());
    assert_eq!(
        std::fs::read_to_string(exp.join("config.toml")).unwrap(),
        config_before
    );
    assert!(!exp.join("results.json").exists());

    // SIGKILL leaves `.lock` behind; the kernel released the lock, so a restart takes it.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(exp.join(".lock").exists());
    let restart = with_flags(pretrain_args(&exp, "0", "500"), &[("--max-steps", "3")]);
    let child = trainer(&restart).spawn().unwrap();
    let restart_pid = child.id();
    let o = wait_all(vec![child], LIMIT).pop().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lock = std::fs::read_to_string(exp.join(".lock")).unwrap();
    assert!(lock.contains(&format!("pid {restart_pid},")), "{lock}");
    assert!(exp.join("backbone.safetensors").exists());
}
