//! `report EXP`: what a sweep found, at a glance. The runs' chosen metric laid out by
//! [`crate::summary`] (rows by noise, columns by the other grid keys, seeds pooled into
//! mean ± std and a count) and printed as Markdown; every run's metrics in `report.csv`, the
//! summary in `summary.csv`, both with the runs' states in `report.json`, the metric against
//! the noise rate in `report.png` ([`crate::figures`]). Runs without results are listed with
//! where they stand, never dropped silently. A single run's report also plots its training
//! curves (`curves.png`) and final loss / kNN / test accuracy, pretraining runs (which have no
//! results.json) and bare `trainer` run folders (no launcher files) included. The metric is
//! checked before anything is written.

use crate::atomic::{read_json, write_atomic};
use crate::config::{is_training, Experiment, JobArgs};
use crate::figures;
use crate::launch::RESOLVED;
use crate::monitor;
use crate::paper::PaperNumber;
use crate::summary::{self, Layout, Point, Stats, Summary};
use crate::sweep;
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The metrics of `results.json` in the per-run table, in this order, when some run has them.
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
pub const SUMMARY_CSV: &str = "summary.csv";
pub const JSON: &str = "report.json";
/// The metric against the noise rate (sweeps whose rows are the noise rate).
pub const PNG: &str = "report.png";
/// A single run's training curves.
pub const CURVES_PNG: &str = "curves.png";

/// What to summarize and how to lay it out (None: [`summary::default_layout`]).
#[derive(Clone, Debug)]
pub struct Options {
    pub metric: String,
    pub rows: Option<Vec<String>>,
    pub columns: Option<Vec<String>>,
}

/// One run of the experiment.
pub struct RunResult {
    /// Its value of each grid key.
    pub values: Vec<String>,
    pub dir: PathBuf,
    pub results: Option<Value>,
    /// `results`, or where a run without results stands.
    pub state: String,
}

/// The grid keys and every run, in grid order, and the paper's numbers the experiment declares.
pub struct Runs {
    pub keys: Vec<String>,
    pub runs: Vec<RunResult>,
    pub paper: Vec<PaperNumber>,
}

/// Collects, prints and writes the report. Everything is checked before anything is written.
pub fn report(exp_dir: &Path, opts: &Options) -> Result<()> {
    let metrics = exp_dir.join("metrics.jsonl");
    if !exp_dir.join(RESOLVED).is_file() && metrics.is_file() {
        return single_run(exp_dir);
    }
    let runs = collect(exp_dir)?;
    let with = runs.runs.iter().filter(|r| r.results.is_some()).count();
    if runs.keys.is_empty() && with == 0 && metrics.is_file() {
        return single_run(exp_dir);
    }
    ensure!(
        with > 0,
        "no results.json in {} yet ({} run(s) without results; `nls-launch status {}` says \
         where they stand)",
        exp_dir.display(),
        runs.runs.len(),
        exp_dir.display()
    );
    check_metric(&runs, &opts.metric)?;
    let layout = layout(&runs.keys, opts)?;
    if runs.keys.is_empty() {
        single_run(exp_dir)?;
    }
    let summary = summarize(&runs, &opts.metric, &layout);
    let paper = Paper::of(&runs, &opts.metric);
    if let Some(line) = protocols_line(&runs) {
        println!("{line}\n");
    }
    print!(
        "{}",
        markdown(&summary, &opts.metric, percent(&opts.metric))
    );
    if let Some(table) = paper.markdown(&summary) {
        print!("\n{table}");
    }
    let missing: Vec<&RunResult> = runs.runs.iter().filter(|r| r.results.is_none()).collect();
    if !missing.is_empty() {
        println!(
            "\n{} of {} run(s) without results:",
            missing.len(),
            runs.runs.len()
        );
        missing
            .iter()
            .for_each(|r| println!("  {}: {}", r.dir.display(), r.state));
    }
    let table = run_table(&runs, &paper);
    write_atomic(&exp_dir.join(CSV), csv(&table).as_bytes())?;
    write_atomic(
        &exp_dir.join(SUMMARY_CSV),
        csv(&summary_table(&summary, &opts.metric, &paper)).as_bytes(),
    )?;
    let doc = report_json(&runs, &summary, &opts.metric, &paper);
    write_atomic(
        &exp_dir.join(JSON),
        serde_json::to_string_pretty(&doc)?.as_bytes(),
    )?;
    println!(
        "\nwritten: {} (every run), {}, {}",
        exp_dir.join(CSV).display(),
        SUMMARY_CSV,
        JSON
    );
    let scale = if percent(&opts.metric) { 100.0 } else { 1.0 };
    let png = exp_dir.join(PNG);
    let name = exp_dir.file_name().unwrap_or_default().to_string_lossy();
    if figures::metric_vs_noise(&png, &name, &summary, &opts.metric, scale)? {
        println!("plot: {}", png.display());
    } else if png.is_file() {
        // An earlier report's plot would no longer match the tables beside it.
        std::fs::remove_file(&png).with_context(|| format!("removing {}", png.display()))?;
    }
    Ok(())
}

/// The metric must be in some run's results; the error lists the ones that are.
fn check_metric(runs: &Runs, metric: &str) -> Result<()> {
    if runs.runs.iter().any(|r| metric_of(r, metric).is_some()) {
        return Ok(());
    }
    let mut known: Vec<&str> = runs
        .runs
        .iter()
        .filter_map(|r| r.results.as_ref()?["metrics"].as_object())
        .flat_map(|m| {
            m.iter()
                .filter(|(_, v)| v.is_number())
                .map(|(k, _)| k.as_str())
        })
        .collect();
    known.sort_unstable();
    known.dedup();
    anyhow::bail!(
        "no run has the metric `{metric}` in its results.json; nothing was written. \
         Metrics the runs have: {}",
        known.join(", ")
    )
}

/// A single run (the launcher's, or a bare `trainer` run folder): its final numbers on
/// stdout and its training curves (`curves.png`) from metrics.jsonl.
fn single_run(exp_dir: &Path) -> Result<()> {
    let metrics = exp_dir.join("metrics.jsonl");
    let lines = figures::read_metrics(&metrics)?;
    println!("run {}:", exp_dir.display());
    for line in final_numbers(&lines) {
        println!("  {line}");
    }
    if let Some(results) = read_json::<Value>(&exp_dir.join("results.json"))? {
        let m = &results["metrics"];
        if let (Some(acc), Some(best)) = (m["acc1"].as_f64(), m["best_acc1"].as_f64()) {
            println!(
                "  test top-1 accuracy {:.1}% (best {:.1}% at epoch {})",
                acc * 100.0,
                best * 100.0,
                m["best_epoch"]
            );
        }
    }
    let png = exp_dir.join(CURVES_PNG);
    let title = format!("training curves of {}", exp_dir.display());
    if figures::training_curves(&png, &lines, &title)? {
        println!("plot: {}", png.display());
    }
    Ok(())
}

/// The last loss and the last kNN accuracy a run logged, as text.
pub fn final_numbers(lines: &[Value]) -> Vec<String> {
    let last = |key: &str| lines.iter().rev().find(|l| l[key].is_number());
    let at = |l: &Value| match (l["epoch"].as_f64(), l["step"].as_u64()) {
        (Some(e), Some(s)) => format!("step {s}, epoch {e}"),
        (None, Some(s)) => format!("step {s}"),
        (Some(e), None) => format!("epoch {e}"),
        _ => "unknown step".into(),
    };
    let mut out = Vec::new();
    if let Some(l) = last("loss") {
        out.push(format!(
            "final loss {:.4} ({})",
            l["loss"].as_f64().unwrap_or(f64::NAN),
            at(l)
        ));
    }
    if let Some(l) = last("knn_acc1") {
        let acc = l["knn_acc1"].as_f64().unwrap_or(f64::NAN) * 100.0;
        out.push(format!("kNN top-1 accuracy {acc:.1}% ({})", at(l)));
    }
    if out.is_empty() {
        out.push("no loss or kNN accuracy logged yet".into());
    }
    out
}

fn layout(keys: &[String], opts: &Options) -> Result<Layout> {
    let default = summary::default_layout(keys);
    let pooled = |named: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| !named.contains(k) && !summary::pooled_by_default(k))
            .cloned()
            .collect()
    };
    let layout = match (&opts.rows, &opts.columns) {
        (None, None) => default,
        (Some(r), Some(c)) => Layout {
            rows: r.clone(),
            columns: c.clone(),
        },
        (Some(r), None) => Layout {
            rows: r.clone(),
            columns: pooled(r),
        },
        (None, Some(c)) => Layout {
            rows: default
                .rows
                .into_iter()
                .filter(|k| !c.contains(k))
                .collect(),
            columns: c.clone(),
        },
    };
    summary::check_layout(keys, &layout)?;
    Ok(layout)
}

/// The experiment's runs: a sweep's configurations from its `job.toml`, else the exp-dir.
pub fn collect(exp_dir: &Path) -> Result<Runs> {
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
    let (keys, places): (Vec<String>, Vec<(Vec<String>, PathBuf)>) = match &exp.grid {
        None => (Vec::new(), vec![(Vec::new(), exp.job.exp_dir.clone())]),
        Some(grid) => {
            let points = sweep::expand(&sweep::parse_grids(grid, &file.display().to_string())?)?;
            let keys = points
                .first()
                .map(|p| p.0.iter().map(|(k, _)| k.clone()).collect())
                .unwrap_or_default();
            let places = points
                .iter()
                .map(|p| {
                    let values = p.0.iter().map(|(_, v)| v.text.clone()).collect();
                    (values, sweep::run_dir(&exp.job.exp_dir, p))
                })
                .collect();
            (keys, places)
        }
    };
    let epochs = exp.job.command.first().is_some_and(|c| is_training(c));
    let runs = places
        .into_iter()
        .map(|(values, dir)| {
            let results = read_json::<Value>(&dir.join("results.json")).with_context(|| {
                "a damaged results file: delete it and run that configuration again"
            })?;
            let state = match &results {
                Some(_) => "results".to_string(),
                None => state_without_results(&dir, epochs)?,
            };
            Ok(RunResult {
                values,
                dir,
                results,
                state,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Runs {
        keys,
        runs,
        paper: exp.paper,
    })
}

/// Where a run without `results.json` stands.
fn state_without_results(dir: &Path, epochs: bool) -> Result<String> {
    if !dir.is_dir() {
        return Ok("not started".into());
    }
    Ok(match monitor::read_stop(dir)? {
        Some(stop) => format!(
            "stopped ({}){}",
            stop.reason,
            monitor::progress(&stop, epochs)
        ),
        None => "started, no results.json: running, or failed (see its logs)".into(),
    })
}

fn metric_of(r: &RunResult, metric: &str) -> Option<f64> {
    r.results.as_ref()?["metrics"][metric].as_f64()
}

fn summarize(runs: &Runs, metric: &str, layout: &Layout) -> Summary {
    let points: Vec<Point> = runs
        .runs
        .iter()
        .map(|r| Point {
            values: r.values.clone(),
            metric: metric_of(r, metric),
        })
        .collect();
    summary::summarize(&runs.keys, &points, layout)
}

/// Accuracies and rates are fractions in `results.json`; the table shows percent.
fn percent(metric: &str) -> bool {
    metric.contains("acc") || metric == "noisy_predicted_true" || metric == "train_flip_rate"
}

/// `64.2 ± 1.3 (2)`: mean ± std (count); `—` for an empty cell.
fn stats_cell(s: Option<Stats>, percent: bool) -> String {
    let Some(s) = s else {
        return "—".into();
    };
    let k = if percent { 100.0 } else { 1.0 };
    match s.n {
        1 => format!("{:.1} (1)", s.mean * k),
        n => format!("{:.1} ± {:.1} ({n})", s.mean * k, s.std * k),
    }
}

/// A label from keys and values: `loss ce, sparsity 0.2`.
pub fn label(keys: &[String], values: &[String]) -> String {
    let parts: Vec<String> = keys
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k} {}", short(v)))
        .collect();
    match parts.is_empty() {
        true => "all".into(),
        false => parts.join(", "),
    }
}

/// A value as a table header shows it: a path by its file name, and a backbone export
/// (`<run>/backbone.safetensors`) by the run that wrote it.
fn short(value: &str) -> &str {
    fn name(p: &Path) -> Option<&str> {
        p.file_name().and_then(|n| n.to_str())
    }
    let path = Path::new(value);
    match (value.contains('/'), name(path)) {
        (true, Some("backbone.safetensors")) => path.parent().and_then(name).unwrap_or(value),
        (true, Some(file)) => file,
        _ => value,
    }
}

/// The summary in Markdown, under a line that says what the cells are.
pub fn markdown(s: &Summary, metric: &str, percent: bool) -> String {
    let unit = if percent { " (%)" } else { "" };
    let mut head: Vec<String> = s.layout.rows.clone();
    if head.is_empty() {
        head.push(String::new());
    }
    let first_cols = head.len();
    head.extend(s.columns.iter().map(|c| label(&s.layout.columns, c)));
    let mut out = format!("{metric}{unit}: mean ± std (runs)\n\n");
    out += &format!("| {} |\n", head.join(" | "));
    out += &format!("|{}\n", " --- |".repeat(head.len()));
    for (r, values) in s.rows.iter().enumerate() {
        let mut cells: Vec<String> = match values.is_empty() {
            true => vec!["all".into(); first_cols],
            false => values.clone(),
        };
        cells.extend(s.cells[r].iter().map(|c| stats_cell(*c, percent)));
        out += &format!("| {} |\n", cells.join(" | "));
    }
    out
}

/// A table of text cells with named columns.
#[derive(Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The evaluation protocols of the runs (`results.json` → `protocol`), so a table of cached-
/// feature probes is never mistaken for one of seed 000's protocol: `protocol: seed000`.
fn protocols_line(runs: &Runs) -> Option<String> {
    let mut seen: Vec<&str> = runs
        .runs
        .iter()
        .filter_map(|r| r.results.as_ref()?["protocol"].as_str())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    (!seen.is_empty()).then(|| format!("protocol: {}", seen.join(", ")))
}

/// Every run with results: grid values, the protocol, then the metrics some run has (and the
/// paper's number of its cell, where the experiment declares them).
fn run_table(runs: &Runs, paper: &Paper) -> Table {
    let metrics: Vec<&str> = METRICS
        .into_iter()
        .filter(|m| runs.runs.iter().any(|r| metric_of(r, m).is_some()))
        .collect();
    let rows = runs
        .runs
        .iter()
        .filter_map(|r| {
            let res = r.results.as_ref()?;
            let cells = metrics.iter().map(|m| cell(&res["metrics"][*m]));
            let protocol = res["protocol"].as_str().unwrap_or_default().to_string();
            let published = paper
                .declared()
                .then(|| number_cell(paper.number(&runs.keys, &r.values)));
            Some(
                r.values
                    .iter()
                    .cloned()
                    .chain([protocol])
                    .chain(cells)
                    .chain(published)
                    .collect(),
            )
        })
        .collect();
    Table {
        columns: runs
            .keys
            .iter()
            .cloned()
            .chain(["protocol".to_string()])
            .chain(metrics.iter().map(|m| m.to_string()))
            .chain(paper.declared().then(|| "paper".to_string()))
            .collect(),
        rows,
    }
}

/// A number as the CSV writes it; empty when absent.
fn number_cell(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

/// The paper's numbers for the reported metric, in the metric's units (fractions for
/// accuracies, as in `results.json`; the experiment file gives them as printed, in percent).
pub struct Paper {
    numbers: Vec<PaperNumber>,
    scale: f64,
}

impl Paper {
    pub fn of(runs: &Runs, metric: &str) -> Paper {
        Paper {
            numbers: runs
                .paper
                .iter()
                .filter(|n| n.metric == metric)
                .cloned()
                .collect(),
            scale: if percent(metric) { 100.0 } else { 1.0 },
        }
    }

    /// Whether the experiment declares any number for this metric.
    pub fn declared(&self) -> bool {
        !self.numbers.is_empty()
    }

    fn entry(&self, keys: &[String], values: &[String]) -> Option<&PaperNumber> {
        self.numbers.iter().find(|n| n.matches(keys, values))
    }

    /// The number of the cell with these keys and values, in the metric's units.
    pub fn number(&self, keys: &[String], values: &[String]) -> Option<f64> {
        self.entry(keys, values).map(|n| n.value / self.scale)
    }

    /// For each summary cell with a paper's number: (row, column, the number's entry).
    fn cells(&self, s: &Summary) -> Vec<(usize, usize, &PaperNumber)> {
        let keys = layout_keys(s);
        let mut out = Vec::new();
        for (r, rv) in s.rows.iter().enumerate() {
            for (c, cv) in s.columns.iter().enumerate() {
                let values: Vec<String> = rv.iter().chain(cv).cloned().collect();
                if let Some(n) = self.entry(&keys, &values) {
                    out.push((r, c, n));
                }
            }
        }
        out
    }

    /// Ours beside the paper's, cell by cell, with the difference (ours − paper) in the
    /// table's units; None when no cell of this layout has a paper's number.
    pub fn markdown(&self, s: &Summary) -> Option<String> {
        let cells = self.cells(s);
        if cells.is_empty() {
            return None;
        }
        let head: Vec<String> = layout_keys(s)
            .into_iter()
            .chain(["ours", "paper", "Δ", "source"].map(String::from))
            .collect();
        let mut out = String::from("beside the paper: Δ = ours − paper\n\n");
        out += &format!(
            "| {} |\n|{}\n",
            head.join(" | "),
            " --- |".repeat(head.len())
        );
        for (r, c, n) in cells {
            let ours = s.cells[r][c];
            let delta = ours.map_or("—".into(), |o| {
                format!("{:+.1}", o.mean * self.scale - n.value)
            });
            let row: Vec<String> = s.rows[r]
                .iter()
                .chain(&s.columns[c])
                .cloned()
                .chain([
                    stats_cell(ours, self.scale != 1.0),
                    n.value.to_string(),
                    delta,
                    n.source.clone(),
                ])
                .collect();
            out += &format!("| {} |\n", row.join(" | "));
        }
        Some(out)
    }
}

/// The summary's row keys, then its column keys.
fn layout_keys(s: &Summary) -> Vec<String> {
    s.layout
        .rows
        .iter()
        .chain(&s.layout.columns)
        .cloned()
        .collect()
}

/// The summary in long form: row keys, column keys, then mean, std, n (empty cells left out),
/// and where the experiment declares the paper's numbers, the paper's and ours − paper.
fn summary_table(s: &Summary, metric: &str, paper: &Paper) -> Table {
    let keys = layout_keys(s);
    let mut rows = Vec::new();
    for (r, rv) in s.rows.iter().enumerate() {
        for (c, cv) in s.columns.iter().enumerate() {
            if let Some(st) = s.cells[r][c] {
                let mut row: Vec<String> = rv.iter().chain(cv).cloned().collect();
                let number = paper.number(&keys, &row);
                row.extend([st.mean.to_string(), st.std.to_string(), st.n.to_string()]);
                if paper.declared() {
                    row.extend([
                        number_cell(number),
                        number_cell(number.map(|p| st.mean - p)),
                    ]);
                }
                rows.push(row);
            }
        }
    }
    let mut names = vec![
        format!("{metric}_mean"),
        format!("{metric}_std"),
        "n".into(),
    ];
    if paper.declared() {
        names.extend(["paper".into(), "delta".into()]);
    }
    Table {
        columns: keys.into_iter().chain(names).collect(),
        rows,
    }
}

fn report_json(runs: &Runs, s: &Summary, metric: &str, paper: &Paper) -> Value {
    let keys = layout_keys(s);
    let mut cells: Vec<Value> = s
        .rows
        .iter()
        .enumerate()
        .flat_map(|(r, rv)| {
            s.columns.iter().enumerate().map(move |(c, cv)| {
                let st = s.cells[r][c];
                json!({
                    "row": rv, "column": cv,
                    "mean": st.map(|x| x.mean), "std": st.map(|x| x.std), "n": st.map_or(0, |x| x.n),
                })
            })
        })
        .collect();
    if paper.declared() {
        for cell in &mut cells {
            let values: Vec<String> = [&cell["row"], &cell["column"]]
                .iter()
                .filter_map(|v| v.as_array())
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            if let Some(n) = paper.entry(&keys, &values) {
                cell["paper"] = json!(n.value / paper.scale);
                cell["paper_source"] = json!(n.source);
            }
        }
    }
    let run_list: Vec<Value> = runs
        .runs
        .iter()
        .map(|r| {
            json!({
                "values": r.values, "dir": r.dir, "state": r.state,
                "metrics": r.results.as_ref().map(|x| x["metrics"].clone()),
            })
        })
        .collect();
    json!({
        "format": "nls-report", "version": 1, "metric": metric, "keys": runs.keys,
        "rows": s.layout.rows, "columns": s.layout.columns, "cells": cells, "runs": run_list,
    })
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

/// A table as CSV (RFC 4180 quoting where needed).
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
    fn cells_and_csv_quoting() {
        let t = Table {
            columns: vec!["loss".into(), "acc1".into()],
            rows: vec![
                vec!["a,b".into(), "0.5000".into()],
                vec!["say \"x\"".into(), String::new()],
            ],
        };
        assert_eq!(csv(&t), "loss,acc1\n\"a,b\",0.5000\n\"say \"\"x\"\"\",\n");
        assert_eq!(cell(&serde_json::json!(0.61234)), "0.6123");
        assert_eq!(cell(&serde_json::json!(46)), "46");
        assert_eq!(cell(&Value::Null), "");
        let two = Stats {
            n: 2,
            mean: 0.6,
            std: 0.02f64.sqrt(),
        };
        assert_eq!(stats_cell(Some(two), true), "60.0 ± 14.1 (2)");
        assert_eq!(stats_cell(None, true), "—");
        let keys = ["backbone".to_string(), "labels".to_string()];
        let values = ["runs/vicreg/backbone.safetensors", "noise/cifar10-0.4.json"];
        let values = values.map(String::from);
        assert_eq!(
            label(&keys, &values),
            "backbone vicreg, labels cifar10-0.4.json"
        );
        assert_eq!(label(&keys[..1], &["none".to_string()]), "backbone none");
    }

    #[test]
    fn markdown_has_a_row_per_noise_and_a_column_per_loss() {
        let s = Summary {
            layout: Layout {
                rows: vec!["noise".into()],
                columns: vec!["loss".into()],
            },
            rows: vec![vec!["0.4".into()]],
            columns: vec![vec!["ce".into()], vec!["gce".into()]],
            cells: vec![vec![
                Some(Stats {
                    n: 1,
                    mean: 0.5,
                    std: 0.0,
                }),
                None,
            ]],
        };
        assert_eq!(
            markdown(&s, "acc1", true),
            "acc1 (%): mean ± std (runs)\n\n| noise | loss ce | loss gce |\n| --- | --- | --- |\n| 0.4 | 50.0 (1) | — |\n"
        );
    }
}
