//! Each chart writes a PNG that decodes, has the expected size and is not blank; bad input is an
//! error that writes nothing.

use plot::{Chart, Panel, Series, Series2};
use std::collections::HashSet;
use std::path::Path;

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    fn pixels(&self) -> impl Iterator<Item = [u8; 3]> + '_ {
        self.rgb.chunks_exact(3).map(|p| [p[0], p[1], p[2]])
    }

    fn distinct_colors(&self) -> usize {
        self.pixels().collect::<HashSet<_>>().len()
    }

    fn non_white_fraction(&self) -> f64 {
        let n = self.pixels().filter(|p| *p != [255, 255, 255]).count();
        n as f64 / (self.width * self.height) as f64
    }

    fn has_color(&self, c: [u8; 3]) -> bool {
        self.pixels().any(|p| p == c)
    }
}

fn decode(path: &Path) -> Image {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    Image {
        width: info.width,
        height: info.height,
        rgb: buf,
    }
}

fn luminance(p: [u8; 3]) -> f64 {
    0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64
}

/// Only the PNG is left in the folder: no temporary file.
fn only_file(dir: &Path, name: &str) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![name.to_string()]);
}

const BLUE: [u8; 3] = [31, 119, 180];
const ORANGE: [u8; 3] = [255, 127, 14];

fn accuracy_series() -> Vec<Series> {
    let noise = [0.0, 0.2, 0.4, 0.6, 0.8];
    ["cross-entropy", "symmetric cross-entropy"]
        .iter()
        .enumerate()
        .map(|(i, name)| Series {
            name: name.to_string(),
            points: noise
                .iter()
                .map(|&r| (r, 0.92 - (0.4 - 0.2 * i as f64) * r, 0.01 + 0.02 * r))
                .collect(),
        })
        .collect()
}

fn chart() -> Chart {
    Chart {
        title: "test accuracy against noise rate".into(),
        x_label: "noise rate".into(),
        y_label: "test accuracy".into(),
    }
}

#[test]
fn lines_with_error_bars_writes_a_readable_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accuracy.png");
    let mut series = accuracy_series();
    // Non-finite points are skipped, a non-finite std draws no bar.
    series[0].points.push((f64::NAN, 0.5, 0.1));
    series[1].points.push((0.9, 0.7, f64::NAN));
    plot::lines_with_error_bars(&path, &chart(), &series).unwrap();
    let img = decode(&path);
    assert_eq!((img.width, img.height), plot::LINES_SIZE);
    assert!(img.distinct_colors() > 20, "{}", img.distinct_colors());
    let ink = img.non_white_fraction();
    assert!(ink > 0.01 && ink < 0.5, "non-white fraction {ink}");
    assert!(img.has_color(BLUE) && img.has_color(ORANGE));
    only_file(dir.path(), "accuracy.png");
}

fn noise_matrix(k: usize, diag: f64) -> Vec<Vec<f64>> {
    let off = (1.0 - diag) / (k - 1) as f64;
    (0..k)
        .map(|s| (0..k).map(|y| if s == y { diag } else { off }).collect())
        .collect()
}

fn labels(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("class {i}")).collect()
}

#[test]
fn heatmap_colours_high_values_brighter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix.png");
    let k = 10;
    let m = noise_matrix(k, 0.9);
    let names = labels(k);
    plot::heatmap(&path, "noise matrix", &m, &names, &names, "true", "noisy").unwrap();
    let layout = plot::heatmap_layout(&m, &names, &names).unwrap();
    assert!(layout.annotated());
    let img = decode(&path);
    assert_eq!((img.width, img.height), (layout.width, layout.height));
    assert!(img.distinct_colors() > 20);
    // Values are printed at the centres, so sample a fifth of the way into the cell.
    let probe = |r, c| {
        let (x0, y0, x1, y1) = layout.cell_rect(r, c);
        img.pixel((x0 + (x1 - x0) / 5) as u32, (y0 + (y1 - y0) / 5) as u32)
    };
    for i in 0..k {
        let high = probe(i, i);
        let low = probe(i, (i + 1) % k);
        // Viridis: high values are yellow-green and bright, low ones dark purple.
        assert!(
            luminance(high) > luminance(low) + 60.0,
            "{high:?} vs {low:?}"
        );
        assert!(high[1] > 150 && low[2] > low[1], "{high:?} vs {low:?}");
    }
    // The printed value: the centre of a dark cell holds some light text pixels.
    let (x0, y0, x1, y1) = layout.cell_rect(0, 1);
    let light = (x0..x1)
        .flat_map(|x| (y0..y1).map(move |y| (x, y)))
        .filter(|&(x, y)| luminance(img.pixel(x as u32, y as u32)) > 150.0)
        .count();
    assert!(light > 10, "no value printed in cell (0, 1)");
    only_file(dir.path(), "matrix.png");
}

#[test]
fn heatmap_of_100_classes_renders_without_cell_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix100.png");
    let k = 100;
    let m = noise_matrix(k, 0.6);
    let names: Vec<String> = (0..k).map(|i| i.to_string()).collect();
    plot::heatmap(&path, "K = 100", &m, &names, &names, "true", "noisy").unwrap();
    let layout = plot::heatmap_layout(&m, &names, &names).unwrap();
    assert!(!layout.annotated());
    let img = decode(&path);
    assert_eq!((img.width, img.height), (layout.width, layout.height));
    assert!(layout.cell >= 4.0, "cells of {} px", layout.cell);
    for i in [0, 37, 99] {
        let (hx, hy) = layout.cell_center(i, i);
        let (lx, ly) = layout.cell_center(i, (i + 50) % k);
        let (high, low) = (img.pixel(hx, hy), img.pixel(lx, ly));
        assert!(
            luminance(high) > luminance(low) + 40.0,
            "{high:?} vs {low:?}"
        );
    }
}

#[test]
fn curves_draw_panels_and_say_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("curves.png");
    let steps = (0..200).map(|s| s as f64 * 10.0);
    let loss: Vec<(f64, f64)> = steps
        .clone()
        .map(|s| (s, 5.0 / (1.0 + s / 300.0)))
        .collect();
    let mut lr: Vec<(f64, f64)> = steps.map(|s| (s, 1e-3 * (1.0 - s / 2000.0))).collect();
    lr[17].1 = f64::NAN;
    lr[30].0 = f64::INFINITY;
    let panels = vec![
        Panel {
            y_label: "training loss".into(),
            series: vec![Series2 {
                name: "loss".into(),
                points: loss,
            }],
        },
        Panel {
            y_label: "learning rate".into(),
            series: vec![
                Series2 {
                    name: "lr".into(),
                    points: lr,
                },
                Series2 {
                    name: "single point".into(),
                    points: vec![(500.0, 5e-4)],
                },
            ],
        },
        Panel {
            y_label: "kNN accuracy".into(),
            series: vec![Series2 {
                name: "knn".into(),
                points: vec![(0.0, f64::NAN)],
            }],
        },
    ];
    plot::curves(&path, "metrics", &panels, "step").unwrap();
    let img = decode(&path);
    assert_eq!((img.width, img.height), plot::curves_size(3));
    assert!(img.distinct_colors() > 20);
    assert!(img.has_color(BLUE) && img.has_color(ORANGE));
    let ink = img.non_white_fraction();
    assert!(ink > 0.01 && ink < 0.5, "non-white fraction {ink}");
    only_file(dir.path(), "curves.png");
}

/// The error says what is wrong, and no file (nor a temporary one) is left behind.
fn assert_rejected(dir: &Path, result: anyhow::Result<()>, needle: &str) {
    let e = format!("{:#}", result.expect_err("bad input was accepted"));
    assert!(
        e.contains(needle),
        "error '{e}' does not mention '{needle}'"
    );
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        0,
        "a file was written"
    );
}

#[test]
fn bad_input_is_an_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = d.join("out.png");
    assert_rejected(
        d,
        plot::lines_with_error_bars(&p, &chart(), &[]),
        "no series",
    );
    let mut series = accuracy_series();
    series[1].points.clear();
    assert_rejected(
        d,
        plot::lines_with_error_bars(&p, &chart(), &series),
        "'symmetric cross-entropy' has no points",
    );
    let nan = vec![Series {
        name: "nan".into(),
        points: vec![(0.1, f64::NAN, 0.0)],
    }];
    assert_rejected(d, plot::lines_with_error_bars(&p, &chart(), &nan), "finite");

    let m = noise_matrix(4, 0.7);
    let (l3, l4) = (labels(3), labels(4));
    assert_rejected(
        d,
        plot::heatmap(&p, "t", &m, &l3, &l4, "x", "y"),
        "3 row labels for 4 rows",
    );
    assert_rejected(
        d,
        plot::heatmap(&p, "t", &m, &l4, &l3, "x", "y"),
        "3 column labels for 4 columns",
    );
    let mut ragged = m.clone();
    ragged[2].pop();
    assert_rejected(
        d,
        plot::heatmap(&p, "t", &ragged, &l4, &l4, "x", "y"),
        "row 2 has 3 values",
    );
    assert_rejected(
        d,
        plot::heatmap(&p, "t", &[], &[], &[], "x", "y"),
        "no rows",
    );
    assert_rejected(d, plot::curves(&p, "t", &[], "step"), "no panels");
}
