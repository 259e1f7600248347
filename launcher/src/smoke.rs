//! `nls-launch run FILE --smoke`: the small scale of a preset, from its `[smoke]` table, so
//! that one file is both the paper's run and the run CI can afford on a CPU.
//!
//! ```toml
//! [smoke]
//! job = { cpu = true }                          # over [job]
//! args = { data_dir = "/usr/share/datasets/fashion-mnist", epochs = 1 }   # over `command`
//! grid = { seed = [0], noise = [0.8] }          # replaces these keys' values in every grid
//! ```
//!
//! - `args`: each key replaces the value of `--key` in `command` (or is appended); a grid key
//!   cannot be one (narrow it in `grid`).
//! - `grid`: each key must be a grid key; its list replaces the key's values in every grid
//!   that has it (duplicates then collapse).
//! - The exp-dir is `<exp_dir>-smoke` unless `job` sets one, so a smoke run never leaves
//!   results where the full-scale run would take them as done.

use crate::config::JOB_KEYS;
use crate::sweep::grid_value;
use anyhow::{bail, ensure, Context, Result};

/// The keys of `[smoke]`.
pub const SMOKE_KEYS: [&str; 3] = ["job", "args", "grid"];

/// A parsed `[smoke]` table.
#[derive(Clone, Debug, Default)]
pub struct Smoke {
    pub job: toml::Table,
    /// Trainer flag (with `_`) → value text.
    pub args: Vec<(String, String)>,
    /// Grid key → its smoke-scale values.
    pub grid: toml::Table,
}

/// Reads `[smoke]` of `source`; errors name the key.
pub fn parse(value: &toml::Value, source: &str) -> Result<Smoke> {
    let toml::Value::Table(t) = value else {
        bail!("{source}: `smoke` must be a table ([smoke])");
    };
    if let Some(k) = t.keys().find(|k| !SMOKE_KEYS.contains(&k.as_str())) {
        bail!(
            "{source}: unknown key `{k}` in [smoke] (known keys: {})",
            SMOKE_KEYS.join(", ")
        );
    }
    let table = |key: &str| -> Result<toml::Table> {
        match t.get(key) {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(x)) => Ok(x.clone()),
            Some(_) => bail!("{source}: `{key}` in [smoke] must be a table ([smoke.{key}])"),
        }
    };
    let job = table("job")?;
    if let Some(k) = job
        .keys()
        .find(|k| *k == "command" || !JOB_KEYS.contains(&k.as_str()))
    {
        bail!(
            "{source}: `{k}` in [smoke.job] is not a job key (known keys: {}; trainer flags go \
             in [smoke.args])",
            JOB_KEYS[..JOB_KEYS.len() - 1].join(", ")
        );
    }
    let args = parse_args(&table("args")?, source)?;
    let grid = table("grid")?;
    for (k, v) in &grid {
        let ok = matches!(v, toml::Value::Array(a) if !a.is_empty());
        ensure!(
            ok,
            "{source}: [smoke.grid] key `{k}` must be a non-empty list of values, like {k} = [0]"
        );
    }
    Ok(Smoke { job, args, grid })
}

fn parse_args(args: &toml::Table, source: &str) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|(k, v)| {
            ensure!(
                k != "exp_dir",
                "{source}: [smoke.args] key `exp_dir`: nls-launch gives the trainer its \
                 --exp-dir; set `exp_dir` in [smoke.job]"
            );
            let value =
                grid_value(v).with_context(|| format!("{source}: [smoke.args] key `{k}`"))?;
            Ok((k.clone(), value.text))
        })
        .collect()
}

impl Smoke {
    /// `[smoke.job]` over the file's `[job]`; `exp_dir` gets `-smoke` unless it sets one.
    pub fn apply_job(&self, job: &mut toml::Table) {
        if !self.job.contains_key("exp_dir") {
            if let Some(toml::Value::String(dir)) = job.get_mut("exp_dir") {
                dir.push_str("-smoke");
            }
        }
        job.extend(self.job.clone());
    }

    /// `[smoke.args]` over the trainer command; no flag may be a grid key.
    pub fn apply_args(
        &self,
        command: &mut Vec<String>,
        grid_keys: &[String],
        source: &str,
    ) -> Result<()> {
        for (key, value) in &self.args {
            ensure!(
                !grid_keys.contains(key),
                "{source}: [smoke.args] key `{key}` is a key of the grid; give its smoke-scale \
                 values in [smoke.grid] instead"
            );
            set_flag(command, &format!("--{}", key.replace('_', "-")), value);
        }
        Ok(())
    }

    /// `[smoke.grid]` over every grid (a `[grid]` table or `[[grid]]` tables).
    pub fn apply_grid(
        &self,
        grid: Option<&toml::Value>,
        source: &str,
    ) -> Result<Option<toml::Value>> {
        if self.grid.is_empty() {
            return Ok(grid.cloned());
        }
        let Some(grid) = grid else {
            bail!("{source}: [smoke.grid] narrows a grid, but the file has no [grid]");
        };
        let mut grid = grid.clone();
        let mut tables: Vec<&mut toml::Table> = match &mut grid {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(a) => a.iter_mut().filter_map(|g| g.as_table_mut()).collect(),
            _ => bail!("{source}: `grid` must be a table ([grid]) or tables ([[grid]])"),
        };
        for (key, values) in &self.grid {
            let mut found = false;
            for t in tables.iter_mut().filter(|t| t.contains_key(key)) {
                t.insert(key.clone(), values.clone());
                found = true;
            }
            ensure!(
                found,
                "{source}: [smoke.grid] key `{key}` is not a key of the grid (its keys: {})",
                keys_of(&tables).join(", ")
            );
        }
        Ok(Some(grid))
    }
}

fn keys_of(tables: &[&mut toml::Table]) -> Vec<String> {
    let mut keys: Vec<String> = tables.iter().flat_map(|t| t.keys().cloned()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Sets `flag` to `value` in `args`: replaces `--flag v` or `--flag=v`, gives a bare boolean
/// `--flag` (followed by another flag or nothing) its value, or appends `--flag value`.
pub fn set_flag(args: &mut Vec<String>, flag: &str, value: &str) {
    let prefix = format!("{flag}=");
    if let Some(i) = args.iter().position(|a| a.starts_with(&prefix)) {
        args[i] = format!("{prefix}{value}");
        return;
    }
    let Some(i) = args.iter().position(|a| a == flag) else {
        args.extend([flag.to_string(), value.to_string()]);
        return;
    };
    match args.get(i + 1) {
        Some(next) if !next.starts_with("--") => args[i + 1] = value.to_string(),
        _ => args.insert(i + 1, value.to_string()),
    }
}
