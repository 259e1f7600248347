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
    common::assert_tensorboard_line(&out, &d.join("exp"));
    // The trainer logs to stderr: the pointer is to the .err files.
    assert!(
        text(&out).contains("exp/logs/4242_<task>_<rank>.err (the trainer's log")
            && text(&out).contains("4242_<task>_batch.err"),
        "{}",
        text(&out)
    );
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
    common::assert_tensorboard_line(&st, &d.join("exp"));

    std::fs::write(d.join("exp/logs/4242_1_0.out"), "hello from task 1\n").unwrap();
    std::fs::write(d.join("exp/logs/4242_3_0.out"), "task 3\n").unwrap();
    let logs = nls(d, &bin, &["logs", "exp", "--task", "1"]);
    assert!(
        text(&logs).contains("hello from task 1") && !text(&logs).contains("task 3"),
        "{}",
        text(&logs)
    );

    // A second launch into the exp-dir while the array is queued is refused, naming it.
    for how in [&[][..], &["--local"]] {
        let mut args = vec!["run", "s.toml"];
        args.extend(how);
        let again = nls(d, &bin, &args);
        assert_eq!(again.status.code(), Some(2), "{}", text(&again));
        assert!(
            text(&again).contains("job 4242_[2-4%2] of ")
                && text(&again).contains("is still PENDING")
                && text(&again).contains("exp`, or use another --exp-dir"),
            "{}",
            text(&again)
        );
    }
    assert_eq!(
        launcher::submit::read_submissions(&d.join("exp"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        std::fs::read_to_string(d.join("sbatch.calls"))
            .unwrap()
            .lines()
            .count(),
        1
    );

    let c = nls(d, &bin, &["cancel", "exp"]);
    assert!(c.status.success(), "{}", text(&c));
    assert_eq!(
        std::fs::read_to_string(d.join("scancel.calls")).unwrap(),
        "4242\n"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("exp/cancelled.json")).unwrap())
            .unwrap();
    assert_eq!(record["jobs"], serde_json::json!(["4242"]));
    // The trainer read the SIGTERM as a preemption; status says what happened.
    gone(&bin);
    std::fs::create_dir_all(d.join("exp/runs/seed1")).unwrap();
    std::fs::write(
        d.join("exp/runs/seed1/stop.json"),
        r#"{"reason":"preemption","step":6,"epoch":53}"#,
    )
    .unwrap();
    let st = text(&nls(d, &bin, &["status", "exp"]));
    assert!(
        st.contains("cancelled with `nls-launch cancel`")
            && st.contains("seed1: cancelled at epoch 53")
            && st.contains("cancelled 1")
            && !st.contains("preemption"),
        "{st}"
    );
    run_hint(d, &bin, &st, "submitted job 4242");
}

/// squeue for jobs that left the queue.
fn gone(bin: &Path) {
    common::fake_bin(
        bin,
        "squeue",
        "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1",
    );
}

/// Runs the first `nls-launch resume ...` command `status` printed; it must succeed and say
/// `says`.
fn run_hint(dir: &Path, bin: &Path, status: &str, says: &str) {
    let hint = status
        .split('`')
        .find(|s| s.starts_with("nls-launch resume "))
        .unwrap_or_else(|| panic!("no resume hint in {status}"));
    let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let out = nls(dir, bin, &args);
    assert!(out.status.success(), "`{hint}`: {}", text(&out));
    assert!(text(&out).contains(says), "`{hint}`: {}", text(&out));
}

#[test]
fn status_of_a_sweep_member_hints_a_resume_that_works_and_names_array_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fakes(d);
    let sweep = format!(
        "command = [\"evaluate\", \"--data-dir\", \"d\", \"--backbone\", \"none\"]\n\
         [job]\nexp_dir = \"exp\"\ntrainer = \"{}\"\n[grid]\nseed = [0, 1]\n",
        trainer().display()
    );
    common::write(d, "s.toml", &sweep);
    assert!(nls(d, &bin, &["run", "s.toml"]).status.success());
    gone(&bin);
    common::fake_bin(
        &bin,
        "scontrol",
        "echo 'JobId=4244 ArrayJobId=4242 ArrayTaskId=1 JobState=PREEMPTED Restarts=0 ExitCode=0:0 Reason=None'",
    );
    std::fs::create_dir_all(d.join("exp/runs/seed1")).unwrap();
    std::fs::write(
        d.join("exp/runs/seed1/stop.json"),
        r#"{"reason":"preemption","step":6,"epoch":53,"file":"ck"}"#,
    )
    .unwrap();
    let st = text(&nls(d, &bin, &["status", "exp"]));
    assert!(st.contains("4242_1 PREEMPTED"), "{st}");
    assert!(
        st.contains("seed1: stopped by a preemption at epoch 53")
            && st.contains("`nls-launch resume exp`")
            && !st.contains("runs/seed1`")
            && !st.contains("sbatch"),
        "{st}"
    );
    run_hint(d, &bin, &st, "submitted job 4242");
}

#[test]
fn a_stale_local_state_does_not_block_a_launch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = fakes(d);
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    std::fs::create_dir_all(d.join("exp")).unwrap();
    let state = format!(r#"{{"job_id":"1","pid":{pid},"state":"running","time":"t"}}"#);
    std::fs::write(d.join("exp/local.json"), state).unwrap();
    let out = nls(
        d,
        &bin,
        &["--exp-dir", "exp", "--", "pretrain", "--data-dir", "d"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("submitted job 4242"), "{}", text(&out));
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
    assert!(
        text(&out).contains("exp/logs/4242_<rank>.err (") && text(&out).contains("4242_batch.err"),
        "{}",
        text(&out)
    );
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
