//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod ranks;

use std::path::PathBuf;
use std::process::{Command, Output};

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

pub const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("starting trainer")
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
