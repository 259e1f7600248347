//! Before anything is written or submitted, every configuration's trainer arguments go through
//! the trainer's own parser and config layering (`trainer check-args --stdin`, one process for
//! a whole sweep), so a misspelt key or value fails here once instead of in every array task.

use crate::quote;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// One configuration to check: its name in messages and its trainer arguments.
pub struct Candidate<'a> {
    pub name: &'a str,
    pub args: &'a [String],
}

/// What `trainer check-args --stdin` prints for the first list it refuses.
#[derive(Deserialize)]
struct Refusal {
    index: usize,
    error: String,
}

/// Runs `trainer check-args --stdin` on every candidate; an error names the first refused
/// configuration with the trainer's message.
pub fn trainer_accepts(trainer: &Path, candidates: &[Candidate]) -> Result<()> {
    let mut child = Command::new(trainer)
        .args(["check-args", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "running the trainer {} to check the arguments (set its path with --trainer)",
                trainer.display()
            )
        })?;
    let lines: String = candidates
        .iter()
        .map(|c| serde_json::to_string(c.args).map(|l| l + "\n"))
        .collect::<serde_json::Result<_>>()?;
    let mut stdin = child.stdin.take().context("the trainer's stdin")?;
    // A trainer that stops reading (one without check-args) closes the pipe: its exit says why.
    let writer = std::thread::spawn(move || stdin.write_all(lines.as_bytes()).ok());
    let out = child
        .wait_with_output()
        .context("waiting for trainer check-args")?;
    writer.join().ok();
    if out.status.success() {
        return Ok(());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Ok(refusal) = serde_json::from_str::<Refusal>(stdout.trim()) else {
        bail!(
            "`{} check-args` failed ({}): {}\nIs it the nls trainer of this checkout \
             (cargo build --release)? --trainer sets its path",
            trainer.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    };
    let c = candidates
        .get(refusal.index)
        .context("trainer check-args named a configuration it was not given")?;
    bail!(
        "the trainer refuses the arguments of {}; nothing was written or submitted.\n\
         command: {} {}\n{}",
        c.name,
        trainer.display(),
        command_line(c.args),
        refusal.error
    )
}

/// Arguments as a shell would take them back.
pub fn command_line(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            match a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./=:,+-".contains(c))
            {
                true if !a.is_empty() => a.clone(),
                _ => quote::sh(a),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
