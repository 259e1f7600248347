//! What a set of noisy labels realized: the empirical noise matrix and flip rate, and a readable table.

use super::matrix::Matrix;
use std::fmt::Write;

/// `m[s][y]` = fraction of true-class-y samples labelled s (columns sum to 1, like cleanlab's).
pub fn realized_matrix(clean: &[usize], noisy: &[usize], k: usize) -> Matrix {
    let mut counts = vec![vec![0usize; k]; k];
    for (&y, &s) in clean.iter().zip(noisy) {
        counts[s][y] += 1;
    }
    let col_totals: Vec<usize> = (0..k).map(|y| (0..k).map(|s| counts[s][y]).sum()).collect();
    (0..k)
        .map(|s| {
            (0..k)
                .map(|y| {
                    if col_totals[y] == 0 {
                        0.0
                    } else {
                        counts[s][y] as f64 / col_totals[y] as f64
                    }
                })
                .collect()
        })
        .collect()
}

pub fn flip_rate(clean: &[usize], noisy: &[usize]) -> f64 {
    let flipped = clean.iter().zip(noisy).filter(|(a, b)| a != b).count();
    flipped as f64 / clean.len().max(1) as f64
}

/// The matrix as a table: rows = noisy label s, columns = true label y. Large K is cut to the
/// first 12 classes, with a note.
pub fn matrix_table(m: &Matrix, title: &str) -> String {
    const SHOWN: usize = 12;
    let k = m.len();
    let shown = k.min(SHOWN);
    let mut out = format!("{title} (rows: noisy label, columns: true label)\n    ");
    (0..shown).for_each(|y| write!(out, "{y:>6}").unwrap());
    out.push('\n');
    for (s, row) in m.iter().enumerate().take(shown) {
        write!(out, "{s:>3} ").unwrap();
        row.iter()
            .take(shown)
            .for_each(|v| write!(out, "{v:>6.3}").unwrap());
        out.push('\n');
    }
    if shown < k {
        writeln!(out, "    ({shown} of {k} classes shown)").unwrap();
    }
    out
}
