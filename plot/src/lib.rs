//! PNG charts for nls reports, drawn in pure Rust: data in, PNG file out.
//!
//! - [`lines_with_error_bars`]: one line per series with ±std error bars (e.g. test accuracy
//!   against noise rate, one line per loss).
//! - [`heatmap`]: a matrix as coloured cells with a colour bar (e.g. a K×K noise matrix).
//! - [`curves`]: a grid of small line charts sharing the x axis (e.g. metrics against step).
//!
//! Pixels are drawn by `plotters` into an RGB buffer and encoded with `png`; text uses DejaVu Sans,
//! read at run time from [`FONT_PATH`]. Input is checked before anything is drawn, and the file is
//! written atomically, so bad input or a failure leaves no file behind.

mod canvas;
mod curves;
mod font;
mod heatmap;
mod lines;
mod style;

pub use curves::{curves, curves_size};
pub use font::FONT_PATH;
pub use heatmap::{heatmap, heatmap_layout, HeatmapLayout};
pub use lines::{lines_with_error_bars, LINES_SIZE};

use anyhow::{Context, Result};
use std::path::Path;

/// Check that the font can be loaded, so that a caller can fail before writing anything else.
pub fn check_font() -> Result<()> {
    font::fonts().map(|_| ())
}

/// Titles of a single chart.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
}

/// One line of [`lines_with_error_bars`]: points `(x, mean, std)`; the error bar spans mean ± std.
/// Points whose x or mean is not finite are skipped; a non-finite std draws no bar.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// One line of a [`curves`] panel: points `(x, y)`; points with a non-finite x or y are skipped.
#[derive(Clone, Debug, Default)]
pub struct Series2 {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One small chart of [`curves`], with its own y range.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    pub y_label: String,
    pub series: Vec<Series2>,
}

/// Encode an RGB buffer as PNG and write it atomically.
fn write_png(path: &Path, rgb: &[u8], (width, height): (u32, u32)) -> Result<()> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().context("encoding PNG")?;
        writer.write_image_data(rgb).context("encoding PNG")?;
    }
    nls_atomic::write_atomic(path, &bytes)
        .with_context(|| format!("writing plot {}", path.display()))
}

/// Draw into a fresh white RGB buffer of the given size, then write it as PNG to `path`.
fn render<F>(path: &Path, size: (u32, u32), draw: F) -> Result<()>
where
    F: FnOnce(&style::Area) -> Result<()>,
{
    use plotters::prelude::*;
    let mut rgb = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = canvas::Canvas::new(&mut rgb, size)?.into_drawing_area();
        root.fill(&WHITE).map_err(style::err)?;
        draw(&root)?;
        root.present().map_err(style::err)?;
    }
    write_png(path, &rgb, size)
}
