//! One line per series with ±std error bars and a legend beside the chart.

use crate::style::{self, err, Area};
use crate::{render, Chart, Series};
use anyhow::{bail, ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// Size of the image of [`lines_with_error_bars`].
pub const LINES_SIZE: (u32, u32) = (1100, 680);
const TITLE_H: u32 = 56;
const LEGEND_MAX_W: u32 = 320;

/// A line chart, one line per series, with error bars (mean ± std) and a legend on the right.
/// The y range follows the data (means ± std) with a margin, kept within [0, 1] or [0, 100] when
/// the data is. Errors (and writes nothing) on an empty series list, a series without points, or
/// no finite point at all.
pub fn lines_with_error_bars(path: &Path, chart: &Chart, series: &[Series]) -> Result<()> {
    ensure!(!series.is_empty(), "lines_with_error_bars: no series given");
    for s in series {
        ensure!(
            !s.points.is_empty(),
            "lines_with_error_bars: series '{}' has no points",
            s.name
        );
    }
    let finite = |p: &&(f64, f64, f64)| p.0.is_finite() && p.1.is_finite();
    let spread = |p: &(f64, f64, f64)| if p.2.is_finite() { p.2.abs() } else { 0.0 };
    let points = || series.iter().flat_map(|s| s.points.iter().filter(finite));
    let Some((x_lo, x_hi)) = style::finite_bounds(points().map(|p| p.0)) else {
        bail!("lines_with_error_bars: no series has a finite point");
    };
    let (y_lo, _) = style::finite_bounds(points().map(|p| p.1 - spread(p))).unwrap();
    let (_, y_hi) = style::finite_bounds(points().map(|p| p.1 + spread(p))).unwrap();
    let x_range = style::padded(x_lo, x_hi, 0.04);
    let y_range = style::value_range(y_lo, y_hi);
    // Series sharing an x are nudged apart so that their error bars do not hide each other.
    let dodge = if series.len() > 1 {
        (x_range.1 - x_range.0) * 0.005
    } else {
        0.0
    };

    render(path, LINES_SIZE, |root| {
        let rest = style::title_band(root, &chart.title, TITLE_H)?;
        let legend_font = style::font(style::LABEL_SIZE);
        let widest = series
            .iter()
            .map(|s| style::text_size(&legend_font, &s.name).0)
            .max()
            .unwrap_or(0);
        let legend_w = (widest + 70).min(LEGEND_MAX_W);
        let (w, _) = rest.dim_in_pixel();
        let (plot_area, legend_area) = rest.split_horizontally(w - legend_w);

        let mut ctx = ChartBuilder::on(&plot_area)
            .margin(12)
            .x_label_area_size(64)
            .y_label_area_size(84)
            .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
            .map_err(err)?;
        // Decimals for a step finer than plotters' own ticks (see curves.rs).
        let x_step = style::nice_step(x_range.0, x_range.1, 2 * 12);
        let y_step = style::nice_step(y_range.0, y_range.1, 2 * 12);
        ctx.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .x_labels(12)
            .y_labels(12)
            .x_label_formatter(&|v| style::tick_label(*v, x_step))
            .y_label_formatter(&|v| style::tick_label(*v, y_step))
            .label_style(style::font(style::LABEL_SIZE).color(&style::TEXT))
            .axis_desc_style(style::font(style::AXIS_SIZE).color(&style::TEXT))
            .bold_line_style(style::GRID)
            .light_line_style(WHITE)
            .axis_style(style::MUTED)
            .draw()
            .map_err(err)?;

        for (i, s) in series.iter().enumerate() {
            let color = style::series_color(i);
            let shift = dodge * (i as f64 - (series.len() - 1) as f64 / 2.0);
            let pts: Vec<(f64, f64, f64)> = {
                let mut v: Vec<_> = s
                    .points
                    .iter()
                    .filter(finite)
                    .map(|p| (p.0 + shift, p.1, p.2))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            };
            ctx.draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))
            .map_err(err)?;
            ctx.draw_series(pts.iter().filter(|p| p.2.is_finite()).map(|p| {
                let sd = p.2.abs();
                ErrorBar::new_vertical(p.0, p.1 - sd, p.1, p.1 + sd, color.stroke_width(2), 10)
            }))
            .map_err(err)?;
            ctx.draw_series(pts.iter().map(|p| marker(i, (p.0, p.1), color)))
                .map_err(err)?;
        }
        draw_legend(&legend_area, series, legend_w)
    })
}

/// Markers differ by shape as well as colour, for readers who cannot tell the colours apart.
fn marker<DB: DrawingBackend, C: Clone + 'static>(
    i: usize,
    at: C,
    color: RGBColor,
) -> DynElement<'static, DB, C> {
    match (i / 10 + i) % 3 {
        0 => Circle::new(at, 5, color.filled()).into_dyn(),
        1 => TriangleMarker::new(at, 7, color.filled()).into_dyn(),
        _ => Cross::new(at, 5, color.stroke_width(3)).into_dyn(),
    }
}

/// The legend: one row per series (line sample, marker, name), aligned with the chart's top.
fn draw_legend(area: &Area, series: &[Series], width: u32) -> Result<()> {
    let font = style::font(style::LABEL_SIZE);
    let row_h = 26;
    let top = 24;
    for (i, s) in series.iter().enumerate() {
        let color = style::series_color(i);
        let y = top + i as i32 * row_h;
        area.draw(&PathElement::new(
            vec![(4, y), (36, y)],
            color.stroke_width(2),
        ))
        .map_err(err)?;
        area.draw(&marker(i, (20, y), color)).map_err(err)?;
        let name = style::truncate(&font, &s.name, width.saturating_sub(56));
        style::draw_text(
            area,
            &name,
            (44, y),
            font.color(&style::TEXT),
            (HPos::Left, VPos::Center),
        )?;
    }
    Ok(())
}
