//! A matrix as coloured cells (viridis), with row and column labels, a colour bar, and the value
//! printed in each cell when the matrix is small enough to read.

use crate::render;
use crate::style::{self, err, Area};
use anyhow::{ensure, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// Values are printed in the cells when both dimensions are at most this.
pub const MAX_ANNOTATED: usize = 12;
const TITLE_H: u32 = 60;
const MARGIN: u32 = 16;
/// Band for a rotated or horizontal axis title.
const AXIS_BAND: u32 = 34;
const PAD: u32 = 8;
/// Space the cells may take at most.
const GRID_MAX_W: f64 = 760.0;
const GRID_MAX_H: f64 = 700.0;
/// The colour bar: gap from the grid, bar width, gap to its tick labels.
const BAR_GAP: u32 = 28;
const BAR_W: u32 = 22;
const BAR_TICK_GAP: u32 = 8;
const MIN_WIDTH: u32 = 560;
const GREY: RGBColor = RGBColor(215, 215, 215);
/// Longer row and column labels are cut with an ellipsis.
const MAX_LABEL_W: u32 = 180;

fn fit_labels(labels: &[String]) -> Vec<String> {
    let font = style::font(style::LABEL_SIZE);
    labels
        .iter()
        .map(|l| style::truncate(&font, l, MAX_LABEL_W))
        .collect()
}

/// Where everything of a heatmap goes, in pixels of the image. Tests use it to find cells.
#[derive(Clone, Debug)]
pub struct HeatmapLayout {
    pub width: u32,
    pub height: u32,
    pub rows: usize,
    pub cols: usize,
    /// Top-left corner of the grid of cells, and the size of one cell.
    pub grid_x: f64,
    pub grid_y: f64,
    pub cell: f64,
    /// Column labels drawn vertically (when horizontal ones would not fit).
    pub rotate_cols: bool,
    /// Every `n`-th row or column label is drawn.
    pub row_stride: usize,
    pub col_stride: usize,
    row_label_w: u32,
    col_label_h: u32,
    bar_label_w: u32,
    /// Colour scale.
    pub lo: f64,
    pub hi: f64,
}

impl HeatmapLayout {
    /// Pixel bounds `[x0, x1) × [y0, y1)` of cell (row r, column c).
    pub fn cell_rect(&self, r: usize, c: usize) -> (i32, i32, i32, i32) {
        let x = |c: usize| (self.grid_x + c as f64 * self.cell).round() as i32;
        let y = |r: usize| (self.grid_y + r as f64 * self.cell).round() as i32;
        (x(c), y(r), x(c + 1), y(r + 1))
    }

    /// Pixel at the centre of cell (row r, column c).
    pub fn cell_center(&self, r: usize, c: usize) -> (u32, u32) {
        let (x0, y0, x1, y1) = self.cell_rect(r, c);
        (((x0 + x1) / 2) as u32, ((y0 + y1) / 2) as u32)
    }

    fn grid_right(&self) -> i32 {
        (self.grid_x + self.cols as f64 * self.cell).round() as i32
    }

    fn grid_bottom(&self) -> i32 {
        (self.grid_y + self.rows as f64 * self.cell).round() as i32
    }

    /// Values are printed in the cells.
    pub fn annotated(&self) -> bool {
        self.rows <= MAX_ANNOTATED && self.cols <= MAX_ANNOTATED
    }
}

fn check(matrix: &[Vec<f64>], row_labels: &[String], col_labels: &[String]) -> Result<()> {
    ensure!(!matrix.is_empty(), "heatmap: the matrix has no rows");
    let cols = matrix[0].len();
    ensure!(cols > 0, "heatmap: the matrix has no columns");
    for (r, row) in matrix.iter().enumerate() {
        ensure!(
            row.len() == cols,
            "heatmap: row {r} has {} values, but row 0 has {cols}",
            row.len()
        );
    }
    ensure!(
        row_labels.len() == matrix.len(),
        "heatmap: {} row labels for {} rows",
        row_labels.len(),
        matrix.len()
    );
    ensure!(
        col_labels.len() == cols,
        "heatmap: {} column labels for {} columns",
        col_labels.len(),
        cols
    );
    Ok(())
}

/// The colour scale: [0, 1] when every value lies there (probabilities stay comparable between
/// plots), else the data's range.
fn scale(matrix: &[Vec<f64>]) -> (f64, f64) {
    match style::finite_bounds(matrix.iter().flatten().copied()) {
        None => (0.0, 1.0),
        Some((lo, hi)) if lo >= 0.0 && hi <= 1.0 => (0.0, 1.0),
        Some((lo, hi)) if hi > lo => (lo, hi),
        Some((lo, hi)) => style::padded(lo, hi, 0.0),
    }
}

fn bar_ticks(lo: f64, hi: f64) -> (f64, Vec<f64>) {
    let step = style::nice_step(lo, hi, 5);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (step, (first..=last).map(|i| i as f64 * step).collect())
}

/// Compute the layout of a heatmap of `matrix` with these labels (checked as [`heatmap`] does).
pub fn heatmap_layout(
    matrix: &[Vec<f64>],
    row_labels: &[String],
    col_labels: &[String],
) -> Result<HeatmapLayout> {
    check(matrix, row_labels, col_labels)?;
    crate::font::fonts()?;
    let (row_labels, col_labels) = (&fit_labels(row_labels), &fit_labels(col_labels));
    let rows = matrix.len();
    let cols = matrix[0].len();
    let font = style::font(style::LABEL_SIZE);
    let width_of = |s: &String| style::text_size(&font, s).0;
    let text_h = style::text_size(&font, "0Ag").1.max(1) as f64;
    let (lo, hi) = scale(matrix);
    let (step, ticks) = bar_ticks(lo, hi);
    let bar_label_w = ticks
        .iter()
        .map(|&t| style::text_size(&font, &style::tick_label(t, step)).0)
        .max()
        .unwrap_or(0);
    let right = BAR_GAP + BAR_W + BAR_TICK_GAP + bar_label_w + MARGIN;

    // Rows: square cells as large as the space allows; labels thinned out when cells are small.
    let max_col_w = col_labels.iter().map(width_of).max().unwrap_or(0) as f64;
    let cell_for = |col_label_h: u32| {
        let h = GRID_MAX_H - col_label_h as f64;
        (GRID_MAX_W / cols as f64).min(h / rows as f64)
    };
    let horizontal_h = text_h as u32 + PAD;
    let mut cell = cell_for(horizontal_h);
    let stride_h = style::label_stride(max_col_w + 8.0, cell);
    let stride_v = style::label_stride(text_h + 2.0, cell);
    let rotate_cols = stride_v < stride_h;
    let col_label_h = if rotate_cols {
        let shown = col_labels.iter().step_by(stride_v).map(width_of).max();
        let h = shown.unwrap_or(0) + PAD;
        cell = cell_for(h);
        h
    } else {
        horizontal_h
    };
    let col_stride = if rotate_cols {
        style::label_stride(text_h + 2.0, cell)
    } else {
        style::label_stride(max_col_w + 8.0, cell)
    };
    let row_stride = style::label_stride(text_h + 2.0, cell);
    let row_label_w = row_labels
        .iter()
        .step_by(row_stride)
        .map(width_of)
        .max()
        .unwrap_or(0)
        + PAD;

    let grid_x = (MARGIN + AXIS_BAND + row_label_w) as f64;
    let grid_y = TITLE_H as f64;
    let grid_w = (cols as f64 * cell).round() as u32;
    let grid_h = (rows as f64 * cell).round() as u32;
    let width = (grid_x as u32 + grid_w + right).max(MIN_WIDTH);
    let height = TITLE_H + grid_h + PAD + col_label_h + AXIS_BAND + MARGIN;
    Ok(HeatmapLayout {
        width,
        height,
        rows,
        cols,
        grid_x,
        grid_y,
        cell,
        rotate_cols,
        row_stride,
        col_stride,
        row_label_w,
        col_label_h,
        bar_label_w,
        lo,
        hi,
    })
}

/// A heatmap of `matrix` (rows × columns): row `r` is drawn r-th from the top and labelled
/// `row_labels[r]`, column `c` is labelled `col_labels[c]`; `x_label` names the columns and
/// `y_label` the rows (labels wider than 180 pixels are cut). Colours follow viridis over [0, 1] when all values are in [0, 1], else over
/// the data's range, with a colour bar; non-finite values are grey. With at most
/// [`MAX_ANNOTATED`] rows and columns each cell shows its value with 2 decimals (an exact
/// zero as "0"). Errors (and
/// writes nothing) on an empty matrix, ragged rows, or label counts that do not match.
pub fn heatmap(
    path: &Path,
    title: &str,
    matrix: &[Vec<f64>],
    row_labels: &[String],
    col_labels: &[String],
    x_label: &str,
    y_label: &str,
) -> Result<()> {
    let layout = heatmap_layout(matrix, row_labels, col_labels)?;
    let (row_labels, col_labels) = (&fit_labels(row_labels), &fit_labels(col_labels));
    render(path, (layout.width, layout.height), |root| {
        style::title_band(root, title, TITLE_H)?;
        draw_cells(root, &layout, matrix)?;
        draw_labels(root, &layout, row_labels, col_labels, x_label, y_label)?;
        draw_bar(root, &layout)
    })
}

fn color_of(layout: &HeatmapLayout, v: f64) -> RGBColor {
    if v.is_finite() {
        style::viridis((v - layout.lo) / (layout.hi - layout.lo))
    } else {
        GREY
    }
}

fn draw_cells(root: &Area, layout: &HeatmapLayout, matrix: &[Vec<f64>]) -> Result<()> {
    let value_size = (layout.cell * 0.3).min(layout.cell / 3.0).min(17.0);
    let annotate = layout.annotated() && value_size >= 8.0;
    for (r, row) in matrix.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            let (x0, y0, x1, y1) = layout.cell_rect(r, c);
            let color = color_of(layout, v);
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.filled()))
                .map_err(err)?;
            if annotate && v.is_finite() {
                let ink = if style::luminance(color) > 0.5 {
                    BLACK
                } else {
                    WHITE
                };
                let (cx, cy) = layout.cell_center(r, c);
                // Exact zeros (e.g. the zero rates of a sparse noise matrix) read as "0".
                let text = if v == 0.0 {
                    "0".to_string()
                } else {
                    format!("{v:.2}")
                };
                style::draw_text(
                    root,
                    &text,
                    (cx as i32, cy as i32),
                    style::font(value_size).color(&ink),
                    (HPos::Center, VPos::Center),
                )?;
            }
        }
    }
    // Thin white lines between cells when they are large enough to show them.
    if layout.cell >= 12.0 {
        let (gx0, gy0) = (layout.grid_x.round() as i32, layout.grid_y.round() as i32);
        let (gx1, gy1) = (layout.grid_right(), layout.grid_bottom());
        for c in 1..layout.cols {
            let x = layout.cell_rect(0, c).0;
            root.draw(&PathElement::new(vec![(x, gy0), (x, gy1)], WHITE))
                .map_err(err)?;
        }
        for r in 1..layout.rows {
            let y = layout.cell_rect(r, 0).1;
            root.draw(&PathElement::new(vec![(gx0, y), (gx1, y)], WHITE))
                .map_err(err)?;
        }
    }
    Ok(())
}

fn draw_labels(
    root: &Area,
    layout: &HeatmapLayout,
    row_labels: &[String],
    col_labels: &[String],
    x_label: &str,
    y_label: &str,
) -> Result<()> {
    let font = style::font(style::LABEL_SIZE);
    let label_x = layout.grid_x as i32 - PAD as i32;
    for r in (0..layout.rows).step_by(layout.row_stride) {
        let (_, cy) = layout.cell_center(r, 0);
        style::draw_text(
            root,
            &row_labels[r],
            (label_x, cy as i32),
            font.color(&style::TEXT),
            (HPos::Right, VPos::Center),
        )?;
    }
    let label_y = layout.grid_bottom() + PAD as i32;
    for c in (0..layout.cols).step_by(layout.col_stride) {
        let (cx, _) = layout.cell_center(0, c);
        if layout.rotate_cols {
            // Read bottom to top, ending just under the grid.
            let style = font.color(&style::TEXT).transform(FontTransform::Rotate270);
            style::draw_text(
                root,
                &col_labels[c],
                (cx as i32, label_y),
                style,
                (HPos::Right, VPos::Center),
            )?;
        } else {
            style::draw_text(
                root,
                &col_labels[c],
                (cx as i32, label_y),
                font.color(&style::TEXT),
                (HPos::Center, VPos::Top),
            )?;
        }
    }
    let axis = style::font(style::AXIS_SIZE);
    let grid_mid_x = ((layout.grid_x as i32) + layout.grid_right()) / 2;
    let x_label_y = label_y + layout.col_label_h as i32 + AXIS_BAND as i32 / 2 - PAD as i32 / 2;
    style::draw_text(
        root,
        x_label,
        (grid_mid_x, x_label_y),
        axis.color(&style::TEXT),
        (HPos::Center, VPos::Center),
    )?;
    let grid_mid_y = ((layout.grid_y as i32) + layout.grid_bottom()) / 2;
    let y_label_x = (MARGIN + AXIS_BAND / 2) as i32;
    style::draw_text(
        root,
        y_label,
        (y_label_x, grid_mid_y),
        axis.color(&style::TEXT).transform(FontTransform::Rotate270),
        (HPos::Center, VPos::Center),
    )?;
    let _ = layout.row_label_w;
    Ok(())
}

/// The colour bar beside the grid, as tall as the grid, with tick labels on its right.
fn draw_bar(root: &Area, layout: &HeatmapLayout) -> Result<()> {
    let x0 = layout.grid_right() + BAR_GAP as i32;
    let x1 = x0 + BAR_W as i32;
    let y0 = layout.grid_y.round() as i32;
    let y1 = layout.grid_bottom().max(y0 + 60);
    let span = (y1 - y0).max(1) as f64;
    for y in y0..y1 {
        let t = 1.0 - (y - y0) as f64 / span;
        let v = layout.lo + t * (layout.hi - layout.lo);
        root.draw(&Rectangle::new(
            [(x0, y), (x1, y + 1)],
            color_of(layout, v).filled(),
        ))
        .map_err(err)?;
    }
    root.draw(&Rectangle::new([(x0, y0), (x1, y1)], style::MUTED))
        .map_err(err)?;
    let font = style::font(style::LABEL_SIZE);
    let (step, ticks) = bar_ticks(layout.lo, layout.hi);
    for t in ticks {
        let y = y1 - ((t - layout.lo) / (layout.hi - layout.lo) * span).round() as i32;
        root.draw(&PathElement::new(vec![(x1, y), (x1 + 4, y)], style::MUTED))
            .map_err(err)?;
        style::draw_text(
            root,
            &style::tick_label(t, step),
            (x1 + BAR_TICK_GAP as i32, y),
            font.color(&style::TEXT),
            (HPos::Left, VPos::Center),
        )?;
    }
    let _ = layout.bar_label_w;
    Ok(())
}
