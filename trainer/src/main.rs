//! `trainer`: the nls training program. Run directly or under `srun`; see README.md.

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
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
    /// Pack a dataset's image files into one file, read by memory map (resumable, verified).
    Pack(cmd::pack::PackArgs),
    /// Check that this job's ranks can talk: every collective once, results verified.
    DistCheck(cmd::dist_check::DistCheckArgs),
    /// Measure all-reduce bandwidth and gradient-sync time between this job's ranks.
    DistBench(cmd::dist_bench::DistBenchArgs),
    /// Pretrain a backbone with SimCLR or VICReg (resumable; exit 75 = restart me).
    Pretrain(Box<cmd::pretrain::PretrainArgs>),
    /// Train a classifier with noisy labels: a head on a frozen backbone, or the whole network
    /// from scratch or a pretrained backbone (resumable; `train` is the same command).
    #[command(visible_alias = "train")]
    Evaluate(Box<cmd::evaluate::EvaluateArgs>),
    /// Write a PNG grid of original images and their augmented views, to check the augmentations by eye.
    AugmentPreview(cmd::augment_preview::AugmentPreviewArgs),
    /// Check argument lists as a run would read them, without running (used by nls-launch).
    #[command(hide = true)]
    CheckArgs(cmd::check_args::CheckArgsArgs),
}

/// What `trainer <args>` would refuse before any work: clap's parse, then for the runs their
/// configuration (defaults ← `--config` ← flags). Touches no data, device or exp-dir.
fn check(args: &[String]) -> anyhow::Result<()> {
    let argv = std::iter::once("trainer".to_string()).chain(args.iter().cloned());
    let cli = Cli::try_parse_from(argv).map_err(|e| {
        let text = e.render().to_string();
        let text = text.trim().trim_start_matches("error: ");
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                anyhow::anyhow!("the arguments ask for --help or --version, not a run")
            }
            _ => anyhow::anyhow!("{text}"),
        }
    })?;
    match cli.command {
        Command::Pretrain(args) => cmd::pretrain::config(&args).map(drop),
        Command::Evaluate(args) => cmd::evaluate::config(&args).map(drop),
        Command::CheckArgs(_) => anyhow::bail!("check-args checks another subcommand's arguments"),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_target(false)
        .init();
    let matches = cmd::help::with_defaults(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result: anyhow::Result<u8> = match cli.command {
        Command::Noise(args) => cmd::noise::run(args).map(|()| 0),
        Command::DataInfo(args) => cmd::data_info::run(args).map(|()| 0),
        Command::Pack(args) => cmd::pack::run(args).map(|()| 0),
        Command::DistCheck(args) => cmd::dist_check::run(args).map(|()| 0),
        Command::DistBench(args) => cmd::dist_bench::run(args).map(|()| 0),
        Command::Pretrain(args) => cmd::pretrain::run(*args),
        Command::Evaluate(args) => cmd::evaluate::run(*args),
        Command::AugmentPreview(args) => cmd::augment_preview::run(args).map(|()| 0),
        Command::CheckArgs(args) => cmd::check_args::run(args, check),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
