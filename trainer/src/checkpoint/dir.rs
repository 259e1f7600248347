//! A directory of numbered checkpoints, `ckpt-<step, 10 digits>.safetensors`.
//!
//! Zero-padding makes `ls` order match step order for any realistic run; parsing still accepts
//! more digits, so a step past 10^10 keeps working. One writer per directory is assumed (rank 0
//! of one run): temp files of another live writer would be removed as stale.

use super::{file, Checkpoint};
use crate::distributed::{agree::same_everywhere, ProcessGroup};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

const PREFIX: &str = "ckpt-";
const SUFFIX: &str = ".safetensors";

/// Numbered checkpoints in one directory, keeping the newest `keep`.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
    keep: usize,
}

impl CheckpointDir {
    /// `keep` below 1 is taken as 1: deleting the checkpoint just written would defeat the point.
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> CheckpointDir {
        CheckpointDir {
            dir: dir.into(),
            keep: keep.max(1),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where step `step` lives.
    pub fn path_for(&self, step: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{step:010}{SUFFIX}"))
    }

    /// Writes `ckpt-<step>` (creating the directory), then deletes older checkpoints beyond
    /// `keep` (never the one just written) and temp files left by a killed writer. Pruning
    /// happens only after the new file is durable, so a crash never leaves fewer good files.
    pub fn save(&self, step: u64, ckpt: &Checkpoint) -> Result<PathBuf> {
        let path = self.path_for(step);
        file::write(&path, ckpt)?;
        self.prune(&path)?;
        self.remove_stale_temps()?;
        Ok(path)
    }

    /// (step, path) of every checkpoint file present, oldest first; other names are ignored.
    /// A missing directory has none.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        let mut found: Vec<(u64, PathBuf)> = self
            .entries()?
            .into_iter()
            .filter_map(|(name, path)| Some((parse_step(&name)?, path)))
            .collect();
        found.sort();
        Ok(found)
    }

    /// The newest checkpoint that reads and verifies, falling back (with a warning) past damaged
    /// newer ones. Ok(None) only when there is no checkpoint file at all: if files exist but none
    /// is valid, starting over would overwrite the user's run, so that is an error instead.
    pub fn load_latest(&self) -> Result<Option<(u64, PathBuf, Checkpoint)>> {
        let found = self.list()?;
        let mut failures = Vec::new();
        for (i, (step, path)) in found.iter().enumerate().rev() {
            match file::read(path) {
                Ok(ckpt) => return Ok(Some((*step, path.clone(), ckpt))),
                Err(e) => {
                    if let Some((_, older)) = i.checked_sub(1).and_then(|j| found.get(j)) {
                        log::warn!("{e:#}; falling back to {}", older.display());
                    }
                    failures.push(format!("{e:#}"));
                }
            }
        }
        if failures.is_empty() {
            return Ok(None);
        }
        bail!(no_valid_checkpoint(&self.dir, &failures))
    }

    /// [`CheckpointDir::load_latest`] on every rank, checked to be the same checkpoint
    /// everywhere: ranks that would resume from different steps stop with an error.
    pub fn load_agreed(&self, group: &ProcessGroup) -> Result<Option<(u64, PathBuf, Checkpoint)>> {
        let found = self.load_latest()?;
        let step = found.as_ref().map_or(0, |(s, _, _)| *s);
        same_everywhere(group, "the checkpoint to resume from", step)?;
        Ok(found)
    }

    /// Deletes checkpoints older than the newest `keep`, sparing `written`.
    fn prune(&self, written: &Path) -> Result<()> {
        let found = self.list()?;
        let cut = found.len().saturating_sub(self.keep);
        for (_, path) in &found[..cut] {
            if path != written {
                remove(path)?;
            }
        }
        Ok(())
    }

    /// `.ckpt-*.tmp-*`: what `write_atomic` leaves behind when its process dies mid-write.
    fn remove_stale_temps(&self) -> Result<()> {
        for (name, path) in self.entries()? {
            if name.starts_with(&format!(".{PREFIX}")) && name.contains(".tmp-") {
                remove(&path)?;
            }
        }
        Ok(())
    }

    /// (file name, path) of every entry with a UTF-8 name; none when the directory is missing.
    fn entries(&self) -> Result<Vec<(String, PathBuf)>> {
        let read = match fs::read_dir(&self.dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            other => other.with_context(|| format!("listing {}", self.dir.display()))?,
        };
        let mut out = Vec::new();
        for entry in read {
            let entry = entry.with_context(|| format!("listing {}", self.dir.display()))?;
            if let Ok(name) = entry.file_name().into_string() {
                out.push((name, entry.path()));
            }
        }
        Ok(out)
    }
}

/// `ckpt-<digits>.safetensors` → the step; anything else (temp files included) → None.
fn parse_step(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A file already gone (someone cleaned up by hand) is not an error.
fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn no_valid_checkpoint(dir: &Path, failures: &[String]) -> String {
    let mut msg = format!("no usable checkpoint in {}:", dir.display());
    for f in failures {
        let _ = write!(msg, "\n  - {f}");
    }
    let _ = write!(
        msg,
        "\nRefusing to start from scratch, which would overwrite this run. To start over, move \
         these files out of {} first.",
        dir.display()
    );
    msg
}
