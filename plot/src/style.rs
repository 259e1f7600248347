//! Shared look: colours, text, tick labels and axis ranges.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub type Area<'a> = DrawingArea<crate::canvas::Canvas<'a>, Shift>;

pub const FONT: &str = "sans-serif";
/// Text sizes in pixels.
pub const TITLE_SIZE: f64 = 22.0;
pub const AXIS_SIZE: f64 = 17.0;
pub const LABEL_SIZE: f64 = 15.0;

pub const GRID: RGBColor = RGBColor(225, 225, 225);
pub const TEXT: RGBColor = RGBColor(20, 20, 20);
pub const MUTED: RGBColor = RGBColor(110, 110, 110);

pub fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the plot failed: {e}")
}

/// matplotlib's tab10: distinct and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Viridis at nine evenly spaced stops: perceptually uniform, dark (low) to yellow (high).
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// The colour of `t` in [0, 1] (clamped) on the viridis scale.
pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Relative luminance in [0, 1], to pick black or white text on a coloured cell.
pub fn luminance(c: RGBColor) -> f64 {
    (0.2126 * c.0 as f64 + 0.7152 * c.1 as f64 + 0.0722 * c.2 as f64) / 255.0
}

pub fn font(size: f64) -> FontDesc<'static> {
    (FONT, size).into_font()
}

pub fn bold(size: f64) -> FontDesc<'static> {
    (FONT, size, FontStyle::Bold).into_font()
}

/// Width and height of `text` in pixels.
pub fn text_size(font: &FontDesc, text: &str) -> (u32, u32) {
    match crate::font::fonts() {
        Ok(fonts) => {
            let bold = matches!(font.get_style(), FontStyle::Bold);
            crate::canvas::text_box(fonts, bold, font.get_size(), text)
        }
        Err(_) => (0, 0),
    }
}

/// The largest size from `size` down to 60% of it at which `text` fits in `width`.
pub fn fit_size(text: &str, width: u32, size: f64, bold_face: bool) -> f64 {
    let mut s = size;
    while s > size * 0.6 {
        let f = if bold_face { bold(s) } else { font(s) };
        if text_size(&f, text).0 <= width {
            break;
        }
        s -= 1.0;
    }
    s
}

/// `text` cut with an ellipsis so that it fits in `width` at `font`.
pub fn truncate(font: &FontDesc, text: &str, width: u32) -> String {
    if text_size(font, text).0 <= width {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    for n in (0..chars.len()).rev() {
        let s: String = chars[..n].iter().collect::<String>() + "…";
        if text_size(font, &s).0 <= width {
            return s;
        }
    }
    String::new()
}

/// Draw `text` anchored at `pos` (pixels in `area`).
pub fn draw_text(
    area: &Area,
    text: &str,
    pos: (i32, i32),
    style: TextStyle,
    anchor: (HPos, VPos),
) -> Result<()> {
    let style = style.pos(Pos::new(anchor.0, anchor.1));
    area.draw(&Text::new(text.to_string(), pos, style))
        .map_err(err)
}

/// Draw a bold title centred in a band of `height` pixels at the top of `area`; returns the rest.
pub fn title_band<'a>(area: &Area<'a>, title: &str, height: u32) -> Result<Area<'a>> {
    let (band, rest) = area.split_vertically(height);
    let width = band.dim_in_pixel().0.saturating_sub(24);
    let size = fit_size(title, width, TITLE_SIZE, true);
    let text = truncate(&bold(size), title, width);
    let (w, h) = band.dim_in_pixel();
    draw_text(
        &band,
        &text,
        (w as i32 / 2, h as i32 / 2),
        bold(size).color(&TEXT),
        (HPos::Center, VPos::Center),
    )?;
    Ok(rest)
}

/// `[lo, hi]` widened by `frac` of its span on each side; a single value gets a span around it.
pub fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * frac;
        (lo - pad, hi + pad)
    } else {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - pad, hi + pad)
    }
}

/// A y range from the data `[lo, hi]` with a margin that does not cross the natural bounds the
/// data itself suggests: 0 for non-negative data, 1 for fractions, 100 for percentages.
pub fn value_range(lo: f64, hi: f64) -> (f64, f64) {
    let (mut a, mut b) = padded(lo, hi, 0.08);
    if lo >= 0.0 && a < 0.0 {
        a = 0.0;
    }
    if lo >= 0.0 && hi <= 1.0 && b > 1.0 {
        b = 1.0;
    } else if lo >= 0.0 && hi > 1.0 && hi <= 100.0 && b > 100.0 {
        b = 100.0;
    }
    if b <= a {
        b = a + 1.0;
    }
    (a, b)
}

/// Min and max of the finite values, if any.
pub fn finite_bounds(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A tick label for `v` when ticks are about `step` apart: as few decimals as the step needs,
/// scientific notation for huge values or tiny steps.
pub fn tick_label(v: f64, step: f64) -> String {
    if v == 0.0 || v.abs() < step.abs() * 1e-6 {
        return "0".into();
    }
    // Ticks of a tiny step (e.g. learning rates) or a huge value all read in scientific notation.
    if v.abs() >= 1e6 || step.abs() < 1e-3 {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let decimals = if step > 0.0 && step.is_finite() {
        (-(step.log10().floor())).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

/// Tick spacing of about `n` ticks over `[lo, hi]`, rounded to 1, 2 or 5 times a power of ten.
pub fn nice_step(lo: f64, hi: f64, n: usize) -> f64 {
    let raw = (hi - lo).abs() / n.max(1) as f64;
    if raw.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * p
}

/// Stride through labels so that each shown one has `extent` pixels in cells of `cell` pixels:
/// 1, 2, 5, 10, 20, 50, ...
pub fn label_stride(extent: f64, cell: f64) -> usize {
    let need = (extent / cell.max(1e-9)).ceil().max(1.0) as usize;
    let mut base = 1;
    loop {
        for m in [1, 2, 5] {
            if base * m >= need {
                return base * m;
            }
        }
        base *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_respect_natural_bounds() {
        let (a, b) = value_range(0.5, 0.95);
        assert!((a - 0.464).abs() < 1e-12 && (b - 0.986).abs() < 1e-12);
        assert_eq!(value_range(0.5, 0.99).1, 1.0);
        let (a, b) = value_range(0.0, 0.9);
        assert_eq!(a, 0.0);
        assert!(b > 0.9 && b <= 1.0);
        let (a, b) = value_range(60.0, 99.0);
        assert!(a < 60.0 && b == 100.0);
        let (a, b) = value_range(0.3, 0.3);
        assert!(a < 0.3 && b > 0.3);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(12000.0, 2000.0), "12000");
        assert_eq!(tick_label(0.0001, 0.00005), "1e-4");
        assert_eq!(tick_label(2.5e6, 5e5), "2.5e6");
        assert_eq!(label_stride(18.0, 6.5), 5);
        assert_eq!(label_stride(10.0, 60.0), 1);
    }
}
