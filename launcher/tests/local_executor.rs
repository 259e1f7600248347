//! The local executor end to end, with the real trainer on real Fashion-MNIST: rendezvous of
//! several processes, SIGUSR1 → checkpoint → restart → completion (weights identical to an
//! uninterrupted run), the time limit with `--max-timeouts 0` then `resume`, a sweep and its
//! report, and a rank that dies.

mod common;
mod runs;

use runs::{
    assert_same_tensors, metrics, nls, read_json, text, tiny_pretrain, trainer, trainer_pid,
    wait_for,
};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(240);

/// `nls-launch --local <job flags> --exp-dir EXP -- <trainer args>`.
fn local(dir: &Path, exp: &str, job: &[&str], trainer_args: &[String]) -> std::process::Command {
    let mut cmd = nls(dir);
    cmd.arg("--local")
        .arg("--trainer")
        .arg(trainer())
        .args(job)
        .args(["--exp-dir", exp, "--"])
        .args(trainer_args);
    cmd
}

fn finish(child: Child) -> std::process::Output {
    let out = child.wait_with_output().unwrap();
    eprintln!("{}", text(&out));
    out
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn sigusr1_checkpoints_restarts_and_ends_like_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = tiny_pretrain(256, 3);
    let job = ["--cpu", "--tasks-per-node", "2"];
    let whole = local(d, "whole", &job, &args).output().unwrap();
    assert!(whole.status.success(), "{}", text(&whole));

    let start = Instant::now();
    let child = local(d, "cut", &job, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first checkpoint is written at the end of epoch 1 of 3: the run is mid-way.
    let first = d.join("cut/checkpoints/ckpt-0000000008.safetensors");
    wait_for(
        "the first checkpoint",
        LIMIT,
        || first.is_file(),
        String::new,
    );
    signal(&child, "-USR1");
    let out = finish(child);
    eprintln!("interrupted run: {:.1} s", start.elapsed().as_secs_f64());
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("forwarding it to every rank"), "{log}");
    assert!(log.contains("SLURM_RESTART_COUNT=1"), "{log}");
    assert!(log.contains("resuming from"), "{log}");

    let stop = read_json(&d.join("cut/stop.json"));
    assert_eq!(stop["reason"], "finished");
    assert_eq!(stop["preemptions"], 1, "{stop}");
    // Both ranks ran and wrote their logs; rank 1's shows the restart too.
    let logs: Vec<_> = std::fs::read_dir(d.join("cut/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(logs.len(), 4, "{logs:?}");
    let steps: Vec<u64> = metrics(&d.join("cut"))
        .iter()
        .filter_map(|m| m["step"].as_u64())
        .collect();
    assert_eq!(
        steps,
        (1..=24).collect::<Vec<_>>(),
        "metrics after the restart"
    );
    assert_same_tensors(
        &d.join("whole/backbone.safetensors"),
        &d.join("cut/backbone.safetensors"),
    );
}

#[test]
fn time_limit_stops_for_good_then_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 1024 images: 96 steps, far longer than the 5 s before the warning.
    let args = tiny_pretrain(1024, 3);
    let job = [
        "--cpu",
        "--nodes",
        "2",
        "--time",
        "1",
        "--signal-delay",
        "55",
        "--max-timeouts",
        "0",
    ];
    let out = local(d, "exp", &job, &args).output().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("55 s before the time limit"), "{log}");
    let stop = read_json(&d.join("exp/stop.json"));
    assert_eq!(stop["reason"], "max-timeouts", "{stop}");
    assert_eq!(stop["timeouts"], 1, "{stop}");
    let stopped_at = stop["step"].as_u64().unwrap();
    assert!(stopped_at < 96, "{stop}");
    assert!(log.contains("rank 0 of 2 (Slurm, node 0 of 2)"), "{log}");

    let status = nls(d).args(["status", "exp"]).output().unwrap();
    let said = text(&status);
    assert!(status.status.success(), "{said}");
    assert!(said.contains("stopped for good"), "{said}");
    assert!(said.contains("nls-launch resume"), "{said}");

    // Resume with a longer limit (a new job id: the time-limit counter starts again).
    let resumed = nls(d)
        .args(["resume", "exp", "--local", "--time", "10"])
        .output()
        .unwrap();
    let log = text(&resumed);
    assert!(resumed.status.success(), "{log}");
    let checkpoint = stop["file"].as_str().unwrap();
    assert!(
        log.contains(&format!("resuming from {checkpoint}")),
        "{log}"
    );
    let stop = read_json(&d.join("exp/stop.json"));
    assert_eq!(stop["reason"], "finished", "{stop}");
    assert_eq!(stop["step"], 96, "{stop}");
    let again = nls(d).args(["resume", "exp", "--local"]).output().unwrap();
    assert!(!again.status.success());
    assert!(
        text(&again).contains("nothing to resume"),
        "{}",
        text(&again)
    );
}

#[test]
fn a_sweep_runs_each_configuration_and_report_collects_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sweep = format!(
        "command = [\"evaluate\", \"--data-dir\", \"{}\", \"--backbone\", \"none\", \
         \"--width\", \"8\", \"--kind\", \"symmetric\", \"--noise\", \"0.4\", \
         \"--epochs\", \"2\", \"--batch-size\", \"64\", \"--train-samples\", \"256\", \
         \"--test-samples\", \"256\", \"--backend\", \"gloo\"]\n\
         [job]\nexp_dir = \"sweep\"\ncpu = true\n\
         [grid]\nloss = [\"ce\", \"gce\"]\nseed = [0, 1]\n",
        runs::FASHION_MNIST
    );
    std::fs::write(d.join("sweep.toml"), sweep).unwrap();
    let run = || {
        nls(d)
            .args(["run", "sweep.toml", "--local", "--trainer"])
            .arg(trainer())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out));
    common::assert_tensorboard_line(&out, &d.join("sweep"));
    let report = nls(d).args(["report", "sweep"]).output().unwrap();
    let table = text(&report);
    assert!(report.status.success(), "{table}");
    let acc1 = |loss: &str, seed: u32| {
        let name = format!("loss_{loss}-seed{seed}");
        let r = read_json(&d.join("sweep/runs").join(name).join("results.json"));
        r["metrics"]["acc1"].as_f64().unwrap()
    };
    // Every run's row, in grid order, from its results.json.
    let csv = std::fs::read_to_string(d.join("sweep/report.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("loss,seed,protocol,acc1,best_acc1"),
        "{csv}"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    for (line, (loss, seed)) in
        lines[1..]
            .iter()
            .zip([("ce", 0), ("ce", 1), ("gce", 0), ("gce", 1)])
    {
        // Frozen backbone, no augmentation: the cached-feature fast path, named as such.
        let expected = format!("{loss},{seed},cached-features,{:.4},", acc1(loss, seed));
        assert!(line.starts_with(&expected), "{line} vs {expected}");
        let events = d.join(format!("sweep/runs/loss_{loss}-seed{seed}/tensorboard"));
        let files = std::fs::read_dir(&events).map_or(0, |f| f.count());
        assert_eq!(files, 1, "one event file in {}", events.display());
    }
    // The summary pools the two seeds of each loss: mean ± sample std, in percent.
    let cell = |loss: &str| {
        let (a, b) = (acc1(loss, 0) * 100.0, acc1(loss, 1) * 100.0);
        let mean = (a + b) / 2.0;
        let std = ((a - mean).powi(2) + (b - mean).powi(2)).sqrt();
        format!("{mean:.1} ± {std:.1} (2)")
    };
    let row = format!("| all | {} | {} |", cell("ce"), cell("gce"));
    assert!(table.contains("|  | loss ce | loss gce |"), "{table}");
    assert!(table.contains(&row), "{row} not in {table}");
    let doc = read_json(&d.join("sweep/report.json"));
    assert_eq!(doc["runs"].as_array().unwrap().len(), 4);
    let again = run();
    assert!(text(&again).contains("nothing to run"), "{}", text(&again));
}

#[test]
fn a_killed_rank_fails_the_job_and_status_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args = tiny_pretrain(1024, 3);
    args.extend(["--dist-timeout-s".into(), "10".into()]);
    let job = ["--cpu", "--tasks-per-node", "2"];
    let child = local(d, "exp", &job, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "the first logged step",
        LIMIT,
        || d.join("exp/metrics.jsonl").is_file(),
        String::new,
    );
    let rank1 = trainer_pid(&d.join("exp"), 1, None).expect("rank 1's process");
    let killed = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &rank1.to_string()])
        .status()
        .unwrap();
    let out = finish(child);
    eprintln!(
        "the job ended {:.1} s after rank 1 was killed",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(killed.elapsed() < Duration::from_secs(60));
    let status = text(&nls(d).args(["status", "exp"]).output().unwrap());
    assert!(status.contains("failed"), "{status}");
    assert!(status.contains("rank 1 was killed by SIGKILL"), "{status}");
    let logs = text(
        &nls(d)
            .args(["logs", "exp", "--task", "0"])
            .output()
            .unwrap(),
    );
    assert!(
        logs.contains("rank(s) [1]"),
        "rank 0 names the dead rank: {logs}"
    );
}

#[test]
fn a_local_sweep_goes_on_past_a_failed_configuration_and_resume_reruns_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // --batch-size 512 passes the argument check but not the run (256 training images).
    let sweep = format!(
        "command = [\"evaluate\", \"--data-dir\", \"{}\", \"--backbone\", \"none\", \
         \"--width\", \"8\", \"--epochs\", \"1\", \"--train-samples\", \"256\", \
         \"--test-samples\", \"256\", \"--backend\", \"gloo\"]\n\
         [job]\nexp_dir = \"sweep\"\ncpu = true\n\
         [grid]\nbatch_size = [512, 64]\n",
        runs::FASHION_MNIST
    );
    std::fs::write(d.join("sweep.toml"), sweep).unwrap();
    let out = nls(d)
        .args(["run", "sweep.toml", "--local", "--trainer"])
        .arg(trainer())
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    let runs = d.join("sweep/runs");
    assert!(
        runs.join("batch_size64/results.json").is_file(),
        "the configuration after the failed one ran: {said}"
    );
    assert!(!runs.join("batch_size512/results.json").is_file());
    let job = launcher::submit::read_submissions(&d.join("sweep")).unwrap()[0]
        .job_id
        .clone();
    let log = d.join(format!("sweep/logs/{job}_0_0.err"));
    assert!(
        said.contains("1 of 2 runs failed: task 0 (batch_size512)")
            && said.contains(&log.display().to_string()),
        "{said}"
    );
    assert!(
        runs::read(&log).contains("--batch-size 512"),
        "the log says why"
    );

    let again = nls(d)
        .args(["resume", "sweep", "--local"])
        .output()
        .unwrap();
    let said = text(&again);
    assert_eq!(again.status.code(), Some(2), "{said}");
    assert!(
        said.contains("[1/1] starting task 0 (batch_size512)"),
        "only the configuration without results runs again: {said}"
    );
}

#[test]
fn cancel_stops_a_local_job_for_good_and_its_hint_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let args = tiny_pretrain(256, 3);
    let child = local(d, "exp", &["--cpu"], &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = d.join("exp/checkpoints/ckpt-0000000008.safetensors");
    wait_for(
        "the first checkpoint",
        LIMIT,
        || first.is_file(),
        String::new,
    );

    // A second launch into the same exp-dir is refused, naming the running one.
    let second = local(d, "exp", &["--cpu"], &args).output().unwrap();
    let said = text(&second);
    assert_eq!(second.status.code(), Some(2), "{said}");
    let pid = child.id().to_string();
    assert!(
        said.contains(&format!("is still running (nls-launch pid {pid})"))
            && said.contains("nls-launch cancel"),
        "{said}"
    );

    let cancel = nls(d).args(["cancel", "exp"]).output().unwrap();
    assert!(cancel.status.success(), "{}", text(&cancel));
    let out = finish(child);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out));
    assert!(!text(&out).contains("SLURM_RESTART_COUNT=1"), "no restart");
    let job = launcher::submit::read_submissions(&d.join("exp")).unwrap()[0]
        .job_id
        .clone();
    assert_eq!(read_json(&d.join("exp/cancelled.json"))["jobs"][0], job);

    let status = text(&nls(d).args(["status", "exp"]).output().unwrap());
    assert!(
        status.contains("cancelled with `nls-launch cancel`")
            && status.contains("run: cancelled at step")
            && !status.contains("preemption"),
        "{status}"
    );
    // The hint is a command that works: it resumes the run here, to its end.
    let hint = status
        .split('`')
        .find(|s| s.starts_with("nls-launch resume "))
        .unwrap_or_else(|| panic!("no resume hint in {status}"));
    assert!(hint.ends_with(" --local"), "{hint}");
    let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let resumed = nls(d).args(&args).output().unwrap();
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(read_json(&d.join("exp/stop.json"))["reason"], "finished");
    let status = text(&nls(d).args(["status", "exp"]).output().unwrap());
    assert!(status.contains("run: finished at step 24"), "{status}");
}
