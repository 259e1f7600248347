//! What to do after SIGUSR1/SIGTERM under SLURM: was it the time limit or a preemption, and
//! which id `scontrol requeue` needs.
//!
//! The decisions are pure functions ([`classify`], [`requeue_id`], [`parse_slurm_time`],
//! [`parse_time_limit`]); [`job_time_limit`] and [`requeue`] are thin wrappers around
//! `scontrol`. The timeout rule is submitit's, so users who know its `max_num_timeout`
//! semantics (only timeouts count) get the same behaviour here.

use super::digits;
use super::ClusterEnv;
use anyhow::{bail, ensure, Context, Result};
use nix::sys::signal::{signal, SigHandler, Signal};
use serde::{Deserialize, Serialize};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// The signal type lives with the handler that records it; re-exported so callers of this
/// module need one import.
pub use super::signals::StopSignal;

/// Why the job is being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopKind {
    /// The job is near its time limit (`--signal=USR1@N`).
    Timeout,
    /// The scheduler (or a user) took the job away early.
    Preemption,
}

/// submitit's rule: SIGUSR1 is a timeout when `elapsed >= min(0.8·limit, limit − 600 s)`, else
/// a preemption. Without a known limit (None / UNLIMITED) a SIGUSR1 cannot be a timeout
/// warning, so it is a preemption; SIGTERM is always a preemption.
pub fn classify(signal: StopSignal, elapsed: Duration, time_limit: Option<Duration>) -> StopKind {
    let Some(limit) = time_limit else {
        return StopKind::Preemption;
    };
    if signal == StopSignal::Term {
        return StopKind::Preemption;
    }
    // Integer arithmetic: 0.8·limit as limit·4/5 stays exact at the boundary. For limits under
    // ten minutes `limit − 600 s` is negative in submitit, i.e. every SIGUSR1 is a timeout;
    // saturating at zero gives the same answer.
    let threshold = (limit * 4 / 5).min(limit.saturating_sub(Duration::from_secs(600)));
    match elapsed >= threshold {
        true => StopKind::Timeout,
        false => StopKind::Preemption,
    }
}

/// The id `scontrol requeue` must get: `<array_job_id>_<array_task_id>` inside a job array
/// (`SLURM_JOB_ID` there names only this task's own job record, and requeueing it is the
/// known Lightning bug), else the job id; None outside SLURM.
pub fn requeue_id(env: &ClusterEnv) -> Option<String> {
    if env.launcher != super::Launcher::Slurm {
        return None;
    }
    match (env.array_job_id, env.array_task_id) {
        (Some(array), Some(task)) => Some(format!("{array}_{task}")),
        _ => env.job_id.clone(),
    }
}

/// Parse a SLURM time string as `scontrol show job` prints TimeLimit/RunTime, or as `--time`
/// accepts it. "UNLIMITED", "INFINITE", "INVALID", "NONE", "Partition_Limit" and "-1" → None
/// (no limit this process can rely on). "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM",
/// "D-HH:MM:SS" → Some. The leading field may be any size (`--time=90` is 90 minutes); the
/// fields after it must be below 60 (minutes, seconds) or 24 (hours after a day count).
pub fn parse_slurm_time(s: &str) -> Result<Option<Duration>> {
    let t = s.trim();
    let no_limit = [
        "UNLIMITED",
        "INFINITE",
        "INVALID",
        "NONE",
        "PARTITION_LIMIT",
        "-1",
    ];
    if no_limit.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        return Ok(None);
    }
    parse_fields(t)
        .map(|secs| Some(Duration::from_secs(secs)))
        .with_context(|| {
            format!(
                "invalid SLURM time '{s}': expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, \
                 D-HH:MM:SS or UNLIMITED"
            )
        })
}

/// Seconds in a SLURM time string that is not one of the no-limit words.
fn parse_fields(t: &str) -> Result<u64> {
    let (days, rest) = match t.split_once('-') {
        Some((d, rest)) => (Some(number(d, None)?), rest),
        None => (None, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    // The leading field is unbounded unless a day count precedes it.
    let lead_max = days.map(|_| 24);
    let (h, m, s) = match (days, parts.as_slice()) {
        (None, [m]) => (0, number(m, None)?, 0),
        (None, [m, s]) => (0, number(m, None)?, number(s, Some(60))?),
        (_, [h, m, s]) => (
            number(h, lead_max)?,
            number(m, Some(60))?,
            number(s, Some(60))?,
        ),
        (Some(_), [h]) => (number(h, lead_max)?, 0, 0),
        (Some(_), [h, m]) => (number(h, lead_max)?, number(m, Some(60))?, 0),
        _ => bail!("{} ':'-separated fields", parts.len()),
    };
    let secs = days.unwrap_or(0) * 86_400 + h * 3600 + m * 60 + s;
    Ok(secs)
}

/// One field: ASCII digits only, below `max` when given; bounded so the sum cannot overflow.
fn number(field: &str, max: Option<u64>) -> Result<u64> {
    let n: u64 = digits(field).with_context(|| format!("'{field}' is not a number"))?;
    ensure!(n < max.unwrap_or(1 << 32), "'{field}' is out of range");
    Ok(n)
}

/// The TimeLimit of the first job in `scontrol show job -o` output (one line per job record).
/// Fields are `Key=Value` separated by spaces; JobName comes earlier on the line and could
/// contain spaces, so only a token that starts with `TimeLimit=` counts.
pub fn parse_time_limit(output: &str) -> Result<Option<Duration>> {
    let line = output
        .lines()
        .find(|l| !l.trim().is_empty())
        .context("scontrol printed no job record")?;
    let value = line
        .split_whitespace()
        .find_map(|tok| tok.strip_prefix("TimeLimit="))
        .with_context(|| format!("no TimeLimit= field in scontrol output: {line}"))?;
    parse_slurm_time(value)
}

/// `scontrol show job -o <id>` → the job's TimeLimit (None when unlimited).
pub fn job_time_limit(job_id: &str) -> Result<Option<Duration>> {
    let out = scontrol(&["scontrol", "show", "job", "-o", job_id])
        .with_context(|| format!("reading the time limit of job {job_id}"))?;
    parse_time_limit(&out).with_context(|| format!("reading the time limit of job {job_id}"))
}

/// Runs `scontrol requeue <id>`. The job must have been submitted with `--requeue` (or under
/// `JobRequeue=1`); otherwise scontrol refuses and the error says so.
pub fn requeue(id: &str) -> Result<()> {
    requeue_with(&["scontrol"], id)
}

/// `program` is the command that stands for `scontrol` (a prefix, so tests can use `sh -c`).
fn requeue_with(program: &[&str], id: &str) -> Result<()> {
    scontrol(&[program, &["requeue", id]].concat())
        .map(drop)
        .map_err(|e| match format!("{e:#}").contains("presently disabled") {
            true => e.context(format!(
                "requeueing job {id}: the job does not allow requeueing; submit it with \
                 `sbatch --requeue` (or set JobRequeue=1 in slurm.conf)"
            )),
            false => e.context(format!("requeueing job {id}")),
        })
}

/// Run `argv` with SIGTERM ignored; its stdout on success, an error carrying its stderr on
/// failure. `scontrol requeue` runs inside the job it requeues, and SLURM's SIGTERM to that job
/// can arrive before scontrol exits: killed, it would report a requeue that worked as failed.
/// (An ignored signal stays ignored across exec; SIGKILL after KillWait still ends it.)
fn scontrol(argv: &[&str]) -> Result<String> {
    let shown = argv.join(" ");
    let mut cmd = Command::new(argv[0]);
    // SAFETY: sigaction is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            signal(Signal::SIGTERM, SigHandler::SigIgn)
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let out = cmd
        .args(&argv[1..])
        .output()
        .with_context(|| format!("running `{shown}` (is the SLURM client installed?)"))?;
    ensure!(
        out.status.success(),
        "`{shown}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const MIN: u64 = 60;
    const HOUR: u64 = 3600;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn classify_table() {
        use StopKind::{Preemption as P, Timeout as T};
        use StopSignal::{Term, Usr1};
        // (signal, elapsed s, limit s, expected), thresholds computed by hand:
        // 60 s: min(48, 60 − 600 < 0) → 0, every SIGUSR1 is a timeout.
        // 2 h: min(5760, 6600) = 5760 s = 1 h 36 min.
        // 24 h: min(69120, 85800) = 69120 s = 19.2 h.
        // 1 h: min(2880, 3000) = 2880 s. 10 h: min(28800, 35400) = 28800 s.
        // 50 min: min(2400, 2400) = 2400 s: both terms agree.
        // 30 min: min(1440, 1200) = 1200 s: here limit − 600 s is the smaller one.
        let cases: &[(StopSignal, u64, Option<u64>, StopKind)] = &[
            (Usr1, 0, Some(60), T),
            (Usr1, 1, Some(60), T),
            (Usr1, 59, Some(60), T),
            (Usr1, 5759, Some(2 * HOUR), P),
            (Usr1, 5760, Some(2 * HOUR), T),
            (Usr1, 7200, Some(2 * HOUR), T),
            (Usr1, 69_119, Some(24 * HOUR), P),
            (Usr1, 69_120, Some(24 * HOUR), T),
            (Usr1, 2879, Some(HOUR), P),
            (Usr1, 2880, Some(HOUR), T),
            (Usr1, 28_799, Some(10 * HOUR), P),
            (Usr1, 28_800, Some(10 * HOUR), T),
            (Usr1, 2399, Some(50 * MIN), P),
            (Usr1, 2400, Some(50 * MIN), T),
            (Usr1, 1199, Some(30 * MIN), P),
            (Usr1, 1200, Some(30 * MIN), T),
            (Usr1, 10 * HOUR, None, P),
            (Term, 0, Some(60), P),
            (Term, 23 * HOUR, Some(24 * HOUR), P),
            (Term, 5, None, P),
        ];
        for &(signal, elapsed, limit, want) in cases {
            let got = classify(signal, secs(elapsed), limit.map(secs));
            assert_eq!(got, want, "{signal:?} at {elapsed} s, limit {limit:?} s");
        }
    }

    #[test]
    fn classify_boundary_below_a_second() {
        let limit = Some(secs(2 * HOUR));
        let just_before = secs(5760) - Duration::from_nanos(1);
        assert_eq!(
            classify(StopSignal::Usr1, just_before, limit),
            StopKind::Preemption
        );
    }

    #[test]
    fn parse_slurm_time_forms() {
        let cases: &[(&str, Option<u64>)] = &[
            ("UNLIMITED", None),
            ("unlimited", None),
            ("INFINITE", None),
            ("INVALID", None),
            ("NONE", None),
            ("Partition_Limit", None),
            ("-1", None),
            ("5", Some(5 * MIN)),
            ("90", Some(90 * MIN)),
            ("0", Some(0)),
            ("10:30", Some(10 * MIN + 30)),
            ("90:00", Some(90 * MIN)),
            ("00:01:00", Some(MIN)),
            ("01:02:03", Some(HOUR + 2 * MIN + 3)),
            ("48:00:00", Some(48 * HOUR)),
            ("1-00", Some(24 * HOUR)),
            ("2-12", Some(60 * HOUR)),
            ("1-02:30", Some(26 * HOUR + 30 * MIN)),
            ("1-00:00:00", Some(24 * HOUR)),
            ("3-04:05:06", Some(3 * 24 * HOUR + 4 * HOUR + 5 * MIN + 6)),
            (" 00:05:00\n", Some(5 * MIN)),
        ];
        for &(s, want) in cases {
            let got = parse_slurm_time(s).unwrap_or_else(|e| panic!("{s:?}: {e:#}"));
            assert_eq!(got, want.map(secs), "{s:?}");
        }
    }

    #[test]
    fn parse_slurm_time_rejects_garbage() {
        for s in [
            "",
            "abc",
            "1:2:3:4",
            "1-2:3:4:5",
            "-5",
            "1--2",
            "1-",
            "-",
            ":",
            "10:",
            ":10",
            "1:60",
            "1:60:00",
            "1:00:60",
            "1-24",
            "1-24:00:00",
            "+5",
            "1.5",
            "1h",
            "5 min",
            "1-x",
            "99999999999999999999",
        ] {
            let err = parse_slurm_time(s).expect_err(s);
            assert!(
                format!("{err:#}").contains("invalid SLURM time"),
                "{s:?}: {err:#}"
            );
        }
    }

    #[test]
    fn time_limit_from_a_scontrol_line() {
        let line = "JobId=12 JobName=train run UserId=alice(1000) GroupId=alice(1000) \
                    MCS_label=N/A Priority=1 Nice=0 Account=(null) QOS=normal JobState=RUNNING \
                    Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 \
                    ExitCode=0:0 RunTime=00:00:41 TimeLimit=00:01:00 TimeMin=N/A \
                    SubmitTime=2024-05-01T10:00:00 EligibleTime=2024-05-01T10:00:00\n";
        assert_eq!(parse_time_limit(line).unwrap(), Some(secs(MIN)));
        let days = line.replace("TimeLimit=00:01:00", "TimeLimit=2-00:00:00");
        assert_eq!(parse_time_limit(&days).unwrap(), Some(secs(48 * HOUR)));
        let unlimited = line.replace("TimeLimit=00:01:00", "TimeLimit=UNLIMITED");
        assert_eq!(parse_time_limit(&unlimited).unwrap(), None);
        let missing = line.replace("TimeLimit=00:01:00 ", "");
        let err = parse_time_limit(&missing).unwrap_err();
        assert!(format!("{err:#}").contains("no TimeLimit"), "{err:#}");
        assert!(parse_time_limit("\n").is_err());
    }

    fn env(vars: &[(&str, &str)]) -> ClusterEnv {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClusterEnv::from_vars(|k| map.get(k).cloned()).unwrap()
    }

    const SLURM: &[(&str, &str)] = &[
        ("SLURM_PROCID", "0"),
        ("SLURM_NTASKS", "1"),
        ("SLURM_LOCALID", "0"),
        ("SLURM_NODEID", "0"),
        ("SLURM_JOB_ID", "4242"),
        ("SLURM_JOB_NODELIST", "gpu-01"),
        ("SLURM_JOB_NUM_NODES", "1"),
        ("SLURM_TASKS_PER_NODE", "1"),
    ];

    #[test]
    fn requeue_id_plain_array_and_outside_slurm() {
        assert_eq!(requeue_id(&env(SLURM)).as_deref(), Some("4242"));

        // An array task's SLURM_JOB_ID is its own record (1003); the requeue id is A_T.
        let mut array = SLURM.to_vec();
        array.retain(|(k, _)| *k != "SLURM_JOB_ID");
        array.extend([
            ("SLURM_JOB_ID", "1003"),
            ("SLURM_ARRAY_JOB_ID", "1000"),
            ("SLURM_ARRAY_TASK_ID", "3"),
        ]);
        assert_eq!(requeue_id(&env(&array)).as_deref(), Some("1000_3"));

        assert_eq!(requeue_id(&env(&[])), None);
        let torchrun = [("RANK", "0"), ("WORLD_SIZE", "1"), ("SLURM_JOB_ID", "7")];
        assert_eq!(requeue_id(&env(&torchrun)), None);
    }

    /// A stand-in `scontrol` that prints `stderr` and exits with `code`: `sh -c` takes the
    /// arguments after the script as `$0 $1 …`, so `requeue <id>` is passed along harmlessly.
    fn fake_scontrol(script: &str) -> Vec<&str> {
        vec!["sh", "-c", script, "scontrol"]
    }

    #[test]
    fn requeue_errors_name_the_id_and_hint_at_requeue() {
        let disabled = fake_scontrol(
            "echo 'scontrol: error: Requested operation is presently disabled for job 1000_3' >&2; exit 1",
        );
        let msg = format!("{:#}", requeue_with(&disabled, "1000_3").unwrap_err());
        assert!(msg.contains("1000_3"), "{msg}");
        assert!(msg.contains("presently disabled"), "{msg}");
        assert!(msg.contains("--requeue"), "{msg}");

        let other = fake_scontrol("echo 'Invalid job id specified' >&2; exit 1");
        let msg = format!("{:#}", requeue_with(&other, "77").unwrap_err());
        assert!(msg.contains("requeueing job 77"), "{msg}");
        assert!(msg.contains("Invalid job id specified"), "{msg}");
        assert!(!msg.contains("sbatch --requeue"), "{msg}");

        // The id reaches scontrol as its last argument.
        let ok = fake_scontrol(r#"test "$1 $2" = "requeue 77""#);
        requeue_with(&ok, "77").unwrap();

        // SLURM's SIGTERM to the job reaching scontrol mid-requeue does not kill it.
        let terminated = fake_scontrol("kill -TERM $$; exit 0");
        requeue_with(&terminated, "77").unwrap();

        let missing = requeue_with(&["/nonexistent/scontrol"], "77").unwrap_err();
        let msg = format!("{missing:#}");
        assert!(msg.contains("SLURM client"), "{msg}");
    }
}

/// How often a resumable run has been stopped, kept in its checkpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopCounters {
    /// The SLURM job whose time-limit signals `timeouts` counts.
    pub job_id: Option<String>,
    /// Time-limit signals of that job so far.
    pub timeouts: u32,
    pub preemptions: u32,
}
