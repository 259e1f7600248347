//! What a GPU machine needs from this repository, checked on the CPU: `scripts/gpu-check.sh
//! --dry-run` runs every section of the GPU check (toy sizes, no CUDA), and `scripts/setup.sh`
//! refuses a PyTorch the trainer cannot be built against, naming the ones it can.

mod common;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn the_gpu_check_runs_every_section_dry_on_the_cpu() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(common::workspace_root().join("scripts/gpu-check.sh"))
        .args([
            "--dry-run",
            "--trainer",
            env!("CARGO_BIN_EXE_trainer"),
            "--out",
        ])
        .arg(out.path())
        .env("NLS_GPU_PYTHON", common::python())
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{log}");
    let rows: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("gpu-check.json")).unwrap())
            .unwrap();
    let got: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["what"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Skipped only what needs a GPU; the rest ran and passed.
    let want = [
        ("torch.cuda.is_available()", "skip"),
        ("trainer pretrain runs on the device", "ok"),
        ("vicreg batch 16", "ok"),
        ("simclr batch 16", "ok"),
        ("SIGUSR1 at step", "ok"),
        ("freeze", "ok"),
        ("finetune", "ok"),
        ("mwn", "ok"),
        ("ssr", "ok"),
        ("rkd", "ok"),
        ("ieg", "ok"),
        ("nccl: two ranks, two GPUs", "skip"),
        ("gloo dist-check: two ranks, one device", "ok"),
        ("gloo pretrain: two ranks, one device", "ok"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}\n{log}");
    for ((what, status), (want_what, want_status)) in got.iter().zip(want) {
        assert!(
            what.starts_with(want_what) && status == want_status,
            "{what}: {status}, expected {want_what}: {want_status}\n{log}"
        );
    }
    let resume = &rows[4]["result"];
    assert!(
        resume.as_str().unwrap().ends_with("tensors identical"),
        "{resume}"
    );
    let table = std::fs::read_to_string(out.path().join("gpu-check.md")).unwrap();
    assert_eq!(table.lines().count(), want.len() + 2, "{table}");
}

#[test]
fn setup_refuses_an_unsupported_pytorch_naming_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    // A Python whose PyTorch is 2.10 (what env.sh asks an existing Python for).
    let python = dir.path().join("python");
    std::fs::write(&python, "#!/bin/sh\necho \"2.10.0+cu126 /opt/torch\"\n").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(common::workspace_root().join("scripts/setup.sh"))
        .arg("--no-build")
        .env("NLS_PYTHON", &python)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("PyTorch 2.10.0+cu126 is not supported") && err.contains("2.11, 2.13"),
        "{err}"
    );
}
