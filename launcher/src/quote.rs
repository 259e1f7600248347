//! Quoting user values for the two languages a rendered script speaks.
//!
//! - The script body is bash: [`sh`] always single-quotes (`'` becomes `'\''`), so nothing in a
//!   value (spaces, quotes, `$(...)`, backticks, newlines) is ever interpreted.
//! - `#SBATCH` lines are read by sbatch, not by the shell: sbatch splits them on whitespace,
//!   groups quoted text, and treats a backslash as an escape even inside quotes, and a line
//!   ends at the newline. [`sbatch`] leaves plain values as they are, double-quotes the others
//!   with `\` and `"` backslash-escaped, and refuses control characters (a newline cannot be
//!   written into a directive).
//! - SLURM file name patterns (`--output`) give `%` a meaning and let a backslash switch all
//!   patterns off: [`slurm_pattern_literal`] doubles `%` and refuses backslashes.

use anyhow::{bail, Result};

/// POSIX shell quoting: `'...'`, with each `'` written as `'\''`.
pub fn sh(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A value for an `#SBATCH --opt=VALUE` line (see the module comment).
pub fn sbatch(value: &str) -> Result<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        bail!("{value:?} contains the control character {c:?}, which an #SBATCH line cannot hold");
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./%:=@,+-".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        return Ok(value.to_string());
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', r"\\").replace('"', "\\\"")
    ))
}

/// A literal path inside a SLURM file name pattern: `%` doubled; backslashes refused.
pub fn slurm_pattern_literal(path: &str) -> Result<String> {
    if path.contains('\\') {
        bail!("{path:?} contains a backslash, which turns off SLURM's %j/%t file name patterns");
    }
    Ok(path.replace('%', "%%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_quotes_everything() {
        assert_eq!(sh("plain"), "'plain'");
        assert_eq!(sh(""), "''");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh("$(x) `y`\n"), "'$(x) `y`\n'");
    }

    #[test]
    fn sbatch_quotes_when_needed() {
        assert_eq!(sbatch("gpu,a100").unwrap(), "gpu,a100");
        assert_eq!(sbatch("my job").unwrap(), "\"my job\"");
        assert_eq!(sbatch(r#"a"b\c"#).unwrap(), r#""a\"b\\c""#);
        assert_eq!(sbatch("").unwrap(), "\"\"");
        assert!(sbatch("a\nb").is_err());
    }

    #[test]
    fn patterns_escape_percent() {
        assert_eq!(slurm_pattern_literal("/x/100%").unwrap(), "/x/100%%");
        assert!(slurm_pattern_literal(r"a\b").is_err());
    }
}
