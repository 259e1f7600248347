//! `trainer check-args`: a run's arguments checked as the run would read them (clap, then the
//! config layering defaults ← `--config` ← flags), touching no data and no exp-dir.

use std::process::{Command, Output, Stdio};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .arg("check-args")
        .args(args)
        .output()
        .unwrap()
}

fn said(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn good_arguments_pass_without_touching_data_or_exp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    let data = dir.path().join("no-such-data");
    let (exp_s, data_s) = (exp.to_str().unwrap(), data.to_str().unwrap());
    let o = trainer(&[
        "pretrain",
        "--data-dir",
        data_s,
        "--exp-dir",
        exp_s,
        "--epochs",
        "2",
    ]);
    assert!(o.status.success(), "{}", said(&o));
    let o = trainer(&[
        "evaluate",
        "--data-dir",
        data_s,
        "--exp-dir",
        exp_s,
        "--backbone",
        "none",
        "--loss",
        "gce",
    ]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(!exp.exists(), "check-args wrote the exp-dir");
}

#[test]
fn a_config_file_key_and_a_bad_value_are_refused_with_the_trainers_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, "batch_sise = 512\n").unwrap();
    let o = trainer(&[
        "pretrain",
        "--data-dir",
        "d",
        "--exp-dir",
        "e",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        said(&o).contains("unknown field `batch_sise`"),
        "{}",
        said(&o)
    );
    let o = trainer(&[
        "pretrain",
        "--data-dir",
        "d",
        "--exp-dir",
        "e",
        "--epochs",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        said(&o).contains("--epochs must be at least 1"),
        "{}",
        said(&o)
    );
    let o = trainer(&[
        "evaluate",
        "--data-dir",
        "d",
        "--exp-dir",
        "e",
        "--loss",
        "cee",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(said(&o).contains("invalid value 'cee'"), "{}", said(&o));
    let zero_init = [
        "--head",
        "linear",
        "--head-zero-init",
        "--linear-init-std",
        "0.01",
    ];
    let cases: [(&[&str], &str); 2] = [
        (&["--linear-init-std", "0"], "--linear-init-std must be > 0"),
        (&zero_init, "both set the head's start"),
    ];
    for (flags, says) in cases {
        let mut args = EVALUATE.to_vec();
        args.extend(flags);
        let o = trainer(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}");
        assert!(said(&o).contains(says), "{flags:?}: {}", said(&o));
    }
}

#[test]
fn stdin_lists_name_the_first_refused_one() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["check-args", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = "[\"pretrain\",\"--data-dir\",\"d\",\"--exp-dir\",\"e\"]\n\
                 [\"pretrian\"]\n\
                 [\"pretrain\",\"--bogus\"]\n";
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["index"], 1);
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("unrecognized subcommand 'pretrian'"),
        "{error}"
    );
}

/// An evaluation from scratch on folders that are never read (the flags are refused first).
const EVALUATE: [&str; 7] = [
    "evaluate",
    "--data-dir",
    "d",
    "--exp-dir",
    "e",
    "--backbone",
    "none",
];

/// `--test-resize` is the resize before the centre crop of `--image-size`: it needs one, and no
/// smaller than it.
#[test]
fn test_resize_needs_an_image_size_it_can_crop() {
    let base = EVALUATE;
    for (extra, says) in [
        (&["--test-resize", "256"][..], "needs --image-size"),
        (
            &["--test-resize", "200", "--image-size", "224"][..],
            "smaller than the centre crop of --image-size 224",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let o = trainer(&args);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", said(&o));
        assert!(said(&o).contains(says), "{extra:?}: {}", said(&o));
    }
    let ok = ["--test-resize", "256", "--image-size", "224"];
    let args: Vec<&str> = base.iter().chain(&ok).copied().collect();
    let o = trainer(&args);
    assert!(o.status.success(), "{}", said(&o));
}
