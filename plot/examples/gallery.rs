//! Render one example of each chart: `cargo run --release -p plot --example gallery -- <dir>`.

use plot::{Chart, Panel, Series, Series2};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "plot-examples".into()),
    );
    let noise = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let losses = [
        ("cross-entropy", 0.93, 0.55),
        ("generalized cross-entropy (q=0.7)", 0.925, 0.30),
        ("symmetric cross-entropy", 0.92, 0.25),
        ("mean absolute error", 0.88, 0.35),
    ];
    let series: Vec<Series> = losses
        .iter()
        .map(|&(name, top, drop)| Series {
            name: name.into(),
            points: noise
                .iter()
                .map(|&r| {
                    let mean = top - drop * r * r - 0.05 * r;
                    (r, mean, 0.004 + 0.02 * r)
                })
                .collect(),
        })
        .collect();
    plot::lines_with_error_bars(
        &dir.join("accuracy-vs-noise.png"),
        &Chart {
            title: "Fashion-MNIST: test accuracy against noise rate (matrix noise, sparsity 0, 5 seeds)".into(),
            x_label: "noise rate".into(),
            y_label: "test accuracy (mean ± std over seeds)".into(),
        },
        &series,
    )?;

    let classes = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];
    let labels: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
    let k = 10;
    let m: Vec<Vec<f64>> = (0..k)
        .map(|s| {
            (0..k)
                .map(|y| {
                    if s == y {
                        0.6 + 0.03 * (y % 4) as f64
                    } else if (s + y) % 3 == 0 {
                        0.0
                    } else {
                        (0.4 - 0.03 * (y % 4) as f64) / 6.0 * (1.0 + ((s * 7 + y) % 3) as f64 * 0.1)
                    }
                })
                .collect()
        })
        .collect();
    plot::heatmap(
        &dir.join("noise-matrix-k10.png"),
        "fashion-mnist matrix noise 0.4 sparsity 0.2 seed 0, realized flip rate 0.3912",
        &m,
        &labels,
        &labels,
        "true label y",
        "noisy label s",
    )?;
    let k = 100;
    let idx: Vec<String> = (0..k).map(|i| i.to_string()).collect();
    let m: Vec<Vec<f64>> = (0..k)
        .map(|s| {
            (0..k)
                .map(|y| {
                    if s == y {
                        0.6
                    } else if (y + 1) % k == s {
                        0.3
                    } else {
                        0.1 / 98.0
                    }
                })
                .collect()
        })
        .collect();
    plot::heatmap(
        &dir.join("noise-matrix-k100.png"),
        "cifar100 asymmetric-like noise 0.4 seed 0, realized flip rate 0.4000",
        &m,
        &idx,
        &idx,
        "true label y",
        "noisy label s",
    )?;

    let steps: Vec<f64> = (0..=2000).step_by(10).map(|s| s as f64).collect();
    let loss: Vec<(f64, f64)> = steps
        .iter()
        .map(|&s| (s, 6.0 * (-s / 500.0).exp() + 1.2 + 0.1 * (s / 7.0).sin()))
        .collect();
    let lr: Vec<(f64, f64)> = steps
        .iter()
        .map(|&s| {
            let warm = (s / 200.0).min(1.0);
            (
                s,
                3e-4 * warm * 0.5 * (1.0 + (std::f64::consts::PI * s / 2000.0).cos()),
            )
        })
        .collect();
    let knn: Vec<(f64, f64)> = (0..=8)
        .map(|e| {
            (
                e as f64 * 250.0,
                0.3 + 0.55 * (1.0 - (-(e as f64) / 3.0).exp()),
            )
        })
        .collect();
    let knn_noisy: Vec<(f64, f64)> = knn.iter().map(|&(x, y)| (x, y - 0.08)).collect();
    let ips: Vec<(f64, f64)> = steps
        .iter()
        .map(|&s| {
            (
                s,
                if (s as u64).is_multiple_of(500) {
                    f64::NAN
                } else {
                    5200.0 + 300.0 * (s / 90.0).cos()
                },
            )
        })
        .collect();
    plot::curves(
        &dir.join("training-curves.png"),
        "pretrain fashion-mnist simclr resnet18: metrics.jsonl",
        &[
            Panel {
                y_label: "training loss".into(),
                series: vec![Series2 {
                    name: "loss".into(),
                    points: loss,
                }],
            },
            Panel {
                y_label: "learning rate".into(),
                series: vec![Series2 {
                    name: "lr".into(),
                    points: lr,
                }],
            },
            Panel {
                y_label: "kNN accuracy".into(),
                series: vec![
                    Series2 {
                        name: "clean labels".into(),
                        points: knn,
                    },
                    Series2 {
                        name: "noisy labels (0.4)".into(),
                        points: knn_noisy,
                    },
                ],
            },
            Panel {
                y_label: "images/s".into(),
                series: vec![Series2 {
                    name: "images/s".into(),
                    points: ips,
                }],
            },
            Panel {
                y_label: "gradient norm".into(),
                series: vec![Series2 {
                    name: "grad".into(),
                    points: vec![(0.0, f64::NAN)],
                }],
            },
        ],
        "step",
    )?;
    println!("wrote the examples to {}", dir.display());
    Ok(())
}
