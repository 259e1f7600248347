//! The report's figures, drawn by the `plot` crate: the summarized metric against the noise
//! rate (one line per column of the summary, ±std over seeds), and a run's training curves
//! from its `metrics.jsonl`.

use crate::summary::Summary;
use anyhow::{Context, Result};
use plot::{Chart, Panel, Series, Series2};
use serde_json::Value;
use std::path::Path;

/// Per-step quantities worth a panel, in this order, when the run logged them.
const CURVES: [(&str, &str); 8] = [
    ("loss", "training loss"),
    ("acc1", "test top-1 accuracy"),
    ("knn_acc1", "kNN top-1 accuracy"),
    (
        "noisy_predicted_true",
        "noisy samples predicted as their true class",
    ),
    ("lr", "learning rate"),
    ("lr_head", "head learning rate"),
    ("images_per_s", "images/s"),
    ("best_acc1", "best test top-1 accuracy"),
];

/// The metric against the noise rate, one line per column, titled with the experiment's `name`;
/// false (nothing written) when the rows are not the noise rate alone.
pub fn metric_vs_noise(
    path: &Path,
    name: &str,
    s: &Summary,
    metric: &str,
    scale: f64,
) -> Result<bool> {
    if s.layout.rows != ["noise"] {
        return Ok(false);
    }
    let noise: Option<Vec<f64>> = s.rows.iter().map(|r| r[0].parse().ok()).collect();
    let Some(noise) = noise else {
        return Ok(false);
    };
    let series: Vec<Series> = s
        .columns
        .iter()
        .enumerate()
        .map(|(c, label)| Series {
            name: crate::report::label(&s.layout.columns, label),
            points: noise
                .iter()
                .zip(&s.cells)
                .filter_map(|(x, row)| row[c].map(|st| (*x, st.mean * scale, st.std * scale)))
                .collect(),
        })
        .filter(|se| !se.points.is_empty())
        .collect();
    let unit = if scale == 100.0 { " (%)" } else { "" };
    let chart = Chart {
        title: format!("{name}: {metric} against the noise rate (mean ± std over seeds)"),
        x_label: "noise rate".into(),
        y_label: format!("{metric}{unit}"),
    };
    plot::lines_with_error_bars(path, &chart, &series)?;
    Ok(true)
}

/// The complete lines of a run's `metrics.jsonl` (none when it has no such file).
pub fn read_metrics(metrics: &Path) -> Result<Vec<Value>> {
    if !metrics.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(metrics)
        .with_context(|| format!("reading {}", metrics.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The training curves of a run: one panel per quantity its metrics lines have, against step.
/// False (nothing written) when there is nothing to draw.
pub fn training_curves(path: &Path, records: &[Value], title: &str) -> Result<bool> {
    let panels: Vec<Panel> = CURVES
        .iter()
        .filter_map(|(key, label)| {
            let points: Vec<(f64, f64)> = records
                .iter()
                .filter_map(|r| Some((r["step"].as_f64()?, r[*key].as_f64()?)))
                .collect();
            (!points.is_empty()).then(|| Panel {
                y_label: label.to_string(),
                series: vec![Series2 {
                    name: key.to_string(),
                    points,
                }],
            })
        })
        .collect();
    if panels.is_empty() {
        return Ok(false);
    }
    plot::curves(path, title, &panels, "step")
        .with_context(|| format!("plotting {}", path.display()))?;
    Ok(true)
}
