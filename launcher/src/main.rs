//! `nls-launch`: renders, submits and tracks SLURM jobs and sweeps for the trainer.
//! Argument parsing only; the work is in the `launcher` library.

use anyhow::Result;
use clap::{Parser, Subcommand};
use launcher::config::{Experiment, JobArgs, Scale};
use launcher::{follow, launch, report, resume};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "nls-launch",
    version,
    about = "Render, submit and track nls jobs and sweeps on SLURM, or run them here (--local)",
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  nls-launch --nodes 2 --ngpus 8 --time 600 --exp-dir runs/vicreg -- pretrain --data-dir /data/cifar10 --method vicreg\n  nls-launch run experiments/noise_sweep.toml --parallel 20 --dry-run\n  nls-launch run experiments/mwn.toml --smoke --local\n  nls-launch --local --cpu --tasks-per-node 2 --exp-dir runs/tiny -- pretrain --data-dir /data/fmnist\n  nls-launch status runs/vicreg\n  nls-launch resume runs/vicreg --time 1440\n  nls-launch report runs/noise_sweep"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    job: JobArgs,
    #[command(flatten)]
    how: How,
    /// The trainer subcommand and its arguments, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct RunArgs {
    file: PathBuf,
    /// The file's small scale: its `[smoke]` table over `[job]`, command and grid (CPU,
    /// minutes), in `<exp_dir>-smoke` unless `[smoke.job]` names an exp-dir; no paper numbers.
    #[arg(long)]
    smoke: bool,
    #[command(flatten)]
    job: JobArgs,
    #[command(flatten)]
    how: How,
    /// Extra trainer arguments, appended to the file's command.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct ResumeArgs {
    exp: PathBuf,
    #[command(flatten)]
    job: JobArgs,
    #[command(flatten)]
    how: How,
}

/// How to launch.
#[derive(clap::Args)]
struct How {
    /// Print the script; write and submit nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run on this machine instead of SLURM: nodes × tasks trainer processes with SLURM's
    /// variables, signals forwarded, restarts on exit 75, --time enforced.
    #[arg(long)]
    local: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Submit an experiment file ([job], command, optional [grid] sweep); flags override it.
    Run(Box<RunArgs>),
    /// State of an experiment's jobs (squeue, scontrol, sacct) and of its runs (stop.json).
    Status { exp: Option<PathBuf> },
    /// Print the task logs of the latest submission.
    Logs {
        exp: PathBuf,
        /// Array task (sweeps) or rank (single jobs).
        #[arg(long)]
        task: Option<usize>,
        /// Keep printing as the logs grow (tail -F).
        #[arg(long)]
        follow: bool,
    },
    /// Stop the experiment's queued or running jobs (scancel; SIGTERM to a local executor) and
    /// record it in cancelled.json.
    Cancel { exp: PathBuf },
    /// Launch an ended job again from its checkpoint (sweeps: the configurations without
    /// results); flags override its job.toml.
    Resume(Box<ResumeArgs>),
    /// Results of an experiment: mean ± std over seeds by noise (rows) and the other grid keys
    /// (columns) on stdout; report.csv, summary.csv and report.json in the exp-dir.
    Report {
        exp: PathBuf,
        /// The metric of results.json to summarize (acc1, best_acc1, acc5, noisy_predicted_true...).
        #[arg(long, default_value = "acc1")]
        metric: String,
        /// Grid keys that label the rows (default: kind and noise).
        #[arg(long, value_delimiter = ',')]
        rows: Option<Vec<String>>,
        /// Grid keys that label the columns (default: every key but the rows' and seed).
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
    },
}

/// `nls-launch report EXP | head` ends quietly when the pipe closes, as other tools do. Only
/// there: elsewhere a closed pipe must be an error to handle (the trainer's check-args may
/// close its stdin early), not a silent death.
fn die_quietly_on_closed_pipe() {
    // SAFETY: restoring the default action installs no handler.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    }
    .ok();
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn start(exp: &Experiment, how: &How) -> Result<u8> {
    launch::launch(exp, how.dry_run, how.local)
}

/// The exit code: 0, or the local executor's (75: stopped and resumable).
fn run(cli: Cli) -> Result<u8> {
    let done = |r: Result<()>| r.map(|()| 0);
    match cli.cmd {
        None => start(&Experiment::load(None, &cli.job, &cli.command)?, &cli.how),
        Some(Cmd::Run(r)) => {
            let scale = match r.smoke {
                true => Scale::Smoke,
                false => Scale::Full,
            };
            let exp = Experiment::load_at(Some(&r.file), &r.job, &r.command, scale)?;
            start(&exp, &r.how)
        }
        Some(Cmd::Status { exp }) => done(follow::status(exp.as_deref())),
        Some(Cmd::Logs { exp, task, follow }) => done(follow::logs(&exp, task, follow)),
        Some(Cmd::Cancel { exp }) => done(follow::cancel(&exp)),
        Some(Cmd::Resume(r)) => resume::resume(&r.exp, &r.job, r.how.dry_run, r.how.local),
        Some(Cmd::Report {
            exp,
            metric,
            rows,
            columns,
        }) => {
            die_quietly_on_closed_pipe();
            done(report::report(
                &exp,
                &report::Options {
                    metric,
                    rows,
                    columns,
                },
            ))
        }
    }
}
