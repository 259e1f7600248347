//! Every configuration goes through the trainer's own parser before anything is written or
//! submitted (`trainer check-args`), and `--exp-dir` is given once. Real trainer, stand-in
//! sbatch that records whether it was called.

mod common;
mod runs;

use runs::{text, trainer};
use std::path::{Path, PathBuf};
use std::process::Output;

fn nls(dir: &Path, args: &[&str]) -> Output {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    common::fake_bin(&bin, "sbatch", r#"echo "$@" >> sbatch.calls; echo 77"#);
    common::fake_bin(&bin, "squeue", "exit 0");
    runs::nls(dir)
        .args(args)
        .env("PATH", common::path_with(&bin))
        .output()
        .unwrap()
}

const EVAL: &str = r#""evaluate", "--data-dir", "d", "--backbone", "none""#;

/// A sweep file with `grid` under `command = [evaluate ...]` and the real trainer.
fn sweep(dir: &Path, grid: &str) -> PathBuf {
    let text = format!(
        "command = [{EVAL}]\n[job]\nexp_dir = \"exp\"\ncpu = true\ntrainer = \"{}\"\n{grid}",
        trainer().display()
    );
    common::write(dir, "sweep.toml", &text)
}

/// Refused with exit 2, naming `parts`; no exp-dir, no sbatch call.
fn assert_refused(dir: &Path, out: &Output, parts: &[&str]) {
    let said = text(out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    for p in parts {
        assert!(said.contains(p), "{p:?} not in: {said}");
    }
    assert!(!dir.join("exp").exists(), "nothing written: {said}");
    assert!(!dir.join("sbatch.calls").exists(), "nothing submitted");
}

#[test]
fn a_misspelt_grid_key_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sweep(d, "[grid]\nlossx = [\"ce\"]\nseed = [0, 1]\n");
    for how in [&[][..], &["--dry-run"], &["--local"]] {
        let mut args = vec!["run", "sweep.toml"];
        args.extend(how);
        let out = nls(d, &args);
        assert_refused(
            d,
            &out,
            &[
                "lossx_ce-seed0",
                "unexpected argument '--lossx'",
                "nothing was written or submitted",
            ],
        );
    }
}

#[test]
fn a_bad_value_names_the_first_configuration_that_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sweep(d, "[grid]\nloss = [\"ce\", \"cee\"]\nseed = [0, 1]\n");
    let out = nls(d, &["run", "sweep.toml"]);
    assert_refused(
        d,
        &out,
        &["loss_cee-seed0", "invalid value 'cee' for '--loss <LOSS>'"],
    );
    assert!(!text(&out).contains("loss_ce-seed0 "), "{}", text(&out));
}

#[test]
fn a_value_the_config_layer_refuses_is_caught_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sweep(d, "[grid]\nepochs = [3, 0]\n");
    let out = nls(d, &["run", "sweep.toml", "--dry-run"]);
    assert_refused(d, &out, &["epochs0", "--epochs must be at least 1"]);
}

#[test]
fn a_misspelt_subcommand_or_flag_of_a_single_job_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = trainer();
    let t = t.to_str().unwrap();
    let base = ["--cpu", "--trainer", t, "--exp-dir", "exp", "--"];
    let cases: [(&[&str], &str); 2] = [
        (
            &["pretrian", "--data-dir", "d"],
            "unrecognized subcommand 'pretrian'",
        ),
        (
            &["pretrain", "--data-dir", "d", "--bogus", "1"],
            "unexpected argument '--bogus'",
        ),
    ];
    for (cmd, says) in cases {
        for extra in [&[][..], &["--local"], &["--dry-run"]] {
            let mut args: Vec<&str> = extra.to_vec();
            args.extend(base);
            args.extend(cmd);
            assert_refused(d, &nls(d, &args), &[says]);
        }
    }
}

#[test]
fn a_dry_run_prints_the_first_task_and_the_number_of_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sweep(d, "[grid]\nloss = [\"ce\", \"gce\"]\nseed = [0, 1, 2]\n");
    let out = nls(d, &["run", "sweep.toml", "--dry-run"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let run = d.join("exp/runs/loss_ce-seed0");
    let want = format!(
        "# 6 task(s) to run; task 0 (loss_ce-seed0) runs on every rank:\n#   {} evaluate \
         --data-dir d --backbone none --loss ce --seed 0 --exp-dir {}\n",
        trainer().display(),
        run.display()
    );
    assert!(said.contains(&want), "{want} not in {said}");
    assert!(!d.join("exp").exists());
}

#[test]
fn exp_dir_given_to_nls_launch_and_to_the_trainer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let t = trainer();
    let args = [
        "--cpu",
        "--trainer",
        t.to_str().unwrap(),
        "--exp-dir",
        "exp",
        "--",
        "pretrain",
        "--data-dir",
        "d",
        "--exp-dir",
        "other",
    ];
    for extra in [&[][..], &["--local"], &["--dry-run"]] {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend(args);
        let out = nls(d, &all);
        assert_refused(
            d,
            &out,
            &["--exp-dir is given twice", "--exp-dir (command line)"],
        );
        assert!(!d.join("other").exists());
    }
}

/// `trainer train` is `evaluate` under its other name: a sweep of it gets each run's
/// `--exp-dir` too (without it every run would be refused for lacking one).
#[test]
fn a_train_sweep_gets_its_exp_dirs_like_an_evaluate_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = format!(
        "command = [\"train\", \"--data-dir\", \"d\", \"--backbone\", \"none\"]\n[job]\n\
         exp_dir = \"exp\"\ncpu = true\ntrainer = \"{}\"\n[grid]\nseed = [0, 1]\n",
        trainer().display()
    );
    common::write(d, "sweep.toml", &file);
    let out = nls(d, &["run", "sweep.toml", "--dry-run"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let run = d.join("exp/runs/seed0");
    let want = format!(
        "{} train --data-dir d --backbone none --seed 0 --exp-dir {}\n",
        trainer().display(),
        run.display()
    );
    assert!(said.contains(&want), "{want} not in {said}");
}
