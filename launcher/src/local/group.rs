//! One attempt of a local job: the trainer processes of every rank, started together, watched
//! together, signalled together; and how their exits read (finished, restart, failure).
//!
//! Each rank runs in its own process group, so a Ctrl-C at the terminal reaches only
//! `nls-launch`, which forwards it as SIGTERM (the ranks checkpoint first). A rank whose
//! `nls-launch` dies gets SIGTERM from the kernel (parent-death signal) instead of running on.

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// The trainer's "restart me" exit code (EX_TEMPFAIL).
pub const EXIT_RESTART: i32 = 75;

/// What one rank runs and where its output goes.
pub struct RankSpec {
    pub env: Vec<(String, String)>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The running ranks of one attempt.
pub struct Group {
    ranks: Vec<(Child, Option<ExitStatus>)>,
}

/// How an attempt ended, from its ranks' exit statuses.
#[derive(Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// Every rank exited with 0.
    Done,
    /// Ranks exited with 75 (and the others with 0): checkpointed, start again.
    Restart,
    /// Some rank failed: which, and how.
    Failed(String),
}

fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the log {}", path.display()))
}

impl Group {
    /// Starts `trainer args` once per rank; if one cannot start, the others are killed.
    pub fn spawn(trainer: &Path, args: &[String], ranks: &[RankSpec]) -> Result<Group> {
        let mut group = Group { ranks: Vec::new() };
        for (rank, spec) in ranks.iter().enumerate() {
            let mut cmd = Command::new(trainer);
            cmd.args(args)
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(append(&spec.stdout)?)
                .stderr(append(&spec.stderr)?)
                .process_group(0);
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
                });
            }
            match cmd.spawn() {
                Ok(child) => group.ranks.push((child, None)),
                Err(e) => {
                    group.kill();
                    return Err(e).with_context(|| {
                        format!(
                            "starting rank {rank}: {} (set the trainer binary with --trainer)",
                            trainer.display()
                        )
                    });
                }
            }
        }
        Ok(group)
    }

    /// Collects the exits that happened; true while some rank still runs.
    pub fn reap(&mut self) -> Result<bool> {
        for (rank, (child, status)) in self.ranks.iter_mut().enumerate() {
            if status.is_none() {
                *status = child
                    .try_wait()
                    .with_context(|| format!("waiting for rank {rank}"))?;
            }
        }
        Ok(self.ranks.iter().any(|(_, s)| s.is_none()))
    }

    /// Whether a rank has already exited with a failure.
    pub fn any_failed(&self) -> bool {
        self.ranks
            .iter()
            .any(|(_, s)| s.is_some_and(|s| !matches!(s.code(), Some(0 | EXIT_RESTART))))
    }

    /// Sends `signal` to every rank still running.
    pub fn signal(&self, signal: Signal) {
        for (child, status) in &self.ranks {
            if status.is_none() {
                // A rank that exited between reap and now is not an error.
                kill(Pid::from_raw(child.id() as i32), signal).ok();
            }
        }
    }

    /// SIGKILL to every rank still running, then waits for them.
    pub fn kill(&mut self) {
        for (child, status) in &mut self.ranks {
            if status.is_none() {
                child.kill().ok();
                *status = child.wait().ok();
            }
        }
    }

    /// Every rank's exit status (call once [`Group::reap`] says none runs).
    pub fn statuses(&self) -> Vec<ExitStatus> {
        self.ranks
            .iter()
            .map(|(_, s)| s.unwrap_or_else(|| ExitStatus::from_raw(0)))
            .collect()
    }
}

/// How the ranks' exits read: any failure wins, then a restart, else done.
pub fn classify(statuses: &[ExitStatus]) -> AttemptEnd {
    let failures: Vec<String> = statuses
        .iter()
        .enumerate()
        .filter_map(|(rank, s)| describe_failure(*s).map(|d| format!("rank {rank} {d}")))
        .collect();
    if !failures.is_empty() {
        return AttemptEnd::Failed(failures.join("; "));
    }
    match statuses.iter().any(|s| s.code() == Some(EXIT_RESTART)) {
        true => AttemptEnd::Restart,
        false => AttemptEnd::Done,
    }
}

/// None for 0 and 75; otherwise "exited with 2" or "was killed by SIGKILL".
fn describe_failure(s: ExitStatus) -> Option<String> {
    match (s.code(), s.signal()) {
        (Some(0 | EXIT_RESTART), _) => None,
        (Some(code), _) => Some(format!("exited with {code}")),
        (None, Some(sig)) => Some(match Signal::try_from(sig) {
            Ok(name) => format!("was killed by {name}"),
            Err(_) => format!("was killed by signal {sig}"),
        }),
        (None, None) => Some("ended in an unknown way".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: i32) -> ExitStatus {
        ExitStatus::from_raw(c << 8)
    }

    fn killed(sig: i32) -> ExitStatus {
        ExitStatus::from_raw(sig)
    }

    #[test]
    fn exits_read_as_done_restart_or_failure() {
        assert_eq!(classify(&[code(0), code(0)]), AttemptEnd::Done);
        assert_eq!(classify(&[code(75), code(0)]), AttemptEnd::Restart);
        assert_eq!(classify(&[code(75), code(75)]), AttemptEnd::Restart);
        assert_eq!(
            classify(&[code(75), code(2)]),
            AttemptEnd::Failed("rank 1 exited with 2".into())
        );
        assert_eq!(
            classify(&[code(2), killed(9)]),
            AttemptEnd::Failed("rank 0 exited with 2; rank 1 was killed by SIGKILL".into())
        );
    }
}
