//! Golden-file tests of rendered scripts: single-node GPU, multi-node, array and CPU.
//!
//! The files in `tests/golden/` were written once by the renderer (NLS_UPDATE_GOLDEN=1
//! cargo test --release -p launcher --test golden) and checked by eye; since then the test
//! compares and fails with a line diff when a rendering changes. Regenerate them the same way
//! after an intended change, and read the diff before committing.

mod common;

use launcher::config::{Experiment, JobArgs};
use launcher::launch;
use std::path::{Path, PathBuf};

fn golden(name: &str, script: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("NLS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, script).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (NLS_UPDATE_GOLDEN=1 writes it)", path.display()));
    if want != script {
        let diff: Vec<String> = diff_lines(&want, script);
        panic!(
            "{} changed (NLS_UPDATE_GOLDEN=1 rewrites it):\n{}",
            path.display(),
            diff.join("\n")
        );
    }
}

/// Lines that differ, position by position (enough to see what changed).
fn diff_lines(want: &str, got: &str) -> Vec<String> {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    (0..w.len().max(g.len()))
        .filter(|&i| w.get(i) != g.get(i))
        .map(|i| {
            format!(
                "line {}:\n- {}\n+ {}",
                i + 1,
                w.get(i).unwrap_or(&""),
                g.get(i).unwrap_or(&"")
            )
        })
        .collect()
}

fn base(exp: &str) -> JobArgs {
    JobArgs {
        exp_dir: Some(PathBuf::from(exp)),
        trainer: Some(PathBuf::from("/opt/nls/bin/trainer")),
        template: Some(common::template()),
        ..JobArgs::default()
    }
}

fn render(exp: &Experiment) -> String {
    launch::plan(exp, Path::new("/home/user/nls"))
        .unwrap()
        .unwrap()
        .script
}

fn pretrain() -> Vec<String> {
    [
        "pretrain",
        "--data-dir",
        "/data/cifar10",
        "--method",
        "vicreg",
        "--epochs",
        "100",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn single_node_gpu() {
    let args = JobArgs {
        ngpus: Some(8),
        time: Some(240),
        ..base("/scratch/runs/vicreg")
    };
    let exp = Experiment::load(None, &args, &pretrain()).unwrap();
    golden("single_gpu.sh", &render(&exp));
}

#[test]
fn multi_node_with_every_option() {
    let args = JobArgs {
        nodes: Some(4),
        ngpus: Some(8),
        cpus_per_task: Some(10),
        mem: Some("480G".into()),
        partition: Some("gpu".into()),
        account: Some("proj-123".into()),
        qos: Some("high".into()),
        constraint: Some("a100&ib".into()),
        time: Some(1440),
        signal_delay: Some(120),
        max_timeouts: Some(5),
        name: Some("vicreg r50".into()),
        ..base("/scratch/runs/vicreg-r50")
    };
    let exp = Experiment::load(None, &args, &pretrain()).unwrap();
    golden("multi_node.sh", &render(&exp));
}

#[test]
fn cpu_mode() {
    let args = JobArgs {
        cpu: true,
        nodes: Some(2),
        tasks_per_node: Some(2),
        cpus_per_task: Some(4),
        time: Some(30),
        ..base("/scratch/runs/cpu")
    };
    let exp = Experiment::load(None, &args, &pretrain()).unwrap();
    golden("cpu.sh", &render(&exp));
}

#[test]
fn array() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "sweep.toml",
        "command = [\"evaluate\", \"--backbone\", \"b.safetensors\"]\n\
         [job]\nngpus = 1\ntime = 60\nparallel = 4\n\
         [grid]\nnoise = [0.2, 0.4]\nseed = [0, 1, 2]\n",
    );
    let exp = Experiment::load(Some(&file), &base("/scratch/runs/sweep"), &[]).unwrap();
    golden("array.sh", &render(&exp));
}
