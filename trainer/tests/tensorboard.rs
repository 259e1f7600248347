//! TensorBoard scalars of real `trainer pretrain` and `trainer evaluate` runs, read back with
//! the `tensorboard` package's own reader (`EventAccumulator`, which checks every record's
//! CRCs) and compared with the runs' `metrics.jsonl`: every tag, step and value. Both runs are
//! interrupted and resumed first, pretraining by SIGKILL after its last checkpoint so that the
//! killed attempt leaves steps the resumed run logs again.

mod common;

use common::{metrics, run_python, stderr, FASHION_MNIST};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// (step, value) pairs of each scalar tag, values as the float32 TensorBoard stores (compared
/// as float32: the decimal text each side goes through need not round-trip a double exactly).
type Curves = BTreeMap<String, Vec<(u64, f32)>>;

/// Every scalar the tensorboard package reads from `<exp>/tensorboard`.
fn tensorboard_scalars(exp: &Path) -> Curves {
    let code = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})
acc.Reload()
print(json.dumps({t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}))
"#;
    let dir = exp.join("tensorboard").display().to_string();
    let read: BTreeMap<String, Vec<(u64, f64)>> =
        serde_json::from_str(run_python(code, &[&dir]).trim()).unwrap();
    read.into_iter()
        .map(|(tag, points)| (tag, points.iter().map(|&(s, v)| (s, v as f32)).collect()))
        .collect()
}

/// The curves `metrics.jsonl` holds, under the tags the README documents. Fields not in `tags` must be in `ignored` (or, with `other`,
/// go to `<other>/<field>`).
fn expected_curves(
    exp: &Path,
    tags: &[(&str, &str)],
    ignored: &[&str],
    other: Option<&str>,
) -> Curves {
    let mut curves = Curves::new();
    for record in metrics(exp) {
        let step = record["step"].as_u64().unwrap();
        for (field, value) in record.as_object().unwrap() {
            if ignored.contains(&field.as_str()) || value.is_null() {
                continue;
            }
            let tag = match (tags.iter().find(|(f, _)| f == field), other) {
                (Some((_, tag)), _) => tag.to_string(),
                (None, Some(group)) => format!("{group}/{field}"),
                (None, None) => panic!("field {field} of {record} has no expected tag"),
            };
            let value = value.as_f64().unwrap() as f32;
            curves.entry(tag).or_default().push((step, value));
        }
    }
    curves
}

fn event_files(exp: &Path) -> usize {
    std::fs::read_dir(exp.join("tensorboard"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_str().unwrap().starts_with("events.out.tfevents.")
        })
        .count()
}

fn trainer(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(args).env("OMP_NUM_THREADS", "1");
    cmd
}

fn args(line: String, exp: &Path) -> Vec<String> {
    line.split_whitespace()
        .map(str::to_string)
        .chain(["--exp-dir".to_string(), exp.display().to_string()])
        .collect()
}

/// The step of the newest checkpoint file in `<exp>/checkpoints`.
fn newest_checkpoint_step(exp: &Path) -> u64 {
    std::fs::read_dir(exp.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("ckpt-")?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()
        })
        .max()
        .expect("a checkpoint")
}

#[test]
fn pretraining_scalars_match_metrics_jsonl_after_a_killed_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("pretrain");
    // 256 images, batch 32: 8 steps per epoch, 16 in all; a checkpoint every 4 steps.
    let run = args(
        format!(
            "pretrain --data-dir {FASHION_MNIST} --method vicreg --width 8 --mlp 64-64 \
             --epochs 2 --warmup-epochs 1 --batch-size 32 --train-samples 256 --optimizer sgd \
             --base-lr 0.5 --seed 3 --log-every 1 --checkpoint-every 4 --knn-every 1 \
             --knn-train-samples 256 --knn-test-samples 128 --backend gloo"
        ),
        &exp,
    );
    let mut child = trainer(&run)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let logged = || {
        metrics(&exp)
            .iter()
            .filter_map(|m| m["step"].as_u64())
            .max()
    };
    while logged().unwrap_or(0) < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (killed_at, checkpoint) = (logged().unwrap(), newest_checkpoint_step(&exp));
    assert!(
        killed_at > checkpoint,
        "the killed attempt must leave steps past its checkpoint ({killed_at} <= {checkpoint})"
    );

    let resumed = trainer(&run).output().unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("resuming from"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(event_files(&exp), 2, "one event file per attempt");

    let tags = [
        ("loss", "train/loss"),
        ("repr", "train/loss_invariance"),
        ("std", "train/loss_variance"),
        ("cov", "train/loss_covariance"),
        ("lr", "train/lr"),
        ("images_per_s", "train/images_per_s"),
        ("data_s", "time/data_s"),
        ("compute_s", "time/compute_s"),
        ("knn_acc1", "knn/acc1"),
    ];
    let ignored = ["step", "epoch", "steps", "time", "knn_k"];
    let expected = expected_curves(&exp, &tags, &ignored, None);
    assert_eq!(
        expected.len(),
        tags.len(),
        "every field logged: {expected:?}"
    );
    let loss_steps: Vec<u64> = expected["train/loss"].iter().map(|(s, _)| *s).collect();
    assert_eq!(loss_steps, (1..=16).collect::<Vec<u64>>());
    assert_eq!(expected["knn/acc1"].len(), 3, "kNN at steps 0, 8 and 16");
    // Timings differ between the attempts: a step the killed attempt logged and TensorBoard
    // kept would show here as a duplicate step or a different value.
    assert_eq!(tensorboard_scalars(&exp), expected);
}

#[test]
fn evaluation_scalars_match_metrics_jsonl_after_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("evaluate");
    let run = args(
        format!(
            "evaluate --data-dir {FASHION_MNIST} --backbone none --width 8 --kind symmetric \
             --noise 0.6 --method ssr --epochs 5 --batch-size 64 --train-samples 512 \
             --test-samples 512 --stopping 0 --backend gloo"
        ),
        &exp,
    );
    assert_eq!(common::interrupt_after(&run, &exp, 2), Some(75));
    let resumed = trainer(&run).output().unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("resuming from"),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(event_files(&exp), 2, "one event file per attempt");

    let tags = [
        ("loss", "train/loss"),
        ("lr_head", "train/lr"),
        ("noisy_predicted_true", "train/noisy_predicted_true"),
        ("acc1", "test/acc1"),
        ("acc5", "test/acc5"),
        ("best_acc1", "test/best_acc1"),
        ("best_acc5", "test/best_acc5"),
    ];
    let expected = expected_curves(&exp, &tags, &["step", "epoch", "time"], Some("method"));
    let acc_steps: Vec<u64> = expected["test/acc1"].iter().map(|(s, _)| *s).collect();
    assert_eq!(acc_steps, [1, 2, 3, 4, 5]);
    for tag in ["train/noisy_predicted_true", "method/ssr_precision"] {
        assert_eq!(expected[tag].len(), 5, "{tag} every epoch");
    }
    assert_eq!(tensorboard_scalars(&exp), expected);
}
