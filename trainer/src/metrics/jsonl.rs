//! `metrics.jsonl`: one JSON object per line, appended as training goes, each line's numbers
//! mirrored into TensorBoard scalars under `tensorboard/` ([`super::tensorboard`]).
//!
//! Every record carries `step`. On resume from the checkpoint of step s the file is first cut
//! back to the records with `step <= s` (rewritten atomically), so a preempted run's log reads
//! as if it had never stopped; the new event file tells TensorBoard to do the same.

use super::tensorboard::{tags, EventWriter};
use crate::atomic::write_atomic;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct MetricsLog {
    path: PathBuf,
    file: File,
    tensorboard: EventWriter,
}

impl MetricsLog {
    /// Opens `<exp_dir>/metrics.jsonl` for appending after dropping records past `resume_step`
    /// (`None`: a fresh run, the file is emptied), and starts a new event file in
    /// `<exp_dir>/tensorboard/`.
    pub fn open(exp_dir: &Path, resume_step: Option<u64>) -> Result<MetricsLog> {
        let path = &exp_dir.join("metrics.jsonl");
        let kept = match resume_step {
            Some(step) if path.exists() => records_up_to(path, step)?,
            _ => String::new(),
        };
        write_atomic(path, kept.as_bytes())?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let first_step = resume_step.map_or(0, |step| step + 1);
        let tensorboard = EventWriter::create(&exp_dir.join("tensorboard"), first_step)?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            file,
            tensorboard,
        })
    }

    /// Appends `record` (an object with a `step`) with the wall-clock time added, as one write,
    /// and its numeric fields as TensorBoard scalars at that step.
    pub fn write(&mut self, mut record: Value) -> Result<()> {
        let Value::Object(map) = &mut record else {
            bail!("a metrics record must be a JSON object, not {record}");
        };
        let Some(step) = map.get("step").and_then(Value::as_u64) else {
            bail!(
                "a metrics record needs a step: {}",
                Value::Object(map.clone())
            );
        };
        map.insert("time".into(), chrono::Utc::now().to_rfc3339().into());
        let scalars = tags::scalars(map);
        let mut line = serde_json::to_string(&record)?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .with_context(|| format!("appending to {}", self.path.display()))?;
        self.tensorboard.write_scalars(step, &scalars)
    }
}

/// The lines of `path` whose `step` is at most `step` (unparsable lines, such as one cut short
/// by a crash, are dropped).
fn records_up_to(path: &Path, step: u64) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("step").and_then(Value::as_u64))
                .is_some_and(|s| s <= step)
        })
        .map(|line| format!("{line}\n"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_cuts_the_log_back_to_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut log = MetricsLog::open(dir.path(), None).unwrap();
        for step in [10, 20, 30] {
            log.write(json!({ "step": step, "loss": 1.0 })).unwrap();
        }
        drop(log);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"step\": 4")
            .unwrap();
        let mut log = MetricsLog::open(dir.path(), Some(20)).unwrap();
        log.write(json!({ "step": 30, "loss": 0.5 })).unwrap();
        let steps: Vec<u64> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["step"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(steps, [10, 20, 30]);
        MetricsLog::open(dir.path(), None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    }
}
