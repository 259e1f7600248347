//! A preset's published numbers: `[[paper]]` entries of an experiment file, each one cell of
//! the grid (some of its keys and values), the metric, the paper's number and where it was
//! published. Checked against the grid when the file is loaded, so a number can only be
//! declared for a configuration the preset runs; `report` prints it beside ours.
//!
//! ```toml
//! [[paper]]
//! source = "Ghosh & Lan 2021, CIFAR-10, ResNet-50 from SimCLR"
//! cell = { noise = 0.8, method = "mwn" }
//! value = 91.51          # as the paper prints it: percent for accuracies
//! metric = "acc1"        # results.json's metric it is compared with (default acc1)
//! ```

use crate::sweep::{grid_value, Point};
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// One published number and the grid cell it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperNumber {
    /// The paper, table and setting, for the reader of the report.
    pub source: String,
    /// Grid key → value; every key a key of the grid, every value one it takes.
    pub cell: toml::Table,
    /// The paper's number, as printed (accuracies in percent).
    pub value: f64,
    /// The `results.json` metric it compares with.
    #[serde(default = "default_metric")]
    pub metric: String,
}

fn default_metric() -> String {
    "acc1".into()
}

impl PaperNumber {
    /// The cell as (key, value text) pairs, value texts as the grid writes them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.cell
            .iter()
            .map(|(k, v)| (k.clone(), grid_value(v).map(|g| g.text).unwrap_or_default()))
            .collect()
    }

    /// Whether a configuration with these keys and values lies in this number's cell.
    pub fn matches(&self, keys: &[String], values: &[String]) -> bool {
        self.pairs().iter().all(|(k, v)| {
            keys.iter()
                .position(|x| x == k)
                .is_some_and(|i| values.get(i) == Some(v))
        })
    }
}

/// The `[[paper]]` entries of `source` (a file), each checked on its own.
pub fn parse(value: &toml::Value, source: &str) -> Result<Vec<PaperNumber>> {
    let toml::Value::Array(entries) = value else {
        bail!("{source}: `paper` must be an array of tables ([[paper]] entries)");
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let n = PaperNumber::deserialize(e.clone())
                .with_context(|| format!("{source}: [[paper]] entry {}", i + 1))?;
            check_entry(&n).with_context(|| entry_name(source, i, &n))?;
            Ok(n)
        })
        .collect()
}

fn entry_name(source: &str, i: usize, n: &PaperNumber) -> String {
    format!("{source}: [[paper]] entry {} ({})", i + 1, n.source)
}

fn check_entry(n: &PaperNumber) -> Result<()> {
    ensure!(
        !n.source.trim().is_empty(),
        "`source` is empty: name the paper and its table"
    );
    ensure!(
        !n.cell.is_empty(),
        "`cell` is empty: give the grid values the number is for"
    );
    ensure!(
        n.value.is_finite(),
        "`value` = {} is not a finite number",
        n.value
    );
    for (k, v) in &n.cell {
        grid_value(v).with_context(|| format!("`cell` key `{k}`"))?;
    }
    Ok(())
}

/// Every entry names grid keys with values the grid takes, lies in at least one configuration
/// of the grid, and no two entries give the same cell and metric.
pub fn check_against_grid(numbers: &[PaperNumber], points: &[Point], source: &str) -> Result<()> {
    for (i, n) in numbers.iter().enumerate() {
        check_cell(n, points).with_context(|| entry_name(source, i, n))?;
        if let Some(j) = numbers[..i]
            .iter()
            .position(|m| m.metric == n.metric && m.pairs() == n.pairs())
        {
            bail!(
                "{}: the same cell and metric as entry {}; keep one",
                entry_name(source, i, n),
                j + 1
            );
        }
    }
    Ok(())
}

fn check_cell(n: &PaperNumber, points: &[Point]) -> Result<()> {
    ensure!(
        !points.is_empty(),
        "the file has no [grid]: a paper's number belongs to a cell of the grid"
    );
    for (key, text) in n.pairs() {
        let taken: Vec<&str> = points
            .iter()
            .flat_map(|p| &p.0)
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.text.as_str())
            .collect();
        ensure!(
            !taken.is_empty(),
            "`cell` key `{key}` is not a key of the grid (its keys: {})",
            grid_keys(points).join(", ")
        );
        if !taken.contains(&text.as_str()) {
            let mut values = taken;
            values.sort_unstable();
            values.dedup();
            bail!(
                "`cell` {key} = {text} is not a value of the grid's `{key}` (its values: {})",
                values.join(", ")
            );
        }
    }
    let in_grid = points.iter().any(|p| {
        let (keys, values): (Vec<String>, Vec<String>) =
            p.0.iter().map(|(k, v)| (k.clone(), v.text.clone())).unzip();
        n.matches(&keys, &values)
    });
    ensure!(
        in_grid,
        "no configuration of the grid has all of `cell`'s values together"
    );
    Ok(())
}

fn grid_keys(points: &[Point]) -> Vec<String> {
    let mut keys: Vec<String> = points
        .iter()
        .flat_map(|p| &p.0)
        .map(|(k, _)| k.clone())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}
