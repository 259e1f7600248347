//! The local executor (`nls-launch --local`): the same job on this machine, without SLURM.
//!
//! The single job, or each array task of a sweep in turn, runs as nodes × tasks-per-node trainer
//! processes with the variables `srun` would export ([`env`]) and the same exp-dir layout as a
//! submission (`job.sh`, `job.toml`, `submissions.jsonl`, `logs/<job>_<rank>.{out,err}`,
//! arrays `logs/<job>_<task>_<rank>.*`). The life cycle follows a cluster's:
//! - SIGUSR1 sent to `nls-launch` is forwarded to every rank, as `scancel --signal=USR1` would
//!   be; SIGTERM and Ctrl-C are forwarded as SIGTERM and end the executor after the ranks
//!   checkpoint (exit 75: resume with `nls-launch resume EXP --local`).
//! - `--time` is enforced per attempt: SIGUSR1 `signal_delay` seconds before the limit, SIGTERM
//!   at it, SIGKILL [`KILL_WAIT`] later.
//! - A sweep's configurations run one after another; one that fails is reported (name and log)
//!   and the next starts; the job then ends failed, naming each failure.
//! - Ranks that exit with 75 (the trainer's "restart me", asked for by
//!   `NLS_RESTART_BY_EXIT_CODE`) are started again with `SLURM_RESTART_COUNT` one higher, as a
//!   requeue would; a failed rank ends the job, the others get [`FAIL_GRACE`] to report what
//!   they saw before they are killed.
//!
//! The executor's state (running with its pid, or how it ended) is in `<exp>/local.json`,
//! which `status` and `cancel` read.

pub mod env;

mod echo;
mod group;
mod signals;

use crate::atomic::{read_json, write_atomic};
use crate::config::{Experiment, JobConfig};
use crate::launch::{write_exp_dir, Plan, Unit};
use crate::submit::{self, Submission};
use anyhow::{Context, Result};
use group::{AttemptEnd, Group, RankSpec};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The executor's state file in the exp-dir.
pub const STATE: &str = "local.json";
/// `executor` of a local submission in `submissions.jsonl`.
pub const EXECUTOR: &str = "local";
/// SLURM's KillWait: time between SIGTERM and SIGKILL at the time limit or on a stop.
const KILL_WAIT: Duration = Duration::from_secs(30);
/// Time the other ranks get to diagnose a failed rank before they are killed.
const FAIL_GRACE: Duration = Duration::from_secs(20);
/// A run that asks to be restarted this many times in a row is stuck, not preempted.
const MAX_RESTARTS: u32 = 100;
const POLL: Duration = Duration::from_millis(100);

/// `<exp>/local.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocalState {
    pub job_id: String,
    /// The `nls-launch` process supervising the job.
    pub pid: u32,
    /// `running`, `finished`, `stopped` (resumable) or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub time: String,
}

/// How a local job ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    /// Stopped by SIGTERM/Ctrl-C after the ranks checkpointed.
    Stopped,
    Failed(String),
}

impl Outcome {
    /// `nls-launch`'s exit code: 0, 75 (resumable, like the trainer's) or 2.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Finished => 0,
            Outcome::Stopped => 75,
            Outcome::Failed(_) => 2,
        }
    }
}

/// Writes the exp-dir and runs the planned job here.
pub fn run(exp: &Experiment, plan: &Plan) -> Result<Outcome> {
    signals::install()?;
    let job = &exp.job;
    let script = write_exp_dir(exp, plan)?;
    let id = job_id(&job.exp_dir)?;
    submit::record(
        &job.exp_dir,
        &Submission {
            job_id: id.to_string(),
            cluster: None,
            time: chrono::Utc::now().to_rfc3339(),
            script,
            array: plan.pending().map(|p| crate::sweep::array_spec(&p, None)),
            tasks: plan.pending(),
            executor: Some(EXECUTOR.into()),
        },
    )?;
    let units = &plan.units;
    save_state(job, id, "running", None)?;
    say(&format!(
        "local job {id}: {} × {} rank(s), {} run(s); logs in {}/logs/{id}_*",
        job.nodes,
        job.tasks_per_node(),
        units.len(),
        job.exp_dir.display()
    ));
    let outcome = match run_units(job, id, units) {
        Ok(o) => o,
        Err(e) => {
            save_state(job, id, "failed", Some(format!("{e:#}")))?;
            return Err(e);
        }
    };
    let (state, detail) = match &outcome {
        Outcome::Finished => ("finished", None),
        Outcome::Stopped => (
            "stopped",
            Some(format!(
                "stopped after a checkpoint; resume with `nls-launch resume {} --local`",
                job.exp_dir.display()
            )),
        ),
        Outcome::Failed(why) => ("failed", Some(why.clone())),
    };
    save_state(job, id, state, detail.clone())?;
    say(&format!(
        "local job {id} {state}{}",
        detail.map(|d| format!(": {d}")).unwrap_or_default()
    ));
    Ok(outcome)
}

/// Runs the units one after another. A failed unit is reported and the next one starts (a
/// sweep's configurations do not depend on each other); a stop request ends the job. Failed
/// when any unit failed, naming each with its log.
fn run_units(job: &JobConfig, id: u64, units: &[Unit]) -> Result<Outcome> {
    let n = units.len();
    let mut failed: Vec<String> = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        if signals::stop_asked() {
            return Ok(Outcome::Stopped);
        }
        let started = Instant::now();
        say(&format!("[{}/{n}] starting {}", i + 1, label(unit)));
        match run_unit(job, id, unit)? {
            Outcome::Finished => say(&format!(
                "[{}/{n}] {} finished in {:.0} s",
                i + 1,
                label(unit),
                started.elapsed().as_secs_f64()
            )),
            Outcome::Stopped => return Ok(Outcome::Stopped),
            Outcome::Failed(why) => {
                let (_, log) = log_paths(job, id, unit.task, 0);
                say(&format!("[{}/{n}] {why} (log: {})", i + 1, log.display()));
                failed.push(format!("{why} (log: {})", log.display()));
            }
        }
    }
    Ok(match failed.len() {
        0 => Outcome::Finished,
        1 if n == 1 => Outcome::Failed(failed.remove(0)),
        k => Outcome::Failed(format!(
            "{k} of {n} runs failed: {}; `nls-launch resume {} --local` runs again every \
             configuration without results",
            failed.join("; "),
            job.exp_dir.display()
        )),
    })
}

/// `task 3 (loss_ce-seed1)`, or a single job's exp-dir.
fn label(unit: &Unit) -> String {
    match unit.task {
        Some(t) => format!("task {t} ({})", unit.name),
        None => unit.name.clone(),
    }
}

/// A new job id: the time in seconds, above every id this exp-dir has recorded.
fn job_id(exp_dir: &Path) -> Result<u64> {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let last = match exp_dir.join(submit::SUBMISSIONS).is_file() {
        true => submit::read_submissions(exp_dir)?
            .iter()
            .filter_map(|s| s.job_id.parse::<u64>().ok())
            .max()
            .unwrap_or(0),
        false => 0,
    };
    Ok(now.max(last + 1))
}

fn save_state(job: &JobConfig, id: u64, state: &str, detail: Option<String>) -> Result<()> {
    let s = LocalState {
        job_id: id.to_string(),
        pid: std::process::id(),
        state: state.into(),
        detail,
        time: chrono::Utc::now().to_rfc3339(),
    };
    let text = serde_json::to_string_pretty(&s).context("encoding the local state")?;
    write_atomic(&job.exp_dir.join(STATE), text.as_bytes())
}

/// `<exp>/local.json`, None when absent.
pub fn read_state(exp_dir: &Path) -> Result<Option<LocalState>> {
    read_json(&exp_dir.join(STATE))
}

/// Whether the executor recorded in `state` is still supervising its job.
pub fn is_running(state: &LocalState) -> bool {
    state.state == "running" && Path::new(&format!("/proc/{}", state.pid)).exists()
}

fn say(text: &str) {
    eprintln!("[nls-launch] {text}");
}

/// Log files of one rank: `<job>_<rank>` or, in a sweep, `<job>_<task>_<rank>`.
fn log_paths(job: &JobConfig, id: u64, task: Option<usize>, rank: u32) -> (PathBuf, PathBuf) {
    let stem = match task {
        Some(t) => format!("{id}_{t}_{rank}"),
        None => format!("{id}_{rank}"),
    };
    let logs = job.exp_dir.join("logs");
    (
        logs.join(format!("{stem}.out")),
        logs.join(format!("{stem}.err")),
    )
}

/// Runs one unit to its end, restarting the group while it asks to be restarted.
fn run_unit(job: &JobConfig, id: u64, unit: &Unit) -> Result<Outcome> {
    let world = job.nodes * job.tasks_per_node();
    let (out0, err0) = log_paths(job, id, unit.task, 0);
    // A sweep's tasks are many: only their starts and ends are shown, not their logs.
    let mut echo = echo::Echo::new(out0, err0, unit.task.is_none());
    let trainer = job.trainer.as_deref().unwrap_or(Path::new("trainer"));
    for restarts in 0..=MAX_RESTARTS {
        let port = free_port()?;
        let ranks: Vec<RankSpec> = (0..world)
            .map(|rank| {
                let (stdout, stderr) = log_paths(job, id, unit.task, rank);
                RankSpec {
                    env: env::rank_env(&place(job, id, unit.task, rank, restarts, port)),
                    stdout,
                    stderr,
                }
            })
            .collect();
        let mut group = Group::spawn(trainer, &unit.args, &ranks)?;
        let stopped = supervise(&mut group, job, &mut echo)?;
        match group::classify(&group.statuses()) {
            AttemptEnd::Done => return Ok(Outcome::Finished),
            AttemptEnd::Failed(why) => {
                return Ok(Outcome::Failed(format!("{}: {why}", label(unit))))
            }
            AttemptEnd::Restart if stopped => return Ok(Outcome::Stopped),
            AttemptEnd::Restart => say(&format!(
                "the ranks checkpointed and asked for a restart: starting again \
                 (SLURM_RESTART_COUNT={})",
                restarts + 1
            )),
        }
    }
    Ok(Outcome::Failed(format!(
        "{}: restarted {MAX_RESTARTS} times without finishing",
        label(unit)
    )))
}

fn place(
    job: &JobConfig,
    id: u64,
    task: Option<usize>,
    rank: u32,
    restarts: u32,
    port: u16,
) -> env::Place {
    env::Place {
        job_id: id,
        name: job.name.clone().unwrap_or_else(|| "nls".into()),
        nodes: job.nodes,
        tasks_per_node: job.tasks_per_node(),
        rank,
        array: task.map(|t| (id, t)),
        cpus_per_task: job.cpus_per_task,
        restarts,
        master_port: port,
        time_limit_s: job.time.map(|m| u64::from(m) * 60),
        threads: threads(job),
    }
}

/// Threads per rank unless `OMP_NUM_THREADS` is set: `cpus_per_task`, or this machine's cores
/// shared among the ranks (as torchrun does, so ranks do not oversubscribe the cores).
fn threads(job: &JobConfig) -> Option<u32> {
    if std::env::var_os("OMP_NUM_THREADS").is_some() {
        return None;
    }
    let ranks = job.nodes * job.tasks_per_node();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    job.cpus_per_task
        .or_else(|| (ranks > 1).then(|| (cores / ranks).max(1)))
}

/// A port free on the loopback interface right now, for the rendezvous.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("finding a free port for the rendezvous")?;
    Ok(listener.local_addr()?.port())
}

/// Watches one attempt until every rank has exited: forwards signals, enforces the time limit,
/// and kills what outlives a failure or a SIGTERM. Returns whether a stop was requested.
fn supervise(group: &mut Group, job: &JobConfig, echo: &mut echo::Echo) -> Result<bool> {
    let started = Instant::now();
    let limit = job.time.map(|m| Duration::from_secs(u64::from(m) * 60));
    let warning = limit.map(|l| l.saturating_sub(Duration::from_secs(job.signal_delay.into())));
    let (mut warned, mut at_limit, mut stopped) = (false, false, false);
    let mut kill_at: Option<Instant> = None;
    while group.reap()? {
        echo.pump();
        let received = signals::take();
        if received.usr1 {
            say("SIGUSR1 received: forwarding it to every rank (a preemption)");
            group.signal(Signal::SIGUSR1);
        }
        if received.stop {
            say("stop requested: SIGTERM to every rank; they checkpoint, then this job ends");
            stopped = true;
            group.signal(Signal::SIGTERM);
            kill_at.get_or_insert(Instant::now() + KILL_WAIT);
        }
        let elapsed = started.elapsed();
        if !warned && warning.is_some_and(|w| elapsed >= w) {
            warned = true;
            say(&format!(
                "{} s before the time limit: SIGUSR1 to every rank",
                job.signal_delay
            ));
            group.signal(Signal::SIGUSR1);
        }
        if !at_limit && limit.is_some_and(|l| elapsed >= l) {
            at_limit = true;
            say("time limit reached: SIGTERM to every rank");
            group.signal(Signal::SIGTERM);
            kill_at.get_or_insert(Instant::now() + KILL_WAIT);
        }
        if group.any_failed() {
            kill_at.get_or_insert(Instant::now() + FAIL_GRACE);
        }
        if kill_at.is_some_and(|k| Instant::now() >= k) {
            say("SIGKILL to the ranks still running");
            group.kill();
        }
        std::thread::sleep(POLL);
    }
    echo.pump();
    Ok(stopped)
}
