//! `trainer check-args` (hidden): checks argument lists the way a run would read them (clap,
//! then for `pretrain` and `evaluate` the config layering defaults ← `--config` ← flags with
//! its value checks) without touching data, devices or the exp-dir. `nls-launch` runs it for
//! every configuration before it submits anything, so a typo fails once, not in every task.
//!
//! One list: `trainer check-args pretrain --data-dir d ...` exits 0, or 2 with the error.
//! Many (one process for a whole sweep): `trainer check-args --stdin` reads one JSON array of
//! strings per line; at the first bad list it prints `{"index": i, "error": "..."}` on stdout
//! and exits 2.

use anyhow::{Context, Result};
use clap::Args;
use std::io::BufRead;

#[derive(Args, Debug)]
pub struct CheckArgsArgs {
    /// Read the argument lists from stdin, one JSON array of strings per line.
    #[arg(long)]
    pub stdin: bool,
    /// One argument list: the subcommand and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Checks the list(s) with `check` (the binary's own parser); returns the exit code.
pub fn run(args: CheckArgsArgs, check: impl Fn(&[String]) -> Result<()>) -> Result<u8> {
    if !args.stdin {
        anyhow::ensure!(
            !args.args.is_empty(),
            "check-args needs a subcommand and its arguments, or --stdin"
        );
        check(&args.args)?;
        return Ok(0);
    }
    for (index, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let list: Vec<String> = serde_json::from_str(&line)
            .with_context(|| format!("stdin line {}: not a JSON array of strings", index + 1))?;
        if let Err(e) = check(&list) {
            let answer = serde_json::json!({ "index": index, "error": format!("{e:#}") });
            println!("{answer}");
            return Ok(2);
        }
    }
    Ok(0)
}
