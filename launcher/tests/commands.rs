//! The binary end to end with stand-in sbatch, squeue, scontrol, sacct and scancel on PATH:
//! submit, dry run, status, logs, cancel.

mod common;
mod runs;

use runs::trainer;
use std::path::Path;
use std::process::{Command, Output};

fn nls(dir: &Path, bin: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nls-launch"))
        .args(args)
        .current_dir(dir)
        .env("PATH", common::path_with(bin))
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fakes(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    common::fake_bin(
        &bin,
        "sbatch",
        r#"echo "$@" >> sbatch.calls; echo "4242;clusterA""#,
    );
    common::fake_bin(
        &bin,
        "squeue",
        r#"echo '4242_[2-4%2]|PENDING|0:00|1:00:00|(JobArrayTaskLimit)'; echo '4242_1|RUNNING|0:10|1:00:00|n1'"#,
    );
    common::fake_bin(&bin, "scontrol", "exit 1");
    common::fake_bin(
        &bin,
        "sacct",
        "echo 'Slurm accounting storage is disabled' >&2; exit 1",
    );
    common::fake_bin(&bin, "scancel", r#"echo "$@" >> scancel.calls"#);
    bin
}

#[test]
fn submit_status_logs_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fakes(d);
    let sweep = format!(
        "command = [\"evaluate\", \"--data-dir\", \"d\", \"--backbone\", \"none\"]\n[job]\n\
         exp_dir = \"exp\"\ntrainer = \"{}\"\n[grid]\nseed = [0, 1, 2, 3, 4]\n",
        trainer().display()
    );
    common::write(d, "s.toml", &sweep);

    let dry = nls(d, &bin, &["run", "s.toml", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("#SBATCH --array=0-4\n"));
    assert!(!d.join("exp").exists(), "a dry run writes nothing");

    let out = nls(d, &bin, &["run", "s.toml", "--parallel", "2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("submitted job 4242"), "{}", text(&out));
    let calls = std::fs::read_to_string(d.join("sbatch.calls")).unwrap();
    assert!(
        calls.starts_with("--parsable ") && calls.contains("exp/job.sh"),
        "{calls}"
    );
    for f in [
        "job.sh",
        "job.toml",
        "tasks/4.args",
        "tasks/index.tsv",
        "submissions.jsonl",
    ] {
        assert!(d.join("exp").join(f).is_file(), "{f}");
    }
    let subs = launcher::submit::read_submissions(&d.join("exp")).unwrap();
    assert_eq!(subs[0].job_id, "4242");
    assert_eq!(subs[0].array.as_deref(), Some("0-4%2"));

    let st = nls(d, &bin, &["status", "exp"]);
    assert!(st.status.success(), "{}", text(&st));
    assert!(
        text(&st).contains("4242_1") && text(&st).contains("(JobArrayTaskLimit)"),
        "{}",
        text(&st)
    );

    std::fs::write(d.join("exp/logs/4242_1_0.out"), "hello from task 1\n").unwrap();
    std::fs::write(d.join("exp/logs/4242_3_0.out"), "task 3\n").unwrap();
    let logs = nls(d, &bin, &["logs", "exp", "--task", "1"]);
    assert!(
        text(&logs).contains("hello from task 1") && !text(&logs).contains("task 3"),
        "{}",
        text(&logs)
    );

    let c = nls(d, &bin, &["cancel", "exp"]);
    assert!(c.status.success(), "{}", text(&c));
    assert_eq!(
        std::fs::read_to_string(d.join("scancel.calls")).unwrap(),
        "4242\n"
    );
}

#[test]
fn status_of_a_finished_job_without_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fakes(d);
    common::fake_bin(
        &bin,
        "squeue",
        "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
    );
    let out = nls(
        d,
        &bin,
        &[
            "--exp-dir",
            "exp",
            "--ngpus",
            "2",
            "--",
            "pretrain",
            "--data-dir",
            "d",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(
        d.join("exp/stop.json"),
        r#"{"reason":"preemption","step":50,"timeouts":0,"preemptions":1,"file":"ck"}"#,
    )
    .unwrap();
    let st = text(&nls(d, &bin, &["status", "exp"]));
    assert!(
        st.contains("accounting") && st.contains("preemption at step 50") && st.contains("resume"),
        "{st}"
    );
}

#[test]
fn resume_waits_for_the_job_to_end_and_needs_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fakes(d);
    let job = [
        "--exp-dir",
        "exp",
        "--time",
        "60",
        "--",
        "pretrain",
        "--data-dir",
        "d",
    ];
    assert!(nls(d, &bin, &job).status.success());
    let resume = |extra: &[&str]| {
        let mut args = vec!["resume", "exp"];
        args.extend(extra);
        let o = nls(d, &bin, &args);
        (o.status.code(), text(&o))
    };
    common::fake_bin(&bin, "squeue", "echo '4242|RUNNING|0:10|1:00:00|n1'");
    let (code, said) = resume(&[]);
    assert_eq!(code, Some(2));
    assert!(
        said.contains("job 4242") && said.contains("still RUNNING"),
        "{said}"
    );

    common::fake_bin(
        &bin,
        "squeue",
        "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
    );
    let (code, said) = resume(&[]);
    assert_eq!(code, Some(2));
    assert!(said.contains("left no checkpoint"), "{said}");

    std::fs::create_dir_all(d.join("exp/checkpoints")).unwrap();
    std::fs::write(d.join("exp/checkpoints/ckpt-0000000050.safetensors"), "x").unwrap();
    let (code, said) = resume(&["--time", "120"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("submitted job 4242"), "{said}");
    let subs = launcher::submit::read_submissions(&d.join("exp")).unwrap();
    assert_eq!(subs.len(), 2);
    let script = std::fs::read_to_string(d.join("exp/job.sh")).unwrap();
    assert!(script.contains("#SBATCH --time=120\n"), "{script}");
    assert!(script.contains("'--exp-dir'"), "{script}");

    std::fs::write(
        d.join("exp/stop.json"),
        r#"{"reason":"finished","step":99}"#,
    )
    .unwrap();
    let (code, said) = resume(&[]);
    assert_eq!(code, Some(2));
    assert!(
        said.contains("finished at step 99; nothing to resume"),
        "{said}"
    );
}

#[test]
fn report_and_resume_need_an_experiment_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bin = fakes(dir.path());
    std::fs::create_dir(dir.path().join("x")).unwrap();
    for cmd in ["resume", "report"] {
        let o = nls(dir.path(), &bin, &[cmd, "x"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(text(&o).contains("x has no job.toml"), "{}", text(&o));
    }
}
