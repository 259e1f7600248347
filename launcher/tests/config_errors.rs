//! Bad configurations give errors that name the file (or flag) and the key.

mod common;

use launcher::config::{Experiment, JobArgs};
use std::path::PathBuf;

fn load_file(text: &str, flags: JobArgs) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(dir.path(), "bad.toml", text);
    match Experiment::load(Some(&file), &flags, &[])
        .and_then(|e| launcher::launch::plan(&e, dir.path()).map(|_| ()))
    {
        Ok(()) => panic!("accepted:\n{text}"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{p:?} not in: {msg}");
    }
}

const CMD: &str = "command = [\"pretrain\"]\n";

#[test]
fn unknown_key_in_job() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\nngpu = 4\n"),
        JobArgs::default(),
    );
    assert_names(&msg, &["bad.toml", "unknown key `ngpu` in [job]"]);
}

#[test]
fn unknown_top_level_key() {
    let msg = load_file(
        &format!("{CMD}jobs = 1\n[job]\nexp_dir = \"x\"\n"),
        JobArgs::default(),
    );
    assert_names(&msg, &["bad.toml", "unknown key `jobs`"]);
}

#[test]
fn ngpus_zero_in_file_and_flag() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\nngpus = 0\n"),
        JobArgs::default(),
    );
    assert_names(
        &msg,
        &["`ngpus` in [job] of", "bad.toml", "ngpus = 0", "--cpu"],
    );
    let flags = JobArgs {
        ngpus: Some(0),
        exp_dir: Some(PathBuf::from("x")),
        ..JobArgs::default()
    };
    let err = Experiment::load(None, &flags, &["pretrain".into()]).unwrap_err();
    assert_names(
        &format!("{err:#}"),
        &["--ngpus (command line)", "ngpus = 0"],
    );
}

#[test]
fn nodes_zero() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\nnodes = 0\n"),
        JobArgs::default(),
    );
    assert_names(&msg, &["`nodes` in [job] of", "bad.toml", "at least 1"]);
}

#[test]
fn cpu_mode_takes_no_ngpus() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\nngpus = 2\ncpu = true\n"),
        JobArgs::default(),
    );
    assert_names(&msg, &["`ngpus` in [job]", "CPU job"]);
}

#[test]
fn empty_grid_list() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\n[grid]\nnoise = [0.1]\nseed = []\n"),
        JobArgs::default(),
    );
    assert_names(&msg, &["bad.toml", "[grid] key `seed` has an empty list"]);
}

#[test]
fn grid_key_that_is_not_a_list() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\n[grid]\nseed = 1\n"),
        JobArgs::default(),
    );
    assert_names(&msg, &["bad.toml", "[grid] key `seed` must be a list"]);
}

#[test]
fn missing_template() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\ntemplate = \"nope.sh.j2\"\n"),
        JobArgs::default(),
    );
    assert_names(
        &msg,
        &[
            "`template` in [job] of",
            "bad.toml",
            "nope.sh.j2 does not exist",
        ],
    );
}

#[test]
fn wrong_type_names_the_source() {
    let msg = load_file(
        &format!("{CMD}[job]\nexp_dir = \"x\"\nnodes = \"two\"\n"),
        JobArgs::default(),
    );
    assert_names(&msg, &["bad.toml", "nodes"]);
}

#[test]
fn no_command() {
    let msg = load_file("[job]\nexp_dir = \"x\"\n", JobArgs::default());
    assert_names(&msg, &["no trainer command", "bad.toml"]);
}

#[test]
fn flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = common::write(
        dir.path(),
        "ok.toml",
        &format!("{CMD}[job]\nexp_dir = \"x\"\nngpus = 2\nnodes = 3\n"),
    );
    let flags = JobArgs {
        ngpus: Some(4),
        ..JobArgs::default()
    };
    let exp = Experiment::load(Some(&file), &flags, &["--epochs".into(), "5".into()]).unwrap();
    assert_eq!((exp.job.ngpus, exp.job.nodes), (Some(4), 3));
    assert_eq!(exp.job.command, ["pretrain", "--epochs", "5"]);
    assert!(exp.job.exp_dir.is_absolute());
    // The resolved configuration reads back as the same job.
    let back: toml::Table = toml::from_str(&exp.to_toml().unwrap()).unwrap();
    let job: launcher::config::JobConfig = back["job"].clone().try_into().unwrap();
    assert_eq!(job, exp.job);
}
