//! `<exp>/cancelled.json`: the jobs `nls-launch cancel` stopped, so `status` says "cancelled"
//! instead of reading the trainer's SIGTERM checkpoint as a preemption. A later launch (a
//! resume) has a new job id, which the record does not cover.

use crate::atomic::{read_json, write_atomic};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FILE: &str = "cancelled.json";

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Cancelled {
    /// Every job id cancelled so far, oldest first.
    pub jobs: Vec<String>,
    /// When the latest cancel happened.
    pub time: String,
}

impl Cancelled {
    pub fn covers(&self, job_id: &str) -> bool {
        self.jobs.iter().any(|j| j == job_id)
    }
}

/// The record, None when nothing was ever cancelled.
pub fn read(exp_dir: &Path) -> Result<Option<Cancelled>> {
    read_json(&exp_dir.join(FILE))
}

/// Adds `jobs` to the record (atomic write).
pub fn record(exp_dir: &Path, jobs: &[String]) -> Result<()> {
    let mut c = read(exp_dir)?.unwrap_or_default();
    c.jobs.extend(
        jobs.iter()
            .filter(|j| !c.covers(j))
            .cloned()
            .collect::<Vec<_>>(),
    );
    c.time = chrono::Utc::now().to_rfc3339();
    let text = serde_json::to_string_pretty(&c).context("encoding the cancel record")?;
    write_atomic(&exp_dir.join(FILE), text.as_bytes())
}
