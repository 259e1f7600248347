//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod bench;
pub mod folders;
pub mod ranks;
pub mod torch_compare;
pub mod whole;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Seeds libtorch's global generator and runs `draw` while holding a lock. The generator is one
/// per process and a test binary's tests run in parallel threads: without the lock, another
/// test's draws interleave with these and the "same seed, same tensors" assumption breaks.
pub fn seeded<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    static DRAWS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _draws = DRAWS.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed);
    draw()
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The project venv's Python (torch, numpy, cleanlab), or `$NLS_PYTHON`.
pub fn python() -> PathBuf {
    std::env::var_os("NLS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"))
}

/// Runs the fixture writer `tests/fixtures/<script>` into `dir`; returns `dir`.
pub fn write_fixtures(script: &str, dir: &Path) -> PathBuf {
    let out = Command::new(python())
        .arg(workspace_root().join("tests/fixtures").join(script))
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    dir.to_path_buf()
}

/// Run a Python snippet with the project venv (and `tests/python` importable); panics with its
/// stderr on failure.
pub fn run_python(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .env("PYTHONPATH", workspace_root().join("tests/python"))
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("starting python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run a Python snippet with the project venv, `input` on its stdin (and `tests/python`
/// importable); panics with its stderr on failure.
pub fn python_with_stdin(code: &str, input: &str) -> String {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(python())
        .env("PYTHONPATH", workspace_root().join("tests/python"))
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting python");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("starting trainer")
}

/// `trainer pack --data-dir data --out out` with `flags`.
pub fn trainer_pack(data: &Path, out: &Path, flags: &[&str]) -> Output {
    let (data, out) = (data.to_str().unwrap(), out.to_str().unwrap());
    trainer(&[&["pack", "--data-dir", data, "--out", out][..], flags].concat())
}

/// The trainer with `args` on one thread (the runs of a test compare across machines).
pub fn run(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap()
}

/// `<exp>/results.json`.
pub fn results(exp: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(exp.join("results.json")).unwrap()).unwrap()
}

/// The final top-1 accuracy of `results.json`.
pub fn final_acc(exp: &Path) -> f64 {
    results(exp)["metrics"]["acc1"].as_f64().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `args` with each `(flag, value)` replacing the flag's value, or appended (clap refuses a
/// flag given twice).
pub fn with_flags(mut args: Vec<String>, flags: &[(&str, &str)]) -> Vec<String> {
    for (flag, value) in flags {
        match args.iter().position(|a| a == flag) {
            Some(i) => args[i + 1] = value.to_string(),
            None => args.extend([flag.to_string(), value.to_string()]),
        }
    }
    args
}

/// The records of `<exp>/metrics.jsonl` so far: none while the file does not exist, and a line
/// still being written (not yet valid JSON) left out, so that a running job can be polled.
pub fn metrics(exp: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(exp.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Starts the trainer with `args` and sends it SIGUSR1 once `exp` has `epochs` metrics lines;
/// returns its exit code.
pub fn interrupt_after(args: &[String], exp: &Path, epochs: usize) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while metrics(exp).len() < epochs && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    child.wait().unwrap().code()
}

/// `metrics.jsonl` of `exp` without the wall-clock field.
pub fn metrics_without_time(exp: &Path) -> Vec<serde_json::Value> {
    let mut records = metrics(exp);
    for r in &mut records {
        r.as_object_mut().unwrap().remove("time");
    }
    records
}

/// Runs the trainer with `args` as `world` ranks of one Gloo group on this machine (one thread
/// each) and panics with every rank's output unless all succeed.
pub fn trainer_ranks(args: &[String], world: usize) -> Vec<Output> {
    let port = ranks::free_port();
    let children = (0..world)
        .map(|r| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
            cmd.args(args).env("OMP_NUM_THREADS", "1");
            ranks::as_rank(cmd, r, world, port).spawn().unwrap()
        })
        .collect();
    let outputs = ranks::wait_all(children, std::time::Duration::from_secs(120));
    ranks::assert_succeeded(&outputs);
    outputs
}

/// The small backbone the evaluation tests start from (VICReg, ResNet-18 of width 8, 2048
/// Fashion-MNIST images, 4 epochs: about 25 s), copied into `dir/pretrain/`; returns the copy's
/// export. Pretraining is deterministic on CPU, so it runs once per trainer build and the test
/// binaries share it (under `CARGO_TARGET_TMPDIR`, named by the binary's modification time).
pub fn small_pretrained_backbone(dir: &Path) -> String {
    static SHARED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let shared = SHARED.get_or_init(shared_backbone);
    let exp = dir.join("pretrain");
    std::fs::create_dir_all(&exp).unwrap();
    for name in ["backbone.safetensors", "backbone.json"] {
        std::fs::copy(shared.join(name), exp.join(name)).unwrap();
    }
    exp.join("backbone.safetensors").display().to_string()
}

fn shared_backbone() -> PathBuf {
    let trainer = Path::new(env!("CARGO_BIN_EXE_trainer"));
    let built = std::fs::metadata(trainer).unwrap().modified().unwrap();
    let stamp = built
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let done = root.join(format!("small-backbone-{stamp}"));
    if done.join("backbone.json").is_file() {
        return done;
    }
    let scratch = tempfile::tempdir_in(root).unwrap();
    let exp = scratch.path().join("pretrain");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "pretrain",
            "--data-dir",
            FASHION_MNIST,
            "--method",
            "vicreg",
            "--width",
            "8",
            "--mlp",
            "128-128",
            "--epochs",
            "4",
            "--warmup-epochs",
            "1",
            "--batch-size",
            "128",
            "--train-samples",
            "2048",
            "--optimizer",
            "lars",
            "--base-lr",
            "0.5",
            "--seed",
            "1",
            "--knn-every",
            "0",
            "--backend",
            "gloo",
            "--exp-dir",
        ])
        .arg(&exp)
        .env("OMP_NUM_THREADS", "2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Another process may have finished first: its copy is the same.
    let _ = std::fs::rename(&exp, &done);
    assert!(done.join("backbone.json").is_file());
    done
}
