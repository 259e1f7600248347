//! Atomic file writes (the workspace's `nls-atomic` crate: temp file, fsync, rename, fsync the
//! directory), and the reading side of the small JSON state files written that way.

pub use nls_atomic::write_atomic;

use anyhow::{Context, Result};
use std::fs;
use std::path::Path;

/// The JSON file at `path`, None when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .map(Some)
        .with_context(|| format!("parsing {}", path.display()))
}
