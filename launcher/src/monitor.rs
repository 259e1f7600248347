//! What SLURM and the trainer say about a job: parsers for `squeue`, `scontrol show job -o`
//! and `sacct` output (pure functions), thin wrappers that run those commands, and the
//! trainer's `stop.json`.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The squeue format the parser reads: id, state, elapsed, limit, reason or nodes.
pub const SQUEUE_FORMAT: &str = "%i|%T|%M|%l|%R";

/// One `squeue -h -o '%i|%T|%M|%l|%R'` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRow {
    /// As printed: `123`, `123_4`, `123_[0-3%2]`.
    pub id: String,
    pub state: String,
    pub elapsed: String,
    pub limit: String,
    /// `(Resources)`, `(ReqNodeNotAvail, UnavailableNodes:n1)` or the node list.
    pub reason: String,
}

/// A job id split into the job and its array part: `123_[0-3%2]` → (`123`, `[0-3%2]`).
pub fn split_job_id(id: &str) -> (&str, Option<&str>) {
    match id.split_once('_') {
        Some((job, task)) => (job, Some(task)),
        None => (id, None),
    }
}

/// Parse squeue lines; blank output (finished jobs) is no rows.
pub fn parse_squeue(out: &str) -> Result<Vec<QueueRow>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.splitn(5, '|').collect();
            let [id, state, elapsed, limit, reason] = f[..] else {
                anyhow::bail!("squeue line {l:?} does not have the 5 fields of {SQUEUE_FORMAT}");
            };
            Ok(QueueRow {
                id: id.trim().into(),
                state: state.trim().into(),
                elapsed: elapsed.trim().into(),
                limit: limit.trim().into(),
                reason: reason.trim().into(),
            })
        })
        .collect()
}

/// Parse `scontrol show job -o`: one record per line, `Key=Value` pairs. A value may hold
/// spaces (`Reason=`, `Command=`, `WorkDir=`): a word that does not start a key
/// (an upper-case letter, then `[A-Za-z0-9_:/]`, then `=`) continues the previous value.
pub fn parse_scontrol(out: &str) -> Vec<BTreeMap<String, String>> {
    out.lines()
        .filter(|l| l.contains('='))
        .map(parse_scontrol_record)
        .collect()
}

fn parse_scontrol_record(line: &str) -> BTreeMap<String, String> {
    let mut rec = BTreeMap::new();
    let mut last: Option<String> = None;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        match word.split_once('=').filter(|(k, _)| is_key(k)) {
            Some((k, v)) => {
                rec.insert(k.to_string(), v.to_string());
                last = Some(k.to_string());
            }
            None => {
                if let Some(v) = last.as_ref().and_then(|k| rec.get_mut(k)) {
                    v.push(' ');
                    v.push_str(word);
                }
            }
        }
    }
    rec
}

fn is_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_uppercase())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_:/".contains(c))
}

/// A job's id as users write it: `<array job>_<task>` for an array task (scontrol's `JobId` is
/// the task's own number there), else `JobId`.
pub fn record_id(rec: &BTreeMap<String, String>) -> String {
    let job = rec.get("JobId").cloned().unwrap_or_default();
    match (rec.get("ArrayJobId"), rec.get("ArrayTaskId")) {
        (Some(array), Some(task)) if !array.is_empty() && !task.is_empty() => {
            format!("{array}_{task}")
        }
        _ => job,
    }
}

/// One `sacct -n -P -o JobID,State,ExitCode,Elapsed` record (job steps are dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcctRow {
    pub id: String,
    pub state: String,
    pub exit_code: String,
    pub elapsed: String,
}

pub fn parse_sacct(out: &str) -> Vec<AcctRow> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().splitn(4, '|').collect();
            let [id, state, exit_code, elapsed] = f[..] else {
                return None;
            };
            (!id.contains('.')).then(|| AcctRow {
                id: id.into(),
                state: state.into(),
                exit_code: exit_code.into(),
                elapsed: elapsed.into(),
            })
        })
        .collect()
}

/// Whether a state (`COMPLETED`, `CANCELLED by 1000`, `PENDING`...) is final. Anything not
/// known as final (REQUEUED, PREEMPTED, PENDING, RUNNING, REQUEUE_HOLD, ...) is not.
pub fn is_finished(state: &str) -> bool {
    const FINAL: [&str; 9] = [
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "REVOKED",
    ];
    let word = state.split_whitespace().next().unwrap_or("");
    FINAL.contains(&word.trim_end_matches('+'))
}

/// `squeue` for these job ids; a job that left the queue is no row.
pub fn squeue(ids: &[String]) -> Result<Vec<QueueRow>> {
    let out = Command::new("squeue")
        .args(["-h", "-o", SQUEUE_FORMAT, "-j", &ids.join(",")])
        .output()
        .context("running squeue (is SLURM installed here?)")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A single finished job: "slurm_load_jobs error: Invalid job id specified".
    if !out.status.success() && !stderr.contains("Invalid job id") {
        anyhow::bail!("squeue failed ({}): {}", out.status, stderr.trim());
    }
    parse_squeue(&String::from_utf8_lossy(&out.stdout))
}

/// `scontrol show job -o <id>`: the job's records while SLURM remembers it (MinJobAge).
pub fn scontrol(id: &str) -> Vec<BTreeMap<String, String>> {
    Command::new("scontrol")
        .args(["show", "job", "-o", id])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| parse_scontrol(&String::from_utf8_lossy(&o.stdout)))
        .unwrap_or_default()
}

/// `sacct` for one job: Ok(rows), or Err(why) when accounting is not available.
pub fn sacct(id: &str) -> std::result::Result<Vec<AcctRow>, String> {
    let out = Command::new("sacct")
        .args(["-n", "-P", "-o", "JobID,State,ExitCode,Elapsed", "-j", id])
        .output()
        .map_err(|e| format!("sacct could not run: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(parse_sacct(&String::from_utf8_lossy(&out.stdout)))
}

/// The trainer's `stop.json`: how the last attempt of a run ended.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct StopInfo {
    /// `finished`, `timeout`, `preemption` (SIGUSR1 early), `terminated` (SIGTERM) or
    /// `max-timeouts`.
    pub reason: String,
    #[serde(default)]
    pub step: Option<u64>,
    /// Epochs completed (a number: older files may hold it fractional).
    #[serde(default)]
    pub epoch: Option<f64>,
    #[serde(default)]
    pub timeouts: Option<u32>,
    #[serde(default)]
    pub preemptions: Option<u32>,
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
    #[serde(default)]
    pub requeued: Option<String>,
}

/// `<run>/stop.json`, None when absent.
pub fn read_stop(run_dir: &Path) -> Result<Option<StopInfo>> {
    crate::atomic::read_json(&run_dir.join("stop.json"))
}

/// What a run's explanation needs to know beyond its `stop.json`.
#[derive(Clone, Copy, Debug)]
pub struct RunContext<'a> {
    /// The experiment folder `nls-launch resume` takes (a sweep's, not its member's).
    pub exp: &'a Path,
    /// A job of the experiment is still queued or running.
    pub active: bool,
    /// The job ran under the local executor (`resume` needs `--local`).
    pub local: bool,
    /// `nls-launch cancel` stopped the latest job.
    pub cancelled: bool,
    /// The run counts epochs (`trainer evaluate`), not steps (`trainer pretrain`).
    pub epochs: bool,
}

impl RunContext<'_> {
    /// The command that continues the experiment from its checkpoints.
    pub fn resume_command(&self) -> String {
        let local = if self.local { " --local" } else { "" };
        format!("nls-launch resume {}{local}", self.exp.display())
    }
}

/// ` at epoch 53` for evaluation runs, ` at step 1200` for pretraining, from `stop.json`.
pub fn progress(stop: &StopInfo, epochs: bool) -> String {
    match (epochs, stop.epoch, stop.step) {
        (true, Some(e), _) => format!(" at epoch {e}"),
        (_, _, Some(s)) => format!(" at step {s}"),
        _ => String::new(),
    }
}

/// Why a run stopped and what to do about it.
pub fn explain_stop(stop: &StopInfo, ctx: &RunContext) -> String {
    let at = progress(stop, ctx.epochs);
    let ckpt = stop.file.as_deref().unwrap_or("the newest checkpoint");
    let resume = format!("`{}` continues from {ckpt}", ctx.resume_command());
    match stop.reason.as_str() {
        "finished" => format!("finished{at}"),
        _ if ctx.cancelled && !ctx.active => format!("cancelled{at} (nls-launch cancel); {resume}"),
        "max-timeouts" => format!(
            "stopped for good{at} after {} time limits (--max-timeouts); {resume}",
            stop.timeouts.unwrap_or(0)
        ),
        "terminated" if ctx.active => format!(
            "last attempt ended by SIGTERM{at}; SLURM requeued the job and it resumes from {ckpt}"
        ),
        "terminated" => format!("ended by SIGTERM (cancelled or preempted){at}; {resume}"),
        r @ ("timeout" | "preemption") if ctx.active => {
            format!(
                "last attempt stopped by a {r}{at}; the job is requeued and resumes from {ckpt}"
            )
        }
        r @ ("timeout" | "preemption") => {
            format!("stopped by a {r}{at} and the job is no longer queued; {resume}")
        }
        other => format!("stopped ({other}){at}"),
    }
}
