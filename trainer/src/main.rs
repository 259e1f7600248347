//! `trainer`: the nls training program. Run directly or under `srun`; see README.md.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use trainer::cmd;

#[derive(Parser)]
#[command(
    name = "trainer",
    version,
    about = "nls trainer: datasets, label noise, pretraining and evaluation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate label-noise configurations (or import existing label files).
    Noise(cmd::noise::NoiseArgs),
    /// Detect a dataset folder's format and summarize it.
    DataInfo(cmd::data_info::DataInfoArgs),
    /// Check that this job's ranks can talk: every collective once, results verified.
    DistCheck(cmd::dist_check::DistCheckArgs),
    /// Measure all-reduce bandwidth and gradient-sync time between this job's ranks.
    DistBench(cmd::dist_bench::DistBenchArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Noise(args) => cmd::noise::run(args),
        Command::DataInfo(args) => cmd::data_info::run(args),
        Command::DistCheck(args) => cmd::dist_check::run(args),
        Command::DistBench(args) => cmd::dist_bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
