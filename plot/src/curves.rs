//! A grid of small line charts sharing the x axis, each with its own y range.

use crate::style::{self, err, Area};
use crate::{render, Panel};
use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

const PANEL_W: u32 = 620;
const PANEL_H: u32 = 320;
const TITLE_H: u32 = 56;
const LEGEND_H: u32 = 24;

/// Columns of the grid for `n` panels.
fn grid_columns(n: usize) -> usize {
    if n <= 1 {
        1
    } else {
        2
    }
}

/// Size of the image of [`curves`] with `n` panels.
pub fn curves_size(n: usize) -> (u32, u32) {
    let cols = grid_columns(n);
    let rows = n.div_ceil(cols);
    (cols as u32 * PANEL_W, TITLE_H + rows as u32 * PANEL_H)
}

/// Panels in a grid (two columns when there is more than one), all over the same x range (that of
/// every finite point) named `x_label`, each with its own y range and its `y_label` as heading
/// (no y-axis title, to leave the room to the data); a legend is shown
/// in panels with more than one series. Non-finite points are skipped; a panel without any finite
/// point says "no data". Errors (and writes nothing) when there are no panels.
pub fn curves(path: &Path, title: &str, panels: &[Panel], x_label: &str) -> Result<()> {
    ensure!(!panels.is_empty(), "curves: no panels given");
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all_x = panels
        .iter()
        .flat_map(|p| p.series.iter())
        .flat_map(|s| s.points.iter().filter(finite).map(|p| p.0));
    let x_range = match style::finite_bounds(all_x) {
        Some((lo, hi)) if hi > lo => (lo, hi),
        Some((lo, hi)) => style::padded(lo, hi, 0.0),
        None => (0.0, 1.0),
    };
    let cols = grid_columns(panels.len());
    let rows = panels.len().div_ceil(cols);
    render(path, curves_size(panels.len()), |root| {
        let rest = style::title_band(root, title, TITLE_H)?;
        let cells = rest.split_evenly((rows, cols));
        for (panel, area) in panels.iter().zip(cells.iter()) {
            draw_panel(area, panel, x_range, x_label)?;
        }
        Ok(())
    })
}

fn draw_panel(area: &Area, panel: &Panel, x_range: (f64, f64), x_label: &str) -> Result<()> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let (w, _) = area.dim_in_pixel();
    let heading = style::bold(style::AXIS_SIZE);
    let heading_text = style::truncate(&heading, &panel.y_label, w.saturating_sub(40));
    style::draw_text(
        area,
        &heading_text,
        (w as i32 / 2, 16),
        heading.color(&style::TEXT),
        (HPos::Center, VPos::Center),
    )?;
    let (_, body) = area.split_vertically(32);
    let ys = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(finite).map(|p| p.1));
    let Some((lo, hi)) = style::finite_bounds(ys) else {
        let (bw, bh) = body.dim_in_pixel();
        body.draw(&Rectangle::new(
            [(80, 4), (bw as i32 - 32, bh as i32 - 56)],
            style::GRID,
        ))
        .map_err(err)?;
        return style::draw_text(
            &body,
            "no data",
            (bw as i32 / 2 + 24, bh as i32 / 2 - 26),
            style::font(style::AXIS_SIZE).color(&style::MUTED),
            (HPos::Center, VPos::Center),
        );
    };
    let body = if panel.series.len() > 1 {
        draw_legend(&body, panel)?;
        body.split_vertically(LEGEND_H).1
    } else {
        body
    };
    let y_range = style::padded(lo, hi, 0.06);
    let mut ctx = ChartBuilder::on(&body)
        .margin_left(8)
        .margin_right(32)
        .margin_bottom(6)
        .x_label_area_size(50)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.0..x_range.1, y_range.0..y_range.1)
        .map_err(err)?;
    // Decimals for a step finer than plotters' own ticks (it may place twice as many as asked
    // for rounding): "21.5, 22.0" rather than "22, 22".
    let x_step = style::nice_step(x_range.0, x_range.1, 2 * 7);
    let y_step = style::nice_step(y_range.0, y_range.1, 2 * 6);
    ctx.configure_mesh()
        .x_desc(x_label)
        .x_labels(7)
        .y_labels(6)
        .x_label_formatter(&|v| style::tick_label(*v, x_step))
        .y_label_formatter(&|v| style::tick_label(*v, y_step))
        .label_style(style::font(14.0).color(&style::TEXT))
        .axis_desc_style(style::font(style::LABEL_SIZE).color(&style::TEXT))
        .bold_line_style(style::GRID)
        .light_line_style(WHITE)
        .axis_style(style::MUTED)
        .draw()
        .map_err(err)?;
    for (i, s) in panel.series.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = s.points.iter().filter(finite).copied().collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let color = style::series_color(i);
        if pts.len() == 1 {
            ctx.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        } else {
            ctx.draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// Series names in a row under the heading, each after a sample of its line.
fn draw_legend(area: &Area, panel: &Panel) -> Result<()> {
    let font = style::font(14.0);
    let (w, _) = area.dim_in_pixel();
    let mut x = 80;
    let y = LEGEND_H as i32 / 2;
    for (i, s) in panel.series.iter().enumerate() {
        let room = (w as i32 - x - 30).max(0) as u32;
        if room < 40 {
            break;
        }
        let name = style::truncate(&font, &s.name, room);
        let color = style::series_color(i);
        area.draw(&PathElement::new(
            vec![(x, y), (x + 22, y)],
            color.stroke_width(3),
        ))
        .map_err(err)?;
        style::draw_text(
            area,
            &name,
            (x + 28, y),
            font.color(&style::TEXT),
            (HPos::Left, VPos::Center),
        )?;
        x += 28 + style::text_size(&font, &name).0 as i32 + 18;
    }
    Ok(())
}
