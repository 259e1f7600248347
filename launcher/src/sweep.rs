//! Sweeps: a `[grid]` of key → list of values becomes one trainer command per configuration,
//! run as one job array.
//!
//! - Order: keys sorted, the last key varies fastest (cartesian product). `[[grid]]` (an array
//!   of tables) is the union of several grids, in order, duplicates dropped: the original
//!   work's grid has noise 0 only with sparsity 0.
//! - Each configuration adds `--key value` (`_` → `-`) to `command`, and runs in
//!   `<exp>/runs/<name>`, the name built from the values (`loss_ce-noise0.4-seed1-sparsity0.2`).
//! - Task `i` is configuration `i` of the full grid, always: its arguments are in
//!   `<exp>/tasks/<i>.args`, NUL-separated, so nothing needs quoting. A new submission skips
//!   configurations whose `results.json` exists by leaving their indices out of `--array`,
//!   so the index files of earlier submissions (a requeued task still reads its own) stay valid.

use crate::atomic::write_atomic;
use crate::config::{has_flag, Experiment};
use anyhow::{bail, ensure, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One value of a grid key, as the trainer receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct GridValue {
    pub text: String,
    pub is_string: bool,
}

/// One configuration: (key, value) in key order.
#[derive(Clone, Debug, PartialEq)]
pub struct Point(pub Vec<(String, GridValue)>);

/// One array task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub index: usize,
    pub name: String,
    pub run_dir: PathBuf,
    pub args: Vec<String>,
    /// `results.json` exists in `run_dir`.
    pub done: bool,
}

type Grid = BTreeMap<String, Vec<GridValue>>;

/// The grids of a `[grid]` table or `[[grid]]` array; `source` names the file in errors.
pub fn parse_grids(grid: &toml::Value, source: &str) -> Result<Vec<Grid>> {
    match grid {
        toml::Value::Table(t) => Ok(vec![parse_grid(t, source)?]),
        toml::Value::Array(a) => a
            .iter()
            .map(|g| match g {
                toml::Value::Table(t) => parse_grid(t, source),
                _ => bail!("{source}: each [[grid]] entry must be a table"),
            })
            .collect(),
        _ => bail!("{source}: `grid` must be a table ([grid]) or tables ([[grid]])"),
    }
}

fn parse_grid(table: &toml::Table, source: &str) -> Result<Grid> {
    ensure!(!table.is_empty(), "{source}: [grid] has no keys");
    let mut grid = Grid::new();
    for (key, list) in table {
        ensure!(
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{source}: [grid] key `{key}` must be lower-case letters, digits and `_` (it becomes --{})",
            key.replace('_', "-")
        );
        let toml::Value::Array(values) = list else {
            bail!("{source}: [grid] key `{key}` must be a list of values, like {key} = [1, 2]");
        };
        ensure!(
            !values.is_empty(),
            "{source}: [grid] key `{key}` has an empty list of values"
        );
        let values = values
            .iter()
            .map(grid_value)
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("{source}: [grid] key `{key}`"))?;
        grid.insert(key.clone(), values);
    }
    Ok(grid)
}

pub fn grid_value(v: &toml::Value) -> Result<GridValue> {
    let (text, is_string) = match v {
        toml::Value::String(s) => (s.clone(), true),
        toml::Value::Integer(i) => (i.to_string(), false),
        toml::Value::Float(f) => (f.to_string(), false),
        toml::Value::Boolean(b) => (b.to_string(), false),
        other => bail!("{other} is not a string, number or boolean"),
    };
    Ok(GridValue { text, is_string })
}

/// Every configuration of the grids, in order, duplicates dropped.
pub fn expand(grids: &[Grid]) -> Result<Vec<Point>> {
    let mut points: Vec<Point> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for p in grids.iter().flat_map(cartesian) {
        match by_name.get(&p.name()) {
            Some(&i) if points[i] == p => continue,
            Some(&i) => bail!(
                "configurations {:?} and {:?} get the same run name {}; make the values distinct",
                points[i].0,
                p.0,
                p.name()
            ),
            None => {
                by_name.insert(p.name(), points.len());
                points.push(p);
            }
        }
    }
    Ok(points)
}

/// The cartesian product, last key fastest.
fn cartesian(grid: &Grid) -> Vec<Point> {
    let mut points = vec![Point(Vec::new())];
    for (key, values) in grid {
        points = points
            .into_iter()
            .flat_map(|p| {
                values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.0.push((key.clone(), v.clone()));
                    q
                })
            })
            .collect();
    }
    points
}

impl Point {
    /// `loss_ce-noise0.4-seed1-sparsity0.2`: numbers follow the key, text after `_`;
    /// characters other than letters, digits and `.+-` become `_`.
    pub fn name(&self) -> String {
        let part = |(k, v): &(String, GridValue)| {
            let sep = if v.is_string { "_" } else { "" };
            sanitize(&format!("{k}{sep}{}", v.text))
        };
        self.0.iter().map(part).collect::<Vec<_>>().join("-")
    }

    /// `--key value` for each key (`_` → `-`).
    pub fn args(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|(k, v)| [format!("--{}", k.replace('_', "-")), v.text.clone()])
            .collect()
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c.is_ascii_alphanumeric() || ".+-_".contains(c) {
            true => c,
            false => '_',
        })
        .collect()
}

/// The array tasks of an experiment with a grid.
pub fn plan(exp: &Experiment) -> Result<Vec<Task>> {
    let source = exp.origin.source();
    let grid = exp
        .grid
        .as_ref()
        .with_context(|| format!("{source} has no [grid]"))?;
    let points = expand(&parse_grids(grid, &source)?)?;
    check_conflicts(exp, &points)?;
    Ok(points
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let run_dir = run_dir(&exp.job.exp_dir, p);
            Task {
                index,
                name: p.name(),
                args: exp.job.trainer_args(&p.args(), &run_dir),
                done: run_dir.join("results.json").is_file(),
                run_dir,
            }
        })
        .collect())
}

/// Where a configuration runs: `<exp>/runs/<name>`.
pub fn run_dir(exp_dir: &Path, point: &Point) -> PathBuf {
    exp_dir.join("runs").join(point.name())
}

/// A grid key must not also be a flag of `command` (the launcher owns `--exp-dir`: see
/// [`crate::config::JobConfig::validate`]).
fn check_conflicts(exp: &Experiment, points: &[Point]) -> Result<()> {
    let cmd = &exp.job.command;
    for (key, _) in points.iter().flat_map(|p| &p.0) {
        ensure!(
            key != "exp_dir",
            "{}: [grid] key `exp_dir`: each configuration runs in <exp_dir>/runs/<name>; \
             nls-launch gives the trainer its --exp-dir",
            exp.origin.source()
        );
        let flag = format!("--{}", key.replace('_', "-"));
        ensure!(
            !has_flag(cmd, &flag),
            "{}: [grid] key `{key}` is also given in command as {flag}",
            exp.origin.source()
        );
    }
    Ok(())
}

/// `<exp>/tasks/<i>.args` (NUL-separated arguments) and `<exp>/tasks/index.tsv` (index, name).
pub fn write_tasks(exp_dir: &Path, tasks: &[Task]) -> Result<()> {
    let dir = tasks_dir(exp_dir);
    for t in tasks {
        let mut bytes = Vec::new();
        for a in &t.args {
            bytes.extend_from_slice(a.as_bytes());
            bytes.push(0);
        }
        write_atomic(&dir.join(format!("{}.args", t.index)), &bytes)?;
    }
    let index: String = tasks
        .iter()
        .map(|t| format!("{}\t{}\n", t.index, t.name))
        .collect();
    write_atomic(&dir.join("index.tsv"), index.as_bytes())
}

pub fn tasks_dir(exp_dir: &Path) -> PathBuf {
    exp_dir.join("tasks")
}

/// `--array` value: sorted indices as ranges (`0-3,5,7-9`), then `%P`.
pub fn array_spec(indices: &[usize], parallel: Option<u32>) -> String {
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(match j > i {
            true => format!("{}-{}", sorted[i], sorted[j]),
            false => sorted[i].to_string(),
        });
        i = j + 1;
    }
    let limit = parallel.map(|p| format!("%{p}")).unwrap_or_default();
    format!("{}{limit}", parts.join(","))
}
