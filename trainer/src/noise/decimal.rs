//! Exact decimals for noise levels and sparsities, and the grid syntax of the CLI.
//!
//! `0.6` is kept as 6/10, so `trace = K·(1 − noise)` is computed in integers and never hits the
//! float trap of the original scripts (`int(10 * (1 - 0.6000000000000001)) == 3`).

use anyhow::{bail, ensure, Context, Result};
use std::fmt;

/// `units / 10^scale`, non-negative.
#[derive(Clone, Copy, Debug)]
pub struct Decimal {
    units: u64,
    scale: u32,
}

const MAX_SCALE: u32 = 9;

impl Decimal {
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    /// Parse a plain non-negative decimal such as `0`, `0.4`, `.25` or `1.0`.
    pub fn parse(text: &str) -> Result<Decimal> {
        let t = text.trim();
        let (int_part, frac_part) = t.split_once('.').unwrap_or((t, ""));
        let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        ensure!(
            !(int_part.is_empty() && frac_part.is_empty())
                && digits_ok(int_part)
                && digits_ok(frac_part),
            "'{text}' is not a plain decimal number (expected something like 0.4)"
        );
        ensure!(
            frac_part.len() <= MAX_SCALE as usize,
            "'{text}' has more than {MAX_SCALE} decimal places"
        );
        let joined = format!("{int_part}{frac_part}");
        let units: u64 = if joined.is_empty() {
            0
        } else {
            joined
                .parse()
                .with_context(|| format!("'{text}' is too large"))?
        };
        Ok(Decimal {
            units,
            scale: frac_part.len() as u32,
        }
        .normalized())
    }

    fn normalized(mut self) -> Decimal {
        while self.scale > 0 && self.units.is_multiple_of(10) {
            self.units /= 10;
            self.scale -= 1;
        }
        self
    }

    fn at_scale(self, scale: u32) -> u64 {
        self.units * 10u64.pow(scale - self.scale)
    }

    /// Numerator over `10^scale` for a common scale of two decimals.
    fn common(a: Decimal, b: Decimal) -> (u64, u64, u32) {
        let s = a.scale.max(b.scale);
        (a.at_scale(s), b.at_scale(s), s)
    }

    pub fn to_f64(self) -> f64 {
        self.units as f64 / 10f64.powi(self.scale as i32)
    }

    pub fn is_zero(self) -> bool {
        self.units == 0
    }

    /// `self <= 1`.
    pub fn at_most_one(self) -> bool {
        self.units <= 10u64.pow(self.scale)
    }

    /// `self < 1`.
    pub fn below_one(self) -> bool {
        self.units < 10u64.pow(self.scale)
    }

    /// `k · (1 − self)` exactly, as a float (exact whenever the result is representable).
    pub fn complement_times(self, k: usize) -> f64 {
        let den = 10u64.pow(self.scale);
        let num = (den - self.units.min(den)) as u128 * k as u128;
        num as f64 / den as f64
    }

    /// `floor(self · n)` computed exactly.
    pub fn floor_times(self, n: usize) -> usize {
        (self.units as u128 * n as u128 / 10u128.pow(self.scale)) as usize
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        let (a, b, _) = Decimal::common(*self, *other);
        a == b
    }
}

impl fmt::Display for Decimal {
    /// Like Python's `str(float)` for these values: `0.0`, `0.4`, `0.05`, `1.0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let den = 10u64.pow(self.scale);
        let (int, frac) = (self.units / den, self.units % den);
        if self.scale == 0 {
            write!(f, "{int}.0")
        } else {
            write!(f, "{int}.{frac:0width$}", width = self.scale as usize)
        }
    }
}

impl serde::Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_f64())
    }
}

/// Expand a list such as `0,0.1,...,0.7` (or `0.2`, or `0,0.4,0.6`). An ellipsis continues the
/// step of the two values before it up to the value after it, exactly.
pub fn parse_decimal_list(text: &str) -> Result<Vec<Decimal>> {
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    let mut out: Vec<Decimal> = Vec::new();
    let mut i = 0;
    while i < items.len() {
        if items[i] == "..." {
            // The value after the ellipsis is pushed by the next iteration.
            out.extend(expand_ellipsis(&out, items.get(i + 1), text)?);
        } else {
            out.push(Decimal::parse(items[i]).with_context(|| format!("in the list '{text}'"))?);
        }
        i += 1;
    }
    ensure!(!out.is_empty(), "the list '{text}' has no values");
    Ok(out)
}

fn expand_ellipsis(before: &[Decimal], after: Option<&&str>, text: &str) -> Result<Vec<Decimal>> {
    let usage = || {
        format!(
            "'...' in '{text}' needs two values before it and one after it, as in 0,0.1,...,0.7"
        )
    };
    let (Some(a), Some(&b)) = (
        before.len().checked_sub(2).map(|i| before[i]),
        before.last(),
    ) else {
        bail!(usage());
    };
    let last = Decimal::parse(after.with_context(usage)?)?;
    let scale = a.scale.max(b.scale).max(last.scale);
    let (a, b, end) = (a.at_scale(scale), b.at_scale(scale), last.at_scale(scale));
    ensure!(b > a, "'...' in '{text}' needs increasing values before it");
    let step = b - a;
    ensure!(
        (end - b.min(end)).is_multiple_of(step) && end > b,
        "'{text}': {last} is not reached from {} in steps of {}",
        Decimal { units: b, scale }.normalized(),
        Decimal { units: step, scale }.normalized()
    );
    // Values strictly between b and the end; the end itself is pushed by the caller.
    Ok((1..(end - b) / step)
        .map(|k| {
            Decimal {
                units: b + k * step,
                scale,
            }
            .normalized()
        })
        .collect())
}

/// Expand seeds such as `0-4`, `3`, or `0,2,5-7`.
pub fn parse_seed_list(text: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let parse = |s: &str| -> Result<u64> {
            s.trim().parse().with_context(|| {
                format!("'{s}' in the seed list '{text}' is not a non-negative integer")
            })
        };
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (parse(lo)?, parse(hi)?);
                ensure!(lo <= hi, "seed range '{part}' runs backwards");
                out.extend(lo..=hi);
            }
            None => out.push(parse(part)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[Decimal]) -> Vec<String> {
        v.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn grid_with_ellipsis_is_exact() {
        let v = parse_decimal_list("0,0.1,...,0.7").unwrap();
        assert_eq!(
            strs(&v),
            ["0.0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]
        );
        assert_eq!(v[6].complement_times(10), 4.0);
        assert_eq!(
            parse_decimal_list("0.05,0.1,...,0.2")
                .map(|v| strs(&v))
                .unwrap(),
            ["0.05", "0.1", "0.15", "0.2"]
        );
    }

    #[test]
    fn trace_avoids_the_float_trap() {
        // Python: int(10 * (1 - 0.6000000000000001)) == 3; here 0.6 stays 6/10.
        let six = parse_decimal_list("0,0.2,...,0.6").unwrap()[3];
        assert_eq!(six.complement_times(10), 4.0);
        assert_eq!(Decimal::parse("0.6").unwrap().complement_times(100), 40.0);
        assert_eq!(Decimal::parse("0.3").unwrap().floor_times(70), 21);
    }

    #[test]
    fn bad_lists_are_rejected() {
        for bad in [
            "",
            "a",
            "0.1,...",
            "...,0.3",
            "0,0.3,...,0.5",
            "0.2,0.1,...,0",
            "-0.1",
            "1e-3",
        ] {
            assert!(parse_decimal_list(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn seeds() {
        assert_eq!(parse_seed_list("0-4").unwrap(), [0, 1, 2, 3, 4]);
        assert_eq!(parse_seed_list("1,5-6").unwrap(), [1, 5, 6]);
        assert!(parse_seed_list("4-0").is_err());
        assert!(parse_seed_list("x").is_err());
    }
}
