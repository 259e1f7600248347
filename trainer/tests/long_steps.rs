//! Steps before training that can run long: they end (impossible noise requests are refused,
//! not searched for ever), report progress, and stop on SIGTERM / SIGINT with nothing written.

mod common;

use common::{ranks::wait_all, FASHION_MNIST};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn have_data() -> bool {
    let ok = Path::new(FASHION_MNIST).exists();
    if !ok {
        eprintln!("skipping: {FASHION_MNIST} is missing (scripts/setup.sh installs it)");
    }
    ok
}

fn trainer_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(args)
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs the trainer, killing it after `limit` (a hang shows as a kill, not a stuck test).
fn run_within(args: &[&str], limit: Duration) -> Output {
    let child = trainer_cmd(args).spawn().unwrap();
    wait_all(vec![child], limit).pop().unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn matrix_noise_1_is_refused_at_once_by_noise_and_evaluate() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("labels");
    let exp = tmp.path().join("exp");
    let noise = [
        "noise",
        "--data-dir",
        FASHION_MNIST,
        "--kind",
        "matrix",
        "--noise",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    let evaluate = [
        "evaluate",
        "--data-dir",
        FASHION_MNIST,
        "--exp-dir",
        exp.to_str().unwrap(),
        "--backbone",
        "none",
        "--arch",
        "resnet18",
        "--width",
        "8",
        "--kind",
        "matrix",
        "--noise",
        "1",
        "--train-samples",
        "1000",
        "--test-samples",
        "100",
    ];
    for args in [&noise[..], &evaluate[..]] {
        let o = run_within(args, Duration::from_secs(60));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", args[0]);
        assert!(err.contains("no noise matrix exists"), "{}: {err}", args[0]);
        assert!(err.contains("noise level of at most 0.99999"), "{err}");
    }
    assert!(entries(&out).is_empty());
    assert!(!exp.join("results.json").exists());
}

#[test]
fn noise_generation_over_many_seeds_logs_its_progress() {
    if !have_data() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("labels");
    let o = run_within(
        &[
            "noise",
            "--data-dir",
            FASHION_MNIST,
            "--kind",
            "symmetric",
            "--noise",
            "0.2",
            "--seeds",
            "0-19",
            "--out",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // A line at every tenth of the 20 configurations: 2, 4, ..., 18 (20 is the summary).
    for done in (2..20).step_by(2) {
        let line = format!("generating noise configurations: {done}/20 ({}%", done * 5);
        assert!(err.contains(&line), "no '{line}' in {err}");
    }
    assert_eq!(entries(&out).len(), 20);
}

/// A long generation (instance noise on 60000 images, 400 seeds: minutes) is stopped by one
/// signal within seconds, exits non-zero naming the signal, and writes nothing.
#[test]
fn sigterm_and_sigint_stop_noise_generation_with_nothing_written() {
    if !have_data() {
        return;
    }
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("labels");
        let child = trainer_cmd(&[
            "noise",
            "--data-dir",
            FASHION_MNIST,
            "--kind",
            "instance",
            "--noise",
            "0.2",
            "--seeds",
            "0-399",
            "--out",
            out.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
        // Loading the data takes about a second; then generation runs for minutes.
        std::thread::sleep(Duration::from_secs(3));
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let sent = Instant::now();
        let o = wait_all(vec![child], Duration::from_secs(60))
            .pop()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            sent.elapsed() < Duration::from_secs(30),
            "{signal}: took too long"
        );
        assert_eq!(o.status.code(), Some(2), "{signal}: {err}");
        let name = if signal == Signal::SIGINT {
            "SIGTERM"
        } else {
            signal.as_str()
        };
        let needle = format!("stopped by {name} while generating noise configurations");
        assert!(err.contains(&needle), "{signal}: {err}");
        assert!(entries(&out).is_empty(), "{signal}: {:?}", entries(&out));
    }
}
