//! `nls-launch`: renders, submits and tracks SLURM jobs and sweeps for the trainer.
//! Only the crate's place in the workspace exists so far; the launcher itself is issue #6.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nls-launch",
    version,
    about = "Render, submit and track nls jobs (not implemented yet)"
)]
struct Cli {
    /// Trainer command and arguments.
    #[arg(trailing_var_arg = true)]
    command: Vec<String>,
}

fn main() -> ExitCode {
    let _ = Cli::parse();
    eprintln!("error: nls-launch is not implemented yet; run `trainer` directly (see README.md)");
    ExitCode::from(2)
}
