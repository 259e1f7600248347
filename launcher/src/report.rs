//! `report EXP`: the evaluation results of an experiment as one table, one row per run: the
//! sweep's grid values, then the metrics of its `results.json`. Printed as Markdown and
//! written to `<exp>/report.csv`. Runs without results are counted, not hidden.

use crate::atomic::{read_json, write_atomic};
use crate::config::{Experiment, JobArgs};
use crate::launch::RESOLVED;
use crate::sweep;
use anyhow::{ensure, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The metrics shown, in this order, when some run has them.
const METRICS: [&str; 8] = [
    "acc1",
    "best_acc1",
    "acc5",
    "best_acc5",
    "best_epoch",
    "epochs",
    "noisy_predicted_true",
    "train_flip_rate",
];
pub const CSV: &str = "report.csv";

/// The runs' table: column names, then one row of cells per run with results.
#[derive(Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Runs that have no results.json yet.
    pub missing: Vec<String>,
}

/// One run: its grid values and its folder.
struct Run {
    values: Vec<String>,
    dir: PathBuf,
}

/// Collects the table, prints it and writes `<exp>/report.csv`.
pub fn report(exp_dir: &Path) -> Result<()> {
    let table = collect(exp_dir)?;
    ensure!(
        !table.rows.is_empty(),
        "no results.json in {} yet ({} run(s) without results; `nls-launch status {}` says \
         where they stand)",
        exp_dir.display(),
        table.missing.len(),
        exp_dir.display()
    );
    print!("{}", markdown(&table));
    if !table.missing.is_empty() {
        println!(
            "\n{} run(s) without results.json: {}",
            table.missing.len(),
            table.missing.join(", ")
        );
    }
    let csv_path = exp_dir.join(CSV);
    write_atomic(&csv_path, csv(&table).as_bytes())?;
    println!("\nwritten to {}", csv_path.display());
    Ok(())
}

/// The experiment's runs (a sweep's configurations from its `job.toml`, else the exp-dir) and
/// their results.
pub fn collect(exp_dir: &Path) -> Result<Table> {
    let (keys, runs) = runs(exp_dir)?;
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for run in runs {
        match read_results(&run.dir)? {
            Some(r) => results.push((run.values, r)),
            None => missing.push(run.dir.display().to_string()),
        }
    }
    let metrics: Vec<&str> = METRICS
        .into_iter()
        .filter(|m| results.iter().any(|(_, r)| !r["metrics"][*m].is_null()))
        .collect();
    let columns = keys
        .iter()
        .cloned()
        .chain(metrics.iter().map(|m| m.to_string()))
        .collect();
    let rows = results
        .iter()
        .map(|(values, r)| {
            let cells = metrics.iter().map(|m| cell(&r["metrics"][*m]));
            values.iter().cloned().chain(cells).collect()
        })
        .collect();
    Ok(Table {
        columns,
        rows,
        missing,
    })
}

/// Grid keys and the runs: every configuration of a sweep, or the exp-dir itself.
fn runs(exp_dir: &Path) -> Result<(Vec<String>, Vec<Run>)> {
    let file = exp_dir.join(RESOLVED);
    ensure!(
        file.is_file(),
        "{} has no {RESOLVED}: report takes an experiment folder written by nls-launch",
        exp_dir.display()
    );
    let flags = JobArgs {
        exp_dir: Some(exp_dir.to_path_buf()),
        ..JobArgs::default()
    };
    let exp = Experiment::load(Some(&file), &flags, &[])?;
    let Some(grid) = &exp.grid else {
        let run = Run {
            values: Vec::new(),
            dir: exp.job.exp_dir.clone(),
        };
        return Ok((Vec::new(), vec![run]));
    };
    let points = sweep::expand(&sweep::parse_grids(grid, &file.display().to_string())?)?;
    let keys = points
        .first()
        .map(|p| p.0.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    let runs = points
        .iter()
        .map(|p| Run {
            values: p.0.iter().map(|(_, v)| v.text.clone()).collect(),
            dir: exp.job.exp_dir.join("runs").join(p.name()),
        })
        .collect();
    Ok((keys, runs))
}

fn read_results(dir: &Path) -> Result<Option<Value>> {
    read_json(&dir.join("results.json"))
        .context("a damaged results file: delete it and run that configuration again")
}

/// Numbers with 4 decimals (integers as they are), other values as text, absent as empty.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Number(n) if n.is_f64() => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table in Markdown.
pub fn markdown(t: &Table) -> String {
    let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let mut out = line(&t.columns);
    out += &line(&vec!["---".to_string(); t.columns.len()]);
    t.rows.iter().for_each(|r| out += &line(r));
    out
}

/// The table as CSV (RFC 4180 quoting where needed).
pub fn csv(t: &Table) -> String {
    let field = |s: &String| match s.contains([',', '"', '\n']) {
        true => format!("\"{}\"", s.replace('"', "\"\"")),
        false => s.clone(),
    };
    std::iter::once(&t.columns)
        .chain(&t.rows)
        .map(|r| r.iter().map(field).collect::<Vec<_>>().join(",") + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_print_as_markdown_and_quoted_csv() {
        let t = Table {
            columns: vec!["loss".into(), "acc1".into()],
            rows: vec![
                vec!["a,b".into(), "0.5000".into()],
                vec!["say \"x\"".into(), String::new()],
            ],
            missing: Vec::new(),
        };
        assert_eq!(
            markdown(&t),
            "| loss | acc1 |\n| --- | --- |\n| a,b | 0.5000 |\n| say \"x\" |  |\n"
        );
        assert_eq!(csv(&t), "loss,acc1\n\"a,b\",0.5000\n\"say \"\"x\"\"\",\n");
        assert_eq!(cell(&serde_json::json!(0.61234)), "0.6123");
        assert_eq!(cell(&serde_json::json!(46)), "46");
        assert_eq!(cell(&Value::Null), "");
    }
}
