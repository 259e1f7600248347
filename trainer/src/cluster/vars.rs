//! Reading and validating single variables. Launchers know a variable by several names across
//! versions (`SLURM_NTASKS`/`SLURM_NPROCS`), so lookups take aliases, preferred first, and errors
//! name the alias that was actually read.

use super::{digits, ClusterError};

type Result<T> = std::result::Result<T, ClusterError>;

const PORT_HINT: &str = "set MASTER_PORT to a free TCP port, or unset it";
const ADDR_HINT: &str = "set MASTER_ADDR to the rank-0 host, or unset it";

/// The variable source: `std::env` in production, a map in tests.
pub(super) struct Vars<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The first of `names` that is set, with the name it was found under.
    pub fn first(&self, names: &[&'static str]) -> Option<(&'static str, String)> {
        names.iter().find_map(|&n| self.get(n).map(|v| (n, v)))
    }

    /// The name under which [`first`](Self::first) finds a value, for messages; the preferred
    /// name when none is set.
    pub fn first_name(&self, names: &[&'static str]) -> &'static str {
        self.first(names).map_or(names[0], |(n, _)| n)
    }

    /// The error for "none of `names` is set", naming the preferred one and its aliases.
    pub fn missing(&self, names: &[&str], hint: &'static str) -> ClusterError {
        let var = match names {
            [only] => only.to_string(),
            [first, rest @ ..] => format!("{first} (or {})", rest.join(", ")),
            [] => unreachable!("a variable lookup names at least one variable"),
        };
        ClusterError::Missing { var, hint }
    }

    /// A non-negative integer if any of `names` is set; malformed values are errors, not `None`.
    pub fn opt_uint<T: std::str::FromStr>(
        &self,
        names: &[&'static str],
        hint: &'static str,
    ) -> Result<Option<T>> {
        self.parsed(names, "a non-negative integer", hint, |_| true)
    }

    /// A required non-negative integer.
    pub fn uint<T: std::str::FromStr>(
        &self,
        names: &[&'static str],
        hint: &'static str,
    ) -> Result<T> {
        self.opt_uint(names, hint)?
            .ok_or_else(|| self.missing(names, hint))
    }

    /// A positive count (world sizes and the like, where 0 would mean a job of nobody).
    pub fn opt_positive(
        &self,
        names: &[&'static str],
        hint: &'static str,
    ) -> Result<Option<usize>> {
        self.parsed(names, "a positive integer", hint, |n: &usize| *n > 0)
    }

    pub fn positive(&self, names: &[&'static str], hint: &'static str) -> Result<usize> {
        self.opt_positive(names, hint)?
            .ok_or_else(|| self.missing(names, hint))
    }

    /// `MASTER_PORT` when set; an explicit port always wins over a derived or default one.
    pub fn master_port(&self) -> Result<Option<u16>> {
        let expected = "a TCP port (an integer in 1..=65535)";
        self.parsed(&["MASTER_PORT"], expected, PORT_HINT, |p: &u16| *p > 0)
    }

    /// `MASTER_ADDR` when set; set but blank is an error rather than a silent default.
    pub fn master_addr(&self) -> Result<Option<String>> {
        match self.get("MASTER_ADDR") {
            Some(a) if a.is_empty() || a.contains(char::is_whitespace) => Err(invalid(
                "MASTER_ADDR",
                a,
                "a host name or IP address",
                ADDR_HINT,
            )),
            addr => Ok(addr),
        }
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        names: &[&'static str],
        expected: &'static str,
        hint: &'static str,
        ok: impl Fn(&T) -> bool,
    ) -> Result<Option<T>> {
        let Some((name, value)) = self.first(names) else {
            return Ok(None);
        };
        match digits::<T>(&value) {
            Some(n) if ok(&n) => Ok(Some(n)),
            _ => Err(invalid(name, value, expected, hint)),
        }
    }
}

fn invalid(var: &str, value: String, expected: &'static str, hint: &'static str) -> ClusterError {
    ClusterError::Invalid {
        var: var.to_string(),
        value,
        expected,
        hint,
    }
}
