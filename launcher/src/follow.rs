//! `status`, `logs` and `cancel`: the follow-up commands, reading what [`crate::submit`]
//! recorded and asking SLURM through [`crate::monitor`] (local jobs: [`crate::local`]'s
//! state file).

use crate::cancelled::{self, Cancelled};
use crate::config::{is_training, Experiment, JobArgs};
use crate::launch::RESOLVED;
use crate::local::{self, LocalState};
use crate::monitor::{self, QueueRow, RunContext};
use crate::submit::{self, Submission};
use anyhow::{ensure, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Above this many array rows, status prints counts per state instead of one line each.
const MAX_ROWS: usize = 20;

/// `status [EXP]`: the jobs of an experiment (or, without one, the user's queue).
pub fn status(exp: Option<&Path>) -> Result<()> {
    let exp = match exp {
        Some(e) => e.to_path_buf(),
        None if Path::new(submit::SUBMISSIONS).is_file() => PathBuf::from("."),
        None => return user_queue(),
    };
    let subs = submit::read_submissions(&exp)?;
    let ids: Vec<String> = subs
        .iter()
        .filter(|s| s.executor.is_none())
        .map(|s| s.job_id.clone())
        .collect();
    let rows = match ids.is_empty() {
        true => Vec::new(),
        false => monitor::squeue(&ids)?,
    };
    let local = local::read_state(&exp)?;
    let cancelled = cancelled::read(&exp)?.unwrap_or_default();
    let mut active = local.as_ref().is_some_and(local::is_running);
    for s in &subs {
        if s.executor.is_some() {
            print_local(s, local.as_ref(), &cancelled);
            continue;
        }
        let mine: Vec<&QueueRow> = rows
            .iter()
            .filter(|r| monitor::split_job_id(&r.id).0 == s.job_id)
            .collect();
        active |= !mine.is_empty();
        print_submission(s, &mine, &cancelled);
    }
    let last = subs.last();
    let ctx = RunContext {
        exp: &exp,
        active,
        local: last.is_some_and(|s| s.executor.is_some()),
        cancelled: last.is_some_and(|s| cancelled.covers(&s.job_id)),
        epochs: counts_epochs(&exp),
    };
    print_runs(&ctx)?;
    println!("{}", crate::launch::tensorboard_line(&exp));
    Ok(())
}

/// Whether the experiment runs `trainer evaluate` (its progress is in epochs), from job.toml.
fn counts_epochs(exp: &Path) -> bool {
    let flags = JobArgs {
        exp_dir: Some(exp.to_path_buf()),
        ..JobArgs::default()
    };
    Experiment::load(Some(&exp.join(RESOLVED)), &flags, &[])
        .is_ok_and(|e| e.job.command.first().is_some_and(|c| is_training(c)))
}

fn user_queue() -> Result<()> {
    let out = Command::new("squeue")
        .args(["--me", "-h", "-o", monitor::SQUEUE_FORMAT])
        .output()
        .context("running squeue (is SLURM installed here?)")?;
    ensure!(
        out.status.success(),
        "squeue failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let rows = monitor::parse_squeue(&String::from_utf8_lossy(&out.stdout))?;
    rows.iter().for_each(|r| println!("{}", row_line(r)));
    if rows.is_empty() {
        println!("no jobs of yours in the queue");
    }
    Ok(())
}

fn print_submission(s: &Submission, rows: &[&QueueRow], cancelled: &Cancelled) {
    let array = s
        .array
        .as_deref()
        .map(|a| format!(" (array {a})"))
        .unwrap_or_default();
    println!("job {}{array}, submitted {}", s.job_id, s.time);
    if cancelled.covers(&s.job_id) {
        println!("  cancelled with `nls-launch cancel` ({})", cancelled.time);
    }
    if rows.is_empty() {
        println!("  {}", ended(&s.job_id));
    } else if rows.len() <= MAX_ROWS {
        rows.iter().for_each(|r| println!("  {}", row_line(r)));
    } else {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        rows.iter()
            .for_each(|r| *counts.entry(&r.state).or_default() += 1);
        let text: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
        println!("  {}", text.join(", "));
    }
}

/// A local submission: its executor's state when it is the latest one.
fn print_local(s: &Submission, state: Option<&LocalState>, cancelled: &Cancelled) {
    println!("local job {}, started {}", s.job_id, s.time);
    let text = match state.filter(|st| st.job_id == s.job_id) {
        Some(st) if st.state == "stopped" && cancelled.covers(&s.job_id) => format!(
            "cancelled with `nls-launch cancel` ({}; nls-launch pid {}): the ranks checkpointed",
            cancelled.time, st.pid
        ),
        Some(st) if st.state == "running" && !local::is_running(st) => format!(
            "its nls-launch (pid {}) is gone without a word: killed; the run's stop.json says \
             where it stood",
            st.pid
        ),
        Some(st) => format!(
            "{} (nls-launch pid {}){}",
            st.state,
            st.pid,
            st.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        None => "superseded by a later launch".into(),
    };
    println!("  {text}");
}

fn row_line(r: &QueueRow) -> String {
    format!(
        "{:<16} {:<12} {} / {}  {}",
        r.id, r.state, r.elapsed, r.limit, r.reason
    )
}

/// How a job that left the queue ended: scontrol while SLURM remembers it, then sacct.
fn ended(id: &str) -> String {
    let recs = monitor::scontrol(id);
    if !recs.is_empty() {
        let field = |r: &BTreeMap<String, String>, k: &str| r.get(k).cloned().unwrap_or_default();
        let lines: Vec<String> = recs
            .iter()
            .map(|r| {
                format!(
                    "{} {} exit {} restarts {} ({})",
                    monitor::record_id(r),
                    field(r, "JobState"),
                    field(r, "ExitCode"),
                    field(r, "Restarts"),
                    field(r, "Reason")
                )
            })
            .collect();
        return lines.join("\n  ");
    }
    match monitor::sacct(id) {
        Ok(rows) if !rows.is_empty() => rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} exit {} elapsed {}",
                    r.id, r.state, r.exit_code, r.elapsed
                )
            })
            .collect::<Vec<_>>()
            .join("\n  "),
        Ok(_) => "no longer in the queue; sacct knows nothing of it".into(),
        Err(why) => format!(
            "no longer in the queue; its end state is unknown without accounting ({why}); \
             the run's stop.json and logs say how it ended"
        ),
    }
}

/// `stop.json` / `results.json` of the run (single job) or of every run of a sweep.
fn print_runs(ctx: &RunContext) -> Result<()> {
    let exp = ctx.exp;
    let runs = exp.join("runs");
    if !runs.is_dir() {
        let text = match monitor::read_stop(exp)? {
            Some(stop) => monitor::explain_stop(&stop, ctx),
            None if ctx.active => {
                "no stop.json yet (not started, or still in its first attempt)".into()
            }
            None if ctx.cancelled => format!(
                "cancelled before it wrote a stop.json; `{}` starts it again",
                ctx.resume_command()
            ),
            None => "ended without stopping cleanly (no stop.json): it failed or was killed".into(),
        };
        println!("run: {text}");
        if !ctx.active && !ctx.cancelled && !exp.join("stop.json").is_file() {
            print_failures(exp)?;
        }
        return Ok(());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
        .with_context(|| format!("reading {}", runs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for d in &dirs {
        let key = match (d.join("results.json").is_file(), monitor::read_stop(d)?) {
            (true, _) => "results".to_string(),
            (false, Some(stop)) => {
                if stop.reason == "max-timeouts" || !ctx.active {
                    let name = d.file_name().unwrap_or_default().to_string_lossy();
                    println!("  {name}: {}", monitor::explain_stop(&stop, ctx));
                }
                match ctx.cancelled && !ctx.active {
                    true => "cancelled".into(),
                    false => stop.reason,
                }
            }
            (false, None) => "no stop.json".to_string(),
        };
        *counts.entry(key).or_default() += 1;
    }
    let text: Vec<String> = counts.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("runs ({} folders): {}", dirs.len(), text.join(", "));
    Ok(())
}

/// What the latest submission's logs say went wrong: `srun: error:` lines of the batch log
/// (`task 1: Killed`) and each task log's last `error:` with the lines under it.
fn print_failures(exp: &Path) -> Result<()> {
    let subs = submit::read_submissions(exp)?;
    let Some(last) = subs.last() else {
        return Ok(());
    };
    for f in log_files(&exp.join("logs"), last, None)? {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".err") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let lines: Vec<&str> = match name.ends_with("_batch.err") {
            true => text
                .lines()
                .filter(|l| l.contains("srun: error:"))
                .collect(),
            // The last error and the lines under it (the cause, the silent ranks).
            false => {
                let all: Vec<&str> = text.lines().collect();
                let from = all.iter().rposition(|l| l.contains("error:"));
                from.map_or(Vec::new(), |i| all[i..].iter().take(6).copied().collect())
            }
        };
        lines
            .iter()
            .for_each(|l| println!("  {name}: {}", l.trim()));
    }
    Ok(())
}

/// `logs EXP [--task N] [--follow]`: the task logs of the latest submission.
pub fn logs(exp: &Path, task: Option<usize>, follow: bool) -> Result<()> {
    let subs = submit::read_submissions(exp)?;
    let last = subs.last().context("no submission recorded")?;
    let files = log_files(&exp.join("logs"), last, task)?;
    ensure!(
        !files.is_empty(),
        "no log files of job {} in {}/logs yet (is it still pending?)",
        last.job_id,
        exp.display()
    );
    if follow {
        let status = Command::new("tail")
            .args(["-n", "+1", "-F"])
            .args(&files)
            .status()
            .context("running tail -F")?;
        ensure!(status.success(), "tail -F exited with {status}");
        return Ok(());
    }
    for f in &files {
        let text = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        println!("==> {} <==", f.display());
        print!("{}", String::from_utf8_lossy(&text));
    }
    Ok(())
}

/// Log files of a submission: `<id>_<rank>.*`, arrays `<id>_<task>_<rank>.*` (plus the batch
/// shell's `_batch` files); `task` picks the array task (sweeps) or the rank (single jobs).
pub fn log_files(dir: &Path, sub: &Submission, task: Option<usize>) -> Result<Vec<PathBuf>> {
    let prefix = match (task, sub.array.is_some()) {
        (None, _) => format!("{}_", sub.job_id),
        (Some(t), true) => format!("{}_{t}_", sub.job_id),
        (Some(t), false) => format!("{}_{t}.", sub.job_id),
    };
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// `cancel EXP`: scancel the recorded SLURM jobs still queued or running (a job array as a
/// whole), SIGTERM to a running local executor (its ranks checkpoint, then it ends without
/// restarting them), and `cancelled.json` records what was cancelled.
pub fn cancel(exp: &Path) -> Result<()> {
    let mut stopped: Vec<String> = Vec::new();
    if let Some(st) = local::read_state(exp)?.filter(local::is_running) {
        kill(Pid::from_raw(st.pid as i32), Signal::SIGTERM)
            .with_context(|| format!("signalling nls-launch (pid {})", st.pid))?;
        println!(
            "stopping local job {} (SIGTERM to nls-launch pid {}: the ranks checkpoint)",
            st.job_id, st.pid
        );
        stopped.push(st.job_id);
    }
    stopped.extend(scancel_queued(exp)?);
    if stopped.is_empty() {
        println!(
            "no job of {} is queued or running: nothing to cancel",
            exp.display()
        );
        return Ok(());
    }
    cancelled::record(exp, &stopped)?;
    println!(
        "recorded in {}; `nls-launch resume {}` continues later",
        exp.join(cancelled::FILE).display(),
        exp.display()
    );
    Ok(())
}

/// scancel for each recorded SLURM job still in the queue; returns the ids cancelled.
fn scancel_queued(exp: &Path) -> Result<Vec<String>> {
    let ids: Vec<String> = submit::read_submissions(exp)?
        .into_iter()
        .filter(|s| s.executor.is_none())
        .map(|s| s.job_id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let queued: Vec<String> = monitor::squeue(&ids)?
        .iter()
        .map(|r| monitor::split_job_id(&r.id).0.to_string())
        .collect();
    let mut cancelled = Vec::new();
    for id in ids.iter().filter(|id| queued.contains(id)) {
        let out = Command::new("scancel")
            .arg(id)
            .output()
            .context("running scancel (is SLURM installed here?)")?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success(),
            "scancel {id} failed ({}): {}",
            out.status,
            err.trim()
        );
        println!("cancelled job {id}");
        cancelled.push(id.clone());
    }
    Ok(cancelled)
}
