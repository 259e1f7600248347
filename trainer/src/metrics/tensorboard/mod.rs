//! TensorBoard scalars: `<exp-dir>/tensorboard/events.out.tfevents.<secs>.<host>.<pid>.<n>`,
//! one file per start of a run (a resume starts a new one), read by the `tensorboard` package.
//! Every logged line becomes one event appended as one whole record with one write, so a crash
//! leaves only complete records; the log is append-only and needs no atomic rename.

pub mod event;
pub mod tags;
pub mod tfrecord;

use anyhow::{Context, Result};
use event::Payload;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const FILE_PREFIX: &str = "events.out.tfevents.";
const FILE_VERSION: &str = "brain.Event:2";

pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// Starts a new event file in `dir` for a run that starts at `first_step`. The file opens
    /// with a session start at `first_step`: TensorBoard then drops whatever earlier files in
    /// `dir` logged from that step on (steps a killed attempt logged after its last checkpoint,
    /// or a previous run in the same folder when `first_step` is 0).
    pub fn create(dir: &Path, first_step: u64) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(file_name(dir)?);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let mut writer = EventWriter { path, file };
        let now = wall_time();
        writer.append(&[
            event::encode(now, 0, Payload::FileVersion(FILE_VERSION)),
            event::encode(now, first_step as i64, Payload::SessionStart),
        ])?;
        Ok(writer)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the scalars logged at `step` as one event (nothing when there are none).
    pub fn write_scalars(&mut self, step: u64, scalars: &[(String, f32)]) -> Result<()> {
        if scalars.is_empty() {
            return Ok(());
        }
        let scalars = event::encode(wall_time(), step as i64, Payload::Scalars(scalars));
        self.append(&[scalars])
    }

    /// Frames `events` and appends them with one write, then flushes.
    fn append(&mut self, events: &[Vec<u8>]) -> Result<()> {
        let bytes: Vec<u8> = events.iter().flat_map(|e| tfrecord::frame(e)).collect();
        self.file
            .write_all(&bytes)
            .and_then(|()| self.file.flush())
            .with_context(|| format!("appending to {}", self.path.display()))
    }
}

/// TensorBoard's name for a new event file. Readers take a folder's files in name order, so
/// the seconds are moved past those of every file already there: a resume within the same
/// second (or on a node whose clock is behind) still sorts after the attempt it continues.
fn file_name(dir: &Path) -> Result<String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let newest = newest_file_seconds(dir)?;
    let secs = (wall_time() as u64).max(newest.map_or(0, |s| s + 1));
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into());
    let pid = std::process::id();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(format!("{FILE_PREFIX}{secs}.{host}.{pid}.{n}"))
}

/// The largest `<secs>` among the event files in `dir`.
fn newest_file_seconds(dir: &Path) -> Result<Option<u64>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut newest = None;
    for entry in entries {
        let name = entry?.file_name();
        let secs = name
            .to_str()
            .and_then(|n| n.strip_prefix(FILE_PREFIX))
            .and_then(|rest| rest.split('.').next())
            .and_then(|s| s.parse::<u64>().ok());
        newest = newest.max(secs);
    }
    Ok(newest)
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seconds_of(path: &Path) -> u64 {
        let name = path.file_name().unwrap().to_str().unwrap();
        name[FILE_PREFIX.len()..]
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_restart_within_the_same_second_still_sorts_after_the_first_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = EventWriter::create(dir.path(), 0).unwrap();
        let second = EventWriter::create(dir.path(), 10).unwrap();
        let third = EventWriter::create(dir.path(), 20).unwrap();
        let secs: Vec<u64> = [&first, &second, &third]
            .iter()
            .map(|w| seconds_of(w.path()))
            .collect();
        assert!(secs[0] < secs[1] && secs[1] < secs[2], "{secs:?}");
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        assert_eq!(names, [first.path(), second.path(), third.path()]);
    }

    #[test]
    fn a_file_is_named_like_tensorboards_own() {
        let dir = tempfile::tempdir().unwrap();
        let writer = EventWriter::create(dir.path(), 0).unwrap();
        let name = writer.path().file_name().unwrap().to_str().unwrap();
        let host = nix::unistd::gethostname().unwrap();
        let expected_tail = format!(".{}.{}.", host.to_str().unwrap(), std::process::id());
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        assert!(name.contains(&expected_tail), "{name}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(seconds_of(writer.path()).abs_diff(now) <= 2, "{name}");
    }
}
