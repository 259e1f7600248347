//! `report` checks its metric before it writes anything, and reports a bare `trainer` run
//! folder (metrics.jsonl, no launcher files) with its final numbers and curves.

mod common;
mod runs;

use runs::{nls, read, text, trainer};
use std::path::Path;

/// A two-configuration sweep folder as nls-launch leaves it, with hand-written results.
fn sweep_with_results(d: &Path) {
    common::write(
        d,
        "exp/job.toml",
        "[job]\nexp_dir = \"exp\"\ncommand = [\"evaluate\"]\n[grid]\nnoise = [0.2, 0.4]\n",
    );
    for (name, acc) in [("noise0.2", 0.7), ("noise0.4", 0.5)] {
        let run = d.join("exp/runs").join(name);
        std::fs::create_dir_all(&run).unwrap();
        let results = format!(r#"{{"metrics": {{"acc1": {acc}, "best_epoch": 3}}}}"#);
        std::fs::write(run.join("results.json"), results).unwrap();
    }
}

#[test]
fn an_unknown_metric_is_refused_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("exp")).unwrap();
    sweep_with_results(d);
    let good = nls(d).args(["report", "exp"]).output().unwrap();
    assert!(good.status.success(), "{}", text(&good));
    let files = ["report.csv", "summary.csv", "report.json", "report.png"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(d.join("exp").join(f)).unwrap())
        .collect();
    assert!(read(&d.join("exp/summary.csv")).contains("0.2,0.7,0,1"));

    let bad = nls(d)
        .args(["report", "exp", "--metric", "bogus"])
        .output()
        .unwrap();
    let said = text(&bad);
    assert_eq!(bad.status.code(), Some(2), "{said}");
    assert!(
        said.contains("no run has the metric `bogus`")
            && said.contains("Metrics the runs have: acc1, best_epoch"),
        "{said}"
    );
    for (f, was) in files.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(d.join("exp").join(f)).unwrap(),
            was,
            "{f} changed"
        );
    }
}

#[test]
fn a_bare_trainer_run_gets_its_final_numbers_and_curves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = d.join("bare");
    // kNN after every epoch instead of never.
    let mut args = runs::tiny_pretrain(256, 1);
    let at = args.iter().position(|a| a == "--knn-every").unwrap();
    args[at + 1] = "1".into();
    args.extend(["--knn-train-samples", "256", "--knn-test-samples", "256"].map(String::from));
    let out = std::process::Command::new(trainer())
        .args(&args)
        .arg("--exp-dir")
        .arg(&run)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let report = nls(d).args(["report", "bare"]).output().unwrap();
    let said = text(&report);
    assert!(report.status.success(), "{said}");
    // The expectations, read from metrics.jsonl here.
    let lines = runs::metrics(&run);
    let loss = lines.iter().rev().find_map(|l| l["loss"].as_f64()).unwrap();
    let knn = lines
        .iter()
        .rev()
        .find_map(|l| l["knn_acc1"].as_f64())
        .unwrap();
    assert!(
        said.contains(&format!("final loss {loss:.4} (step 8")),
        "{said}"
    );
    assert!(
        said.contains(&format!("kNN top-1 accuracy {:.1}%", knn * 100.0)),
        "{said}"
    );
    let png = std::fs::read(run.join("curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}
