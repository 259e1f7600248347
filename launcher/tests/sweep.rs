//! Sweep expansion (order, names, unions), task files and skipping finished configurations.

mod common;

use launcher::config::{Experiment, JobArgs};
use launcher::{launch, sweep};

fn experiment(dir: &std::path::Path, grid: &str) -> Experiment {
    let file = common::write(
        dir,
        "sweep.toml",
        &format!("command = [\"evaluate\", \"--epochs\", \"3\"]\n[job]\nparallel = 2\n{grid}"),
    );
    let flags = JobArgs {
        exp_dir: Some(dir.join("exp")),
        trainer: Some("trainer".into()),
        ..JobArgs::default()
    };
    Experiment::load(Some(&file), &flags, &[]).unwrap()
}

#[test]
fn keys_sorted_last_fastest_and_named_by_values() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(
        dir.path(),
        "[grid]\nseed = [0, 1]\nloss = [\"ce\", \"elr\"]\nnoise = [0.4]\n",
    );
    let names: Vec<String> = sweep::plan(&exp)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        [
            "loss_ce-noise0.4-seed0",
            "loss_ce-noise0.4-seed1",
            "loss_elr-noise0.4-seed0",
            "loss_elr-noise0.4-seed1"
        ]
    );
    let t = &sweep::plan(&exp).unwrap()[1];
    let run = dir.path().join("exp/runs/loss_ce-noise0.4-seed1");
    assert_eq!(
        t.args,
        [
            "evaluate",
            "--epochs",
            "3",
            "--loss",
            "ce",
            "--noise",
            "0.4",
            "--seed",
            "1",
            "--exp-dir"
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([run.display().to_string()])
        .collect::<Vec<_>>()
    );
}

#[test]
fn grid_unions_drop_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(
        dir.path(),
        "[[grid]]\nnoise = [0.1, 0.2]\nsparsity = [0.0, 0.5]\n[[grid]]\nnoise = [0.0, 0.1]\nsparsity = [0.0]\n",
    );
    let names: Vec<String> = sweep::plan(&exp)
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        [
            "noise0.1-sparsity0",
            "noise0.1-sparsity0.5",
            "noise0.2-sparsity0",
            "noise0.2-sparsity0.5",
            "noise0-sparsity0"
        ]
    );
}

#[test]
fn shipped_noise_sweep_has_570_configurations() {
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/noise_sweep.toml");
    let exp = Experiment::load(Some(&file), &JobArgs::default(), &[]).unwrap();
    let tasks = sweep::plan(&exp).unwrap();
    assert_eq!(tasks.len(), 2 * (7 * 8 + 1) * 5);
    assert_eq!(tasks[0].name, "loss_ce-noise0.1-seed0-sparsity0");
    assert!(tasks.iter().all(|t| t.args[0] == "evaluate"));
}

#[test]
fn resubmission_skips_configurations_with_results() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "[grid]\nseed = [0, 1, 2, 3, 4]\n");
    let plan = launch::plan(&exp, dir.path()).unwrap().unwrap();
    assert!(plan.script.contains("#SBATCH --array=0-4%2\n"));
    launch::write_exp_dir(&exp, &plan).unwrap();
    let args3 = std::fs::read(dir.path().join("exp/tasks/3.args")).unwrap();
    assert_eq!(
        common::split_nul(&args3),
        plan.tasks.as_ref().unwrap()[3].args
    );
    for done in ["seed1", "seed2", "seed4"] {
        finish(&dir.path().join("exp/runs").join(done));
    }
    let plan = launch::plan(&exp, dir.path()).unwrap().unwrap();
    assert!(
        plan.script.contains("#SBATCH --array=0,3%2\n"),
        "{}",
        plan.script
    );
    assert_eq!(plan.pending(), Some(vec![0, 3]));
    // Indices stay those of the full grid: task 3 is still seed3.
    assert_eq!(plan.tasks.as_ref().unwrap()[3].name, "seed3");
    for done in ["seed0", "seed3"] {
        finish(&dir.path().join("exp/runs").join(done));
    }
    assert!(launch::plan(&exp, dir.path()).unwrap().is_none());
}

#[test]
fn array_specs() {
    assert_eq!(sweep::array_spec(&[0, 1, 2, 3], None), "0-3");
    assert_eq!(
        sweep::array_spec(&[5, 0, 1, 3, 7, 8, 9], Some(4)),
        "0-1,3,5,7-9%4"
    );
    assert_eq!(sweep::array_spec(&[2], Some(1)), "2%1");
}

#[test]
fn a_grid_key_also_in_the_command_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path(), "[grid]\nepochs = [1, 2]\n");
    let err = format!("{:#}", sweep::plan(&exp).unwrap_err());
    assert!(
        err.contains("[grid] key `epochs` is also given in command"),
        "{err}"
    );
}

fn finish(run: &std::path::Path) {
    std::fs::create_dir_all(run).unwrap();
    common::write(run, "results.json", "{}");
}
