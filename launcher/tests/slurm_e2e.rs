//! End to end on a real SLURM cluster: `nls-launch` submits the real `trainer` to the two-node
//! test cluster of `tests/slurm/cluster.sh` (started here when it is not up; Debian's
//! slurm-wlm, nodes n1 and n2 on this machine). CPU mode, Gloo, a narrow ResNet-18 on a few
//! Fashion-MNIST images.
//!
//! - two nodes: the ranks rendezvous across n1 and n2, train and finish;
//! - preemption: `scancel --signal=USR1` mid-run → checkpoint → `scontrol requeue` → the job
//!   restarts, resumes and finishes with weights byte-identical to an uninterrupted job;
//! - SLURM's own preemption (a job of partition `urgent`, PreemptMode=REQUEUE): SIGTERM →
//!   checkpoint → SLURM requeues → the job resumes and finishes;
//! - `nls-launch cancel` of a running two-node job: it stays cancelled (SIGTERM never requeues);
//! - a rank killed with SIGKILL: the job fails within the collective timeout, and the logs say
//!   which task died;
//! - the time limit: SIGUSR1 before the limit is counted as a timeout and requeued once, the
//!   second one stops the run for good (`--max-timeouts 1`), keeping its checkpoint;
//! - a 4-task job array of `trainer evaluate` writes 4 results.json.
//!
//! The tests skip, loudly, only when the cluster is not up and cannot be started here (not
//! root, or no apt-get). They take the cluster one at a time (a mutex): the machine has few
//! cores and the time-limit test needs the CPU it asks for. Each prints its duration. The
//! trainer is `target/release/trainer` (`cargo build --release` builds it; `cargo test
//! --release --workspace` too). A failed test keeps its folder and says where it is.

mod runs;

use launcher::monitor::is_finished;
use runs::{
    assert_same_tensors, logged_step, newest_checkpoint, read, read_json as json, text,
    tiny_pretrain, trainer_pid, wait_for, FASHION_MNIST,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Printed outside libtest's capture, so skips and durations show in every run.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "[slurm-e2e] {text}");
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The cluster: its configuration and the trainer the jobs run.
struct Cluster {
    conf: String,
    trainer: PathBuf,
}

/// Set once: the cluster, None (skip), or why it could not be started (every test fails).
static CLUSTER: OnceLock<Result<Option<Cluster>, String>> = OnceLock::new();
static SERIAL: Mutex<()> = Mutex::new(());

/// The running cluster (started when needed) and the lock that gives this test the cluster;
/// None when SLURM cannot be had on this machine (the test then returns, after a loud message).
fn cluster() -> Option<(&'static Cluster, MutexGuard<'static, ()>)> {
    let c = match CLUSTER.get_or_init(bring_up) {
        Ok(c) => c.as_ref()?,
        Err(why) => panic!("{why}"),
    };
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Some((c, guard))
}

fn bring_up() -> Result<Option<Cluster>, String> {
    let script = repo().join("tests/slurm/cluster.sh");
    let up = Command::new(&script).arg("status").output().unwrap();
    if !up.status.success() {
        let root =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap()) == 0;
        let installed = which("slurmctld") && which("slurmd") && which("sbatch");
        if !root || !(installed || which("apt-get")) {
            let why = match root {
                false => "not root (the cluster needs apt-get, munged and /etc/hosts)",
                true => "no apt-get to install slurm-wlm and munge",
            };
            say(&format!(
                "\n\n*** SKIPPED: the SLURM end-to-end tests: {why}. Start the cluster with \
                 `sudo tests/slurm/cluster.sh start` to run them. ***\n"
            ));
            return Ok(None);
        }
        let t = Instant::now();
        let out = Command::new(&script).arg("start").output().unwrap();
        if !out.status.success() {
            return Err(format!(
                "tests/slurm/cluster.sh start failed:\n{}",
                text(&out)
            ));
        }
        say(&format!(
            "cluster started in {:.1} s",
            t.elapsed().as_secs_f64()
        ));
    }
    let env = Command::new(&script).arg("env").output().unwrap();
    let conf = String::from_utf8_lossy(&env.stdout)
        .trim()
        .strip_prefix("export SLURM_CONF=")
        .expect("cluster.sh env prints `export SLURM_CONF=...`")
        .to_string();
    Ok(Some(Cluster {
        conf,
        trainer: runs::trainer(),
    }))
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// A test's folder (exp-dirs, experiment files), removed when the test passes and kept, with
/// its path printed, when it fails. Dropping it cancels every job submitted from it.
struct Scratch {
    dir: PathBuf,
    jobs: Vec<String>,
    cluster: &'static Cluster,
}

impl Scratch {
    fn new(cluster: &'static Cluster, name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "nls-slurm-e2e-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch {
            dir,
            jobs: Vec::new(),
            cluster,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A SLURM client command (scontrol, scancel, squeue) against the test cluster.
    fn slurm(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("SLURM_CONF", &self.cluster.conf);
        cmd
    }

    /// `nls-launch args...`, run in this folder with the test cluster's configuration. The
    /// job inherits this environment (sbatch exports it): one thread per rank, info logs.
    fn nls(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_nls-launch"))
            .args(args)
            .current_dir(&self.dir)
            .env("SLURM_CONF", &self.cluster.conf)
            .env("OMP_NUM_THREADS", "1")
            .env("RUST_LOG", "info")
            .output()
            .unwrap()
    }

    /// Submits `nls-launch <flags> --exp-dir exp --trainer T [-- command]`; returns the job id.
    fn submit(&mut self, exp: &Path, flags: &[&str], command: &[String]) -> String {
        let trainer = self.cluster.trainer.to_str().unwrap().to_string();
        let mut args: Vec<&str> = flags.to_vec();
        args.extend(["--exp-dir", exp.to_str().unwrap(), "--trainer", &trainer]);
        if !command.is_empty() {
            args.push("--");
            args.extend(command.iter().map(String::as_str));
        }
        let out = self.nls(&args);
        assert!(out.status.success(), "nls-launch {args:?}:\n{}", text(&out));
        let id = last_job_id(exp);
        self.jobs.push(id.clone());
        id
    }

    /// The records of `scontrol show job -o id` (several for an array).
    fn job(&self, id: &str) -> Vec<BTreeMap<String, String>> {
        let out = self
            .slurm("scontrol")
            .args(["show", "job", "-o", id])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scontrol show job {id}: {}",
            text(&out)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("JobId="))
            .map(|l| {
                l.split(' ')
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// Waits until every record of job `id` is in a final state; returns them.
    fn wait_end(&self, id: &str, exp: &Path, limit: Duration) -> Vec<BTreeMap<String, String>> {
        let deadline = Instant::now() + limit;
        loop {
            let recs = self.job(id);
            if !recs.is_empty() && recs.iter().all(|r| is_finished(&r["JobState"])) {
                return recs;
            }
            if Instant::now() > deadline {
                panic!(
                    "job {id} did not end within {limit:?}: {recs:?}\n{}",
                    self.logs(exp)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `nls-launch logs exp` (for failure messages and the checks on what it shows).
    fn logs(&self, exp: &Path) -> String {
        text(&self.nls(&["logs", exp.to_str().unwrap()]))
    }

    fn status(&self, exp: &Path) -> String {
        let out = self.nls(&["status", exp.to_str().unwrap()]);
        assert!(out.status.success(), "nls-launch status:\n{}", text(&out));
        text(&out)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.jobs.is_empty() {
            let _ = self.slurm("scancel").args(&self.jobs).output();
        }
        match std::thread::panicking() {
            true => say(&format!("kept {} for inspection", self.dir.display())),
            false => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

fn last_job_id(exp: &Path) -> String {
    let subs = std::fs::read_to_string(exp.join("submissions.jsonl")).unwrap();
    let last: Value = serde_json::from_str(subs.lines().last().unwrap()).unwrap();
    last["job_id"].as_str().unwrap().to_string()
}

/// The task log `<exp>/logs/<job>_<rank>.err`.
fn rank_log(exp: &Path, job: &str, rank: u32) -> String {
    read(&exp.join(format!("logs/{job}_{rank}.err")))
}

const TWO_NODES: [&str; 5] = ["--cpu", "--nodes", "2", "--tasks-per-node", "1"];

/// Rank 0 said `requeued job <id>` `times` times (and never that the requeue failed).
fn assert_requeued(log0: &str, id: &str, times: usize) {
    // `scontrol requeue` runs inside the job step it requeues: when SLURM cancels the step
    // before scontrol has exited, scontrol dies of the step's SIGTERM and the trainer takes a
    // successful requeue for a failed one (exit 75, "resubmit to resume").
    assert!(
        !log0.contains(&format!("`scontrol requeue {id}` failed (signal: 15")),
        "scontrol requeue was killed by the requeue it asked for: the trainer should run it with \
         SIGTERM ignored (SIG_IGN survives exec) so it reports the requeue's real outcome:\n{log0}"
    );
    assert_eq!(
        log0.matches(&format!("requeued job {id};")).count(),
        times,
        "{log0}"
    );
}

#[test]
fn two_nodes_rendezvous_train_and_finish() {
    let Some((cluster, _serial)) = cluster() else {
        return;
    };
    let t = Instant::now();
    let mut s = Scratch::new(cluster, "two-nodes");
    let exp = s.path("exp");
    let id = s.submit(&exp, &TWO_NODES, &tiny_pretrain(256, 1));
    let recs = s.wait_end(&id, &exp, Duration::from_secs(240));
    let logs = s.logs(&exp);
    assert_eq!(recs[0]["JobState"], "COMPLETED", "{recs:?}\n{logs}");
    assert_eq!(recs[0]["ExitCode"], "0:0");
    assert_eq!(recs[0]["NodeList"], "n[1-2]", "both nodes: {recs:?}");
    assert_eq!(recs[0]["Restarts"], "0");
    for rank in 0..2 {
        let log = rank_log(&exp, &id, rank);
        assert!(
            log.contains(&format!(
                "rank {rank} of 2 (Slurm, node {rank} of 2) joined via n1:"
            )),
            "rank {rank}:\n{log}"
        );
    }
    let stop = json(&exp.join("stop.json"));
    assert_eq!(stop["reason"], "finished", "{stop}");
    assert_eq!(stop["step"], 8, "{stop}");
    assert!(exp.join("backbone.safetensors").is_file());
    let steps = read(&exp.join("metrics.jsonl")).lines().count();
    assert!(steps >= 8, "metrics.jsonl has {steps} lines");
    let status = s.status(&exp);
    assert!(
        status.contains("COMPLETED") && status.contains("finished at step 8"),
        "{status}"
    );
    say(&format!(
        "two nodes (1 epoch, 8 steps, 2 ranks on n1 and n2): {:.1} s",
        t.elapsed().as_secs_f64()
    ));
}

#[test]
fn preempted_job_requeues_resumes_and_matches_an_uninterrupted_one() {
    let Some((cluster, _serial)) = cluster() else {
        return;
    };
    let t = Instant::now();
    let mut s = Scratch::new(cluster, "preempt");
    let (reference, preempted) = (s.path("reference"), s.path("preempted"));
    let id_ref = s.submit(&reference, &TWO_NODES, &tiny_pretrain(256, 2));
    let recs = s.wait_end(&id_ref, &reference, Duration::from_secs(240));
    assert_eq!(recs[0]["JobState"], "COMPLETED", "{}", s.logs(&reference));
    let t_ref = t.elapsed();

    let id = s.submit(&preempted, &TWO_NODES, &tiny_pretrain(256, 2));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let at = 2 + u64::from(nanos) % 8;
    wait_for(
        &format!("step {at} of job {id}"),
        Duration::from_secs(180),
        || logged_step(&preempted) >= at,
        || s.logs(&preempted),
    );
    let signalled = Instant::now();
    let out = s
        .slurm("scancel")
        .args(["--signal=USR1", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "scancel: {}", text(&out));
    // The requeued job runs again with SLURM_RESTART_COUNT=1 (unset in the first run).
    wait_for(
        "rank 0 of the requeued job, with SLURM_RESTART_COUNT=1",
        Duration::from_secs(120),
        || trainer_pid(&preempted, 0, Some("SLURM_RESTART_COUNT=1")).is_some(),
        || s.logs(&preempted),
    );
    wait_for(
        "the resumed attempt",
        Duration::from_secs(120),
        || rank_log(&preempted, &id, 0).contains("resuming from"),
        || s.logs(&preempted),
    );
    let cycle = signalled.elapsed();
    let recs = s.wait_end(&id, &preempted, Duration::from_secs(240));
    let logs = s.logs(&preempted);
    assert_eq!(recs[0]["JobState"], "COMPLETED", "{recs:?}\n{logs}");
    assert_eq!(recs[0]["Restarts"], "1", "SLURM_RESTART_COUNT=1: {recs:?}");
    let log0 = rank_log(&preempted, &id, 0);
    assert!(
        log0.contains("SIGUSR1 received: stopping (Preemption"),
        "{log0}"
    );
    assert_requeued(&log0, &id, 1);
    let stop = json(&preempted.join("stop.json"));
    assert_eq!(stop["reason"], "finished", "{stop}");
    assert_eq!(stop["preemptions"], 1, "{stop}");
    // Every step logged once, and the same losses as the uninterrupted job.
    let losses = |exp: &Path| -> Vec<(u64, String)> {
        read(&exp.join("metrics.jsonl"))
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|m| Some((m["step"].as_u64()?, m["loss"].to_string())))
            .collect()
    };
    assert_eq!(losses(&preempted), losses(&reference));
    assert_eq!(
        losses(&preempted).iter().map(|l| l.0).collect::<Vec<_>>(),
        (1..=16).collect::<Vec<_>>()
    );
    assert_same_tensors(
        &newest_checkpoint(&reference),
        &newest_checkpoint(&preempted),
    );
    assert_same_tensors(
        &reference.join("backbone.safetensors"),
        &preempted.join("backbone.safetensors"),
    );
    say(&format!(
        "preemption at step {at}: signal → resumed {:.1} s (requeue cycle), job {:.1} s, \
         with the reference job {:.1} s in all",
        cycle.as_secs_f64(),
        (t.elapsed() - t_ref).as_secs_f64(),
        t.elapsed().as_secs_f64()
    ));
}

/// SLURM's own preemption (PreemptMode=REQUEUE): a job of the higher-tier partition `urgent`
/// takes both nodes, SLURM sends ours SIGTERM, the trainer checkpoints and exits without asking
/// for a requeue, SLURM requeues the job itself, and once the urgent job is done it resumes and
/// finishes with every step logged once.
#[test]
fn slurm_preemption_requeues_and_the_job_resumes() {
    let Some((cluster, _serial)) = cluster() else {
        return;
    };
    let t = Instant::now();
    let mut s = Scratch::new(cluster, "slurm-preempt");
    let exp = s.path("exp");
    let id = s.submit(&exp, &TWO_NODES, &tiny_pretrain(256, 2));
    wait_for(
        &format!("step 3 of job {id}"),
        Duration::from_secs(180),
        || logged_step(&exp) >= 3,
        || s.logs(&exp),
    );
    let out = s
        .slurm("sbatch")
        .args(["--parsable", "--partition", "urgent", "--nodes", "2"])
        .args(["--exclusive", "--output", "/dev/null", "--wrap", "sleep 2"])
        .current_dir(&s.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "sbatch urgent: {}", text(&out));
    let urgent = String::from_utf8_lossy(&out.stdout).trim().to_string();
    s.jobs.push(urgent.clone());
    wait_for(
        "the requeued attempt resuming",
        Duration::from_secs(180),
        || rank_log(&exp, &id, 0).contains("resuming from"),
        || s.logs(&exp),
    );
    let recs = s.wait_end(&id, &exp, Duration::from_secs(240));
    let logs = s.logs(&exp);
    assert_eq!(recs[0]["JobState"], "COMPLETED", "{recs:?}\n{logs}");
    assert_eq!(recs[0]["Restarts"], "1", "requeued once by SLURM: {recs:?}");
    assert_eq!(s.job(&urgent)[0]["JobState"], "COMPLETED");
    let log0 = rank_log(&exp, &id, 0);
    assert!(log0.contains("SIGTERM received: stopping"), "{log0}");
    assert_requeued(&log0, &id, 0);
    let stop = json(&exp.join("stop.json"));
    assert_eq!(stop["reason"], "finished", "{stop}");
    assert_eq!(stop["preemptions"], 1, "{stop}");
    let steps: Vec<u64> = runs::metrics(&exp)
        .iter()
        .filter_map(|m| m["step"].as_u64())
        .collect();
    assert_eq!(steps, (1..=16).collect::<Vec<_>>());
    say(&format!(
        "SLURM preemption (partition urgent, PreemptMode=REQUEUE): {:.1} s in all",
        t.elapsed().as_secs_f64()
    ));
}

/// `nls-launch cancel` stops a running two-node job for good: the trainer takes scancel's
/// SIGTERM as the end of the attempt (checkpoint, exit, no `scontrol requeue`), so the job stays
/// cancelled, well past the few seconds a requeue cycle takes on this cluster.
#[test]
fn cancel_stops_a_running_two_node_job_for_good() {
    let Some((cluster, _serial)) = cluster() else {
        return;
    };
    let t = Instant::now();
    let mut s = Scratch::new(cluster, "cancel");
    let exp = s.path("exp");
    let id = s.submit(&exp, &TWO_NODES, &tiny_pretrain(256, 50));
    wait_for(
        &format!("step 3 of job {id}"),
        Duration::from_secs(180),
        || logged_step(&exp) >= 3,
        || s.logs(&exp),
    );
    let out = s.nls(&["cancel", exp.to_str().unwrap()]);
    assert!(out.status.success(), "nls-launch cancel: {}", text(&out));
    let recs = s.wait_end(&id, &exp, Duration::from_secs(60));
    assert_eq!(recs[0]["JobState"], "CANCELLED", "{recs:?}");
    wait_for(
        "rank 0's stop.json",
        Duration::from_secs(30),
        || read(&exp.join("stop.json")).contains("terminated"),
        || s.logs(&exp),
    );
    // A requeue cycle takes 6–7 s here (cred_expire=5, sched_interval=1): wait for three.
    std::thread::sleep(Duration::from_secs(20));
    let recs = s.job(&id);
    let logs = s.logs(&exp);
    assert_eq!(recs[0]["JobState"], "CANCELLED", "{recs:?}\n{logs}");
    assert_eq!(recs[0]["Restarts"], "0", "{recs:?}\n{logs}");
    let log0 = rank_log(&exp, &id, 0);
    assert!(log0.contains("SIGTERM received: stopping"), "{log0}");
    assert_requeued(&log0, &id, 0);
    let stop = json(&exp.join("stop.json"));
    assert!(stop["step"].as_u64().unwrap() >= 3, "{stop}");
    assert!(
        Path::new(stop["file"].as_str().unwrap()).is_file(),
        "the checkpoint named in {stop} is missing"
    );
    say(&format!(
        "cancel of a running 2-node job: stayed cancelled; {:.1} s in all",
        t.elapsed().as_secs_f64()
    ));
}

#[test]
fn a_killed_rank_fails_the_job_within_the_timeout() {
    let Some((cluster, _serial)) = cluster() else {
        return;
    };
    let t = Instant::now();
    let mut s = Scratch::new(cluster, "sigkill");
    let exp = s.path("exp");
    let timeout = 20;
    let mut cmd = tiny_pretrain(256, 50);
    cmd.extend(["--dist-timeout-s".into(), timeout.to_string()]);
    let id = s.submit(&exp, &TWO_NODES, &cmd);
    wait_for(
        "step 3",
        Duration::from_secs(180),
        || logged_step(&exp) >= 3,
        || s.logs(&exp),
    );
    let pid = trainer_pid(&exp, 1, None).expect("the trainer process of rank 1");
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let recs = s.wait_end(&id, &exp, Duration::from_secs(timeout + 40));
    let ended = killed.elapsed();
    let logs = s.logs(&exp);
    assert_eq!(recs[0]["JobState"], "FAILED", "{recs:?}\n{logs}");
    assert!(
        ended < Duration::from_secs(timeout + 15),
        "the job took {ended:?} to fail"
    );
    // Which task died: srun says so in the batch log; rank 0's error names the silent rank.
    assert!(logs.contains("n2: task 1: Killed"), "{logs}");
    assert!(
        logs.contains("failed on rank 0 of 2") && logs.contains("no heartbeat from rank(s) [1]"),
        "{logs}"
    );
    let status = s.status(&exp);
    assert!(status.contains("FAILED"), "{status}");
    assert!(
        status.contains("task 1: Killed") && status.contains("no heartbeat from rank(s) [1]"),
        "status names the task that died:\n{status}"
    );
    say(&format!(
        "SIGKILL of rank 1: the job failed {:.1} s after the kill; {:.1} s in all",
        ended.as_secs_f64(),
        t.elapsed().as_secs_f64()
    ));
}

#[test]
fn time_limits_requeue_then_stop_for_good_keeping_the_checkpoint() {
    let Some((cluster, _serial)) = cluster() else {
        return;
    };
    let t = Instant::now();
    let mut s = Scratch::new(cluster, "time-limit");
    let exp = s.path("exp");
    // SIGUSR1 20 s before a 1-minute limit. slurmctld looks every 30 s and signals once
    // `now + 30 s + delay >= end`, so it comes between 10 s and 40 s into each attempt (with
    // a delay of 30 s it could come at once, before the trainer has its handlers).
    let flags = [
        &TWO_NODES[..],
        &["--time", "1", "--signal-delay", "20", "--max-timeouts", "1"],
    ]
    .concat();
    let id = s.submit(&exp, &flags, &tiny_pretrain(256, 1000));
    let recs = s.wait_end(&id, &exp, Duration::from_secs(200));
    let logs = s.logs(&exp);
    assert_eq!(recs[0]["JobState"], "COMPLETED", "{recs:?}\n{logs}");
    assert_eq!(recs[0]["Restarts"], "1", "one requeue: {recs:?}\n{logs}");
    let log0 = rank_log(&exp, &id, 0);
    assert!(
        log0.contains("stopping (Timeout; 1 timeouts")
            && log0.contains("resuming from")
            && log0.contains("stopping (Timeout; 2 timeouts"),
        "{log0}"
    );
    assert_requeued(&log0, &id, 1);
    let stop = json(&exp.join("stop.json"));
    assert_eq!(stop["reason"], "max-timeouts", "{stop}");
    assert_eq!(stop["timeouts"], 2, "{stop}");
    let ckpt = PathBuf::from(stop["file"].as_str().unwrap());
    assert!(ckpt.is_file(), "the checkpoint {} is kept", ckpt.display());
    assert!(!exp.join("backbone.safetensors").exists());
    let status = s.status(&exp);
    assert!(
        status.contains("stopped for good") && status.contains("nls-launch resume"),
        "{status}"
    );
    say(&format!(
        "time limit (--time 1, USR1@20, 2 attempts, stopped at step {}): {:.1} s; \
         `nls-launch status` says:\n{status}",
        stop["step"],
        t.elapsed().as_secs_f64()
    ));
}

#[test]
fn an_evaluate_sweep_runs_as_a_job_array() {
    let Some((cluster, _serial)) = cluster() else {
        return;
    };
    let t = Instant::now();
    let mut s = Scratch::new(cluster, "sweep");
    let exp = s.path("exp");
    let file = s.path("sweep.toml");
    std::fs::write(
        &file,
        format!(
            r#"command = ["evaluate", "--data-dir", "{FASHION_MNIST}", "--backbone", "none",
  "--width", "8", "--kind", "symmetric", "--epochs", "2", "--batch-size", "64",
  "--train-samples", "256", "--test-samples", "256", "--stopping", "0", "--backend", "gloo"]
[job]
cpu = true
nodes = 1
[grid]
loss = ["ce", "gce"]
noise = [0.2, 0.4]
"#
        ),
    )
    .unwrap();
    let id = s.submit(&exp, &["run", file.to_str().unwrap()], &[]);
    let recs = s.wait_end(&id, &exp, Duration::from_secs(240));
    let logs = s.logs(&exp);
    assert_eq!(recs.len(), 4, "{recs:?}");
    for r in &recs {
        assert_eq!(r["JobState"], "COMPLETED", "{r:?}\n{logs}");
    }
    let mut results: Vec<String> = std::fs::read_dir(exp.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("results.json").is_file())
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    results.sort();
    assert_eq!(
        results,
        [
            "loss_ce-noise0.2",
            "loss_ce-noise0.4",
            "loss_gce-noise0.2",
            "loss_gce-noise0.4"
        ],
        "{logs}"
    );
    let status = s.status(&exp);
    assert!(status.contains("results 4"), "{status}");
    let report = s.nls(&["report", exp.to_str().unwrap()]);
    assert!(report.status.success(), "{}", text(&report));
    let csv = read(&exp.join("report.csv"));
    assert_eq!(csv.lines().count(), 5, "a header and 4 rows:\n{csv}");
    assert!(
        text(&report).contains("| noise | loss ce | loss gce |"),
        "{}",
        text(&report)
    );
    say(&format!(
        "evaluate sweep (array of 4): {:.1} s",
        t.elapsed().as_secs_f64()
    ));
}
