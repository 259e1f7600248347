//! The aggregation behind `report`: a sweep's runs laid out as rows × columns by their grid
//! values, every key in neither (the seeds, by default) pooled into mean ± std and a count.
//! Pure functions over strings and numbers; [`crate::report`] reads the files and prints.

use anyhow::{ensure, Result};

/// Mean, sample standard deviation (n − 1; 0 for a single value) and count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub std: f64,
}

/// None for no values.
pub fn stats(values: &[f64]) -> Option<Stats> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = match n {
        1 => 0.0,
        _ => values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64,
    };
    Some(Stats {
        n,
        mean,
        std: var.sqrt(),
    })
}

/// Which grid keys label the rows and the columns; the others are pooled.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
}

/// Keys pooled into a cell unless a layout names them: the seeds.
pub fn pooled_by_default(key: &str) -> bool {
    key == "seed" || key == "noise_seed"
}

/// Rows by noise kind and rate, seeds pooled, every other key a column.
pub fn default_layout(keys: &[String]) -> Layout {
    let is_row = |k: &str| k == "kind" || k == "noise";
    Layout {
        rows: keys.iter().filter(|k| is_row(k)).cloned().collect(),
        columns: keys
            .iter()
            .filter(|k| !is_row(k) && !pooled_by_default(k))
            .cloned()
            .collect(),
    }
}

/// Checks that `layout` names only grid keys, each once.
pub fn check_layout(keys: &[String], layout: &Layout) -> Result<()> {
    let named: Vec<&String> = layout.rows.iter().chain(&layout.columns).collect();
    for k in &named {
        ensure!(
            keys.contains(k),
            "`{k}` is not a key of the sweep's grid (its keys: {})",
            keys.join(", ")
        );
    }
    for (i, k) in named.iter().enumerate() {
        ensure!(
            !named[..i].contains(k),
            "`{k}` is named twice in --rows/--columns"
        );
    }
    Ok(())
}

/// One run: its value of each grid key (in the keys' order) and its metric, if it has one.
pub struct Point {
    pub values: Vec<String>,
    pub metric: Option<f64>,
}

/// The table: labels of each row and column (values of the layout's keys, in order of first
/// appearance) and one cell per row and column.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub layout: Layout,
    pub rows: Vec<Vec<String>>,
    pub columns: Vec<Vec<String>>,
    /// `cells[row][column]`: None where no run of that cell has the metric.
    pub cells: Vec<Vec<Option<Stats>>>,
}

/// Groups `points` by `layout` (keys in `keys`' order) and pools each cell.
pub fn summarize(keys: &[String], points: &[Point], layout: &Layout) -> Summary {
    let index = |k: &String| keys.iter().position(|x| x == k).unwrap_or(0);
    let pick = |p: &Point, ks: &[String]| -> Vec<String> {
        ks.iter().map(|k| p.values[index(k)].clone()).collect()
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut columns: Vec<Vec<String>> = Vec::new();
    for p in points {
        push_new(&mut rows, pick(p, &layout.rows));
        push_new(&mut columns, pick(p, &layout.columns));
    }
    let mut values = vec![vec![Vec::new(); columns.len()]; rows.len()];
    for p in points {
        let r = rows.iter().position(|x| *x == pick(p, &layout.rows));
        let c = columns.iter().position(|x| *x == pick(p, &layout.columns));
        if let (Some(r), Some(c), Some(m)) = (r, c, p.metric) {
            values[r][c].push(m);
        }
    }
    let cells = values
        .iter()
        .map(|row| row.iter().map(|v| stats(v)).collect())
        .collect();
    Summary {
        layout: layout.clone(),
        rows,
        columns,
        cells,
    }
}

fn push_new(list: &mut Vec<Vec<String>>, item: Vec<String>) {
    if !list.contains(&item) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<String> {
        ["loss", "noise", "seed"].map(String::from).to_vec()
    }

    fn point(loss: &str, noise: &str, seed: &str, m: Option<f64>) -> Point {
        Point {
            values: vec![loss.into(), noise.into(), seed.into()],
            metric: m,
        }
    }

    #[test]
    fn statistics_by_hand() {
        // 0.5, 0.7: mean 0.6, sample variance ((0.1)² + (0.1)²) / 1 = 0.02.
        let s = stats(&[0.5, 0.7]).unwrap();
        assert!((s.mean - 0.6).abs() < 1e-12 && (s.std - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(stats(&[0.3]).unwrap().std, 0.0);
        assert!(stats(&[]).is_none());
    }

    #[test]
    fn seeds_pool_into_cells_of_noise_by_loss() {
        let layout = default_layout(&keys());
        assert_eq!(layout.rows, vec!["noise"]);
        assert_eq!(layout.columns, vec!["loss"]);
        let points = [
            point("ce", "0.4", "0", Some(0.5)),
            point("ce", "0.4", "1", Some(0.7)),
            point("gce", "0.4", "0", Some(0.6)),
            point("gce", "0.4", "1", None),
            point("ce", "0.6", "0", None),
        ];
        let s = summarize(&keys(), &points, &layout);
        assert_eq!(s.rows, vec![vec!["0.4"], vec!["0.6"]]);
        assert_eq!(s.columns, vec![vec!["ce"], vec!["gce"]]);
        assert_eq!(s.cells[0][0].unwrap().n, 2);
        assert!((s.cells[0][0].unwrap().mean - 0.6).abs() < 1e-12);
        assert_eq!(s.cells[0][1].unwrap().n, 1);
        assert_eq!(s.cells[1], vec![None, None]);
    }

    #[test]
    fn layouts_name_grid_keys_once() {
        let bad = Layout {
            rows: vec!["noise".into()],
            columns: vec!["lr".into()],
        };
        let e = check_layout(&keys(), &bad).unwrap_err().to_string();
        assert!(
            e.contains("`lr` is not a key") && e.contains("loss, noise, seed"),
            "{e}"
        );
        let twice = Layout {
            rows: vec!["noise".into()],
            columns: vec!["noise".into()],
        };
        assert!(check_layout(&keys(), &twice).is_err());
    }
}
