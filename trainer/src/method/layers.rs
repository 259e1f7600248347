//! Run configurations in layers: built-in defaults, then a `--config` TOML file, then the
//! command-line flags, each overriding the previous key by key. The layers merge as TOML tables
//! and the result is deserialized once (with `deny_unknown_fields` on the target), so a
//! misspelt key is an error naming it, whichever layer it came from.

use anyhow::{ensure, Context, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// The file's table overridden by `flags`, deserialized as `T` (`what` names it in errors).
pub fn resolve<T: DeserializeOwned>(
    file: Option<&Path>,
    flags: toml::Table,
    what: &str,
) -> Result<T> {
    resolve_over(|_| Ok(toml::Table::new()), file, flags, what)
}

/// As [`resolve`], over a layer of defaults chosen from the file and flags merged (a preset
/// named by one of their keys): preset ← file ← flags.
pub fn resolve_over<T: DeserializeOwned>(
    preset: impl FnOnce(&toml::Table) -> Result<toml::Table>,
    file: Option<&Path>,
    flags: toml::Table,
    what: &str,
) -> Result<T> {
    let mut given = match file {
        Some(path) => read_table(path)?,
        None => toml::Table::new(),
    };
    given.extend(flags);
    let mut table = preset(&given)?;
    table.extend(given);
    toml::Value::Table(table).try_into().map_err(|e| {
        anyhow::anyhow!(
            "invalid {what} configuration{}: {e}",
            file.map(|p| format!(" (from {} and the flags)", p.display()))
                .unwrap_or_default()
        )
    })
}

/// Errors unless both run folders are given (every run needs its data and its exp-dir).
pub fn check_dirs(data_dir: &Path, exp_dir: &Path) -> Result<()> {
    ensure!(!data_dir.as_os_str().is_empty(), "--data-dir is required");
    ensure!(!exp_dir.as_os_str().is_empty(), "--exp-dir is required");
    Ok(())
}

pub fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --config {}", path.display()))?;
    text.parse::<toml::Table>()
        .with_context(|| format!("{} is not valid TOML", path.display()))
}
