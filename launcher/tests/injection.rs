//! The injection test: user values with spaces, quotes, `$(...)`, backticks and newlines reach
//! srun exactly, and nothing in them runs. The rendered script is run with bash, with a
//! stand-in `srun` on PATH that records its argv (NUL-separated).

mod common;

use launcher::config::{Experiment, JobArgs};
use launcher::launch;
use std::path::{Path, PathBuf};
use std::process::Command;

const NASTY: &str = "a b 'q' \"dq\" $(touch pwned) `touch pwned` ; touch pwned";

/// Run `exp`'s script with bash in `cwd` (task `task` for arrays); srun's recorded argv.
fn run_script(exp: &Experiment, cwd: &Path, task: Option<usize>) -> Vec<String> {
    let plan = launch::plan(exp, cwd).unwrap().unwrap();
    let script = launch::write_exp_dir(exp, &plan).unwrap();
    let bin = cwd.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    common::fake_bin(&bin, "srun", r#"printf '%s\0' "$@" > "$NLS_TEST_RECORD""#);
    let record = cwd.join("argv");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .current_dir(cwd)
        .env("PATH", common::path_with(&bin))
        .env("NLS_TEST_RECORD", &record);
    if let Some(t) = task {
        cmd.env("SLURM_ARRAY_TASK_ID", t.to_string());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::split_nul(&std::fs::read(record).unwrap())
}

fn no_pwned(dirs: &[&Path]) {
    for d in dirs {
        assert!(!d.join("pwned").exists(), "pwned in {}", d.display());
    }
}

fn nasty_dirs(root: &Path) -> (PathBuf, PathBuf) {
    let exp = root.join(format!("exp {NASTY}"));
    let trainer = root.join(format!("bin dir {NASTY}/trainer"));
    (exp, trainer)
}

fn srun_prefix(exp: &Path, job: &str) -> Vec<String> {
    let logs = exp.join("logs").display().to_string();
    vec![
        "--unbuffered".into(),
        "--open-mode=append".into(),
        format!("--output={logs}/{job}_%t.out"),
        format!("--error={logs}/{job}_%t.err"),
    ]
}

#[test]
fn single_job_values_reach_srun_exactly() {
    let root = tempfile::tempdir().unwrap();
    let (exp_dir, trainer) = nasty_dirs(root.path());
    let args = JobArgs {
        exp_dir: Some(exp_dir.clone()),
        trainer: Some(trainer.clone()),
        name: Some(format!("name {NASTY}")),
        ..JobArgs::default()
    };
    let cmd: Vec<String> = vec![
        "pretrain".into(),
        "--data-dir".into(),
        format!("/data/{NASTY}"),
        "--note".into(),
        "line one\nline two $(touch pwned)\n`touch pwned`".into(),
        String::new(),
        "'".into(),
        "\\".into(),
    ];
    let exp = Experiment::load(None, &args, &cmd).unwrap();
    let argv = run_script(&exp, root.path(), None);
    let mut want = srun_prefix(&exp_dir, "%j");
    want.push(trainer.display().to_string());
    want.extend(cmd);
    want.extend(["--exp-dir".into(), exp_dir.display().to_string()]);
    want.extend(["--max-timeouts".into(), "3".into()]);
    assert_eq!(argv, want);
    no_pwned(&[root.path(), &exp_dir]);
}

#[test]
fn array_task_values_reach_srun_exactly() {
    let root = tempfile::tempdir().unwrap();
    let (exp_dir, trainer) = nasty_dirs(root.path());
    let file = common::write(
        root.path(),
        "sweep.toml",
        "command = [\"evaluate\", \"--backbone\", \"$(touch pwned)\"]\n\
         [grid]\nnote = [\"plain\", \"x $(touch pwned) `touch pwned` 'q'\\nnewline\"]\nseed = [1, 2]\n",
    );
    let args = JobArgs {
        exp_dir: Some(exp_dir.clone()),
        trainer: Some(trainer.clone()),
        ..JobArgs::default()
    };
    let exp = Experiment::load(Some(&file), &args, &[]).unwrap();
    let tasks = launcher::sweep::plan(&exp).unwrap();
    let argv = run_script(&exp, root.path(), Some(3));
    let mut want = srun_prefix(&exp_dir, "%A_%a");
    want.push(trainer.display().to_string());
    want.extend(tasks[3].args.clone());
    assert_eq!(argv, want);
    assert!(tasks[3].args.iter().any(|a| a.contains("\nnewline")));
    no_pwned(&[root.path(), &exp_dir]);
}

#[test]
fn a_newline_in_the_exp_dir_is_refused() {
    let args = JobArgs {
        exp_dir: Some(PathBuf::from("/tmp/a\nb")),
        ..JobArgs::default()
    };
    let err = Experiment::load(None, &args, &["pretrain".into()]).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("--exp-dir (command line)") && msg.contains("control character"),
        "{msg}"
    );
}

#[test]
fn a_template_that_prints_a_raw_value_does_not_render() {
    let dir = tempfile::tempdir().unwrap();
    let t = common::write(dir.path(), "raw.sh.j2", "#!/bin/bash\necho {{ name }}\n");
    let args = JobArgs {
        exp_dir: Some(dir.path().join("exp")),
        template: Some(t),
        ..JobArgs::default()
    };
    let exp = Experiment::load(None, &args, &["pretrain".into()]).unwrap();
    let err = match launch::plan(&exp, dir.path()) {
        Err(e) => format!("{e:#}"),
        Ok(_) => panic!("rendered a raw value"),
    };
    assert!(err.contains("unquoted"), "{err}");
}
