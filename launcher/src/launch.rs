//! `nls-launch -- ...` and `nls-launch run FILE`: render, write the exp-dir, submit.

use crate::atomic::write_atomic;
use crate::check::{self, Candidate};
use crate::config::Experiment;
use crate::guard;
use crate::render::{self, Body};
use crate::submit::{self, Submission};
use crate::sweep::{self, Task};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The job script inside the exp-dir.
pub const SCRIPT: &str = "job.sh";
/// The resolved configuration inside the exp-dir.
pub const RESOLVED: &str = "job.toml";

/// What one launch will run.
pub struct Plan {
    pub script: String,
    /// The array tasks (sweeps); None for a single job.
    pub tasks: Option<Vec<Task>>,
    /// The single job's trainer arguments, or each array task's still without results.
    pub units: Vec<Unit>,
}

/// One run of a launch: the single job, or one array task still without results.
pub struct Unit {
    /// The array task; None for a single job.
    pub task: Option<usize>,
    /// The configuration's name (a single job: its exp-dir).
    pub name: String,
    pub args: Vec<String>,
}

impl Plan {
    /// The indices submitted this time (sweeps: those without results).
    pub fn pending(&self) -> Option<Vec<usize>> {
        let tasks = self.tasks.as_ref()?;
        Some(tasks.iter().filter(|t| !t.done).map(|t| t.index).collect())
    }
}

/// Renders the script; None when a sweep has nothing left to run.
pub fn plan(exp: &Experiment, workdir: &Path) -> Result<Option<Plan>> {
    let template = render::load_template(&exp.job, &exp.origin)?;
    let job = &exp.job;
    let (body, tasks, units) = match exp.grid {
        None => {
            let args = job.trainer_args(&[], &job.exp_dir);
            let unit = Unit {
                task: None,
                name: job.exp_dir.display().to_string(),
                args: args.clone(),
            };
            (Body::Single { args }, None, vec![unit])
        }
        Some(_) => {
            let tasks = sweep::plan(exp)?;
            let units: Vec<Unit> = tasks
                .iter()
                .filter(|t| !t.done)
                .map(|t| Unit {
                    task: Some(t.index),
                    name: t.name.clone(),
                    args: t.args.clone(),
                })
                .collect();
            if units.is_empty() {
                return Ok(None);
            }
            let pending: Vec<usize> = units.iter().filter_map(|u| u.task).collect();
            let spec = sweep::array_spec(&pending, job.parallel);
            let tasks_dir = sweep::tasks_dir(&job.exp_dir);
            (Body::Array { spec, tasks_dir }, Some(tasks), units)
        }
    };
    let script = render::render(job, &body, &template, workdir)?;
    Ok(Some(Plan {
        script,
        tasks,
        units,
    }))
}

/// The trainer's own parser accepts every run's arguments (see [`check`]).
fn check_arguments(exp: &Experiment, plan: &Plan) -> Result<()> {
    let candidates: Vec<Candidate> = plan
        .units
        .iter()
        .map(|u| Candidate {
            name: &u.name,
            args: &u.args,
        })
        .collect();
    let trainer = exp.job.trainer.as_deref().unwrap_or(Path::new("trainer"));
    check::trainer_accepts(trainer, &candidates)
}

/// A dry run: the script, then what its first run executes and how many runs there are.
fn print_dry_run(exp: &Experiment, plan: &Plan) {
    print!("{}", plan.script);
    let trainer = exp.job.trainer.as_deref().unwrap_or(Path::new("trainer"));
    if let Some(first) = plan.units.first() {
        let what = match first.task {
            Some(t) => format!("task {t} ({})", first.name),
            None => "the job".into(),
        };
        println!(
            "# {} task(s) to run; {what} runs on every rank:\n#   {} {}",
            plan.units.len(),
            trainer.display(),
            check::command_line(&first.args)
        );
    }
}

/// Plan, then print (`dry_run`), run here (`local`), or write and submit. Returns the exit
/// code: 0, or the local executor's (75 stopped and resumable, 2 failed).
pub fn launch(exp: &Experiment, dry_run: bool, local: bool) -> Result<u8> {
    let workdir = std::env::current_dir().context("reading the current directory")?;
    let Some(plan) = plan(exp, &workdir)? else {
        println!(
            "every configuration of {} has its results.json; nothing to run",
            exp.origin.source()
        );
        return Ok(0);
    };
    if let Some(tasks) = &plan.tasks {
        eprintln!(
            "{} configurations, {} to run",
            tasks.len(),
            plan.pending().map_or(0, |p| p.len())
        );
    }
    check_arguments(exp, &plan)?;
    if dry_run {
        print_dry_run(exp, &plan);
        return Ok(0);
    }
    let _lock = guard::acquire(&exp.job.exp_dir)?;
    if local {
        let code = crate::local::run(exp, &plan)?.exit_code();
        println!("{}", tensorboard_line(&exp.job.exp_dir));
        return Ok(code);
    }
    submit_plan(exp, &plan)?;
    Ok(0)
}

/// Writes the exp-dir, runs `sbatch` and records the submission.
fn submit_plan(exp: &Experiment, plan: &Plan) -> Result<()> {
    let script = write_exp_dir(exp, plan)?;
    let s = submit::sbatch(&script)?;
    let array = plan
        .pending()
        .map(|p| sweep::array_spec(&p, exp.job.parallel));
    submit::record(
        &exp.job.exp_dir,
        &Submission {
            job_id: s.job_id.clone(),
            cluster: s.cluster.clone(),
            time: chrono::Utc::now().to_rfc3339(),
            script: script.clone(),
            array: array.clone(),
            tasks: plan.pending(),
            executor: None,
        },
    )?;
    println!("submitted job {}", s.job_id);
    println!("{}", log_hint(&exp.job.exp_dir, &s.job_id, array.is_some()));
    println!("{}", tensorboard_line(&exp.job.exp_dir));
    Ok(())
}

/// How to see the runs' curves: every run writes TensorBoard scalars under its folder, and
/// every run folder lies inside the exp-dir (a sweep's in `runs/`), which tensorboard searches.
pub fn tensorboard_line(exp_dir: &Path) -> String {
    format!("tensorboard --logdir {}", exp_dir.display())
}

/// Where a submission's output goes (`templates/sbatch.sh.j2`): each task's stderr, which holds
/// the trainer's log and its errors, in `.err`; its stdout (tables it prints) in `.out`; the
/// batch shell's own messages (srun's) in `_batch.err`.
pub fn log_hint(exp_dir: &Path, job_id: &str, array: bool) -> String {
    let logs = exp_dir.join("logs");
    let (task, batch) = match array {
        true => (
            format!("{job_id}_<task>_<rank>"),
            format!("{job_id}_<task>_batch"),
        ),
        false => (format!("{job_id}_<rank>"), format!("{job_id}_batch")),
    };
    format!(
        "logs: {}/{task}.err (the trainer's log and errors; .out has what it prints on \
         stdout), {batch}.err (srun's messages); `nls-launch logs {}` prints them",
        logs.display(),
        exp_dir.display()
    )
}

/// `job.sh`, `job.toml`, `tasks/` and `logs/` in the exp-dir; returns the script's path.
pub fn write_exp_dir(exp: &Experiment, plan: &Plan) -> Result<PathBuf> {
    let dir = &exp.job.exp_dir;
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}/logs", dir.display()))?;
    if let Some(tasks) = &plan.tasks {
        sweep::write_tasks(dir, tasks)?;
    }
    write_atomic(&dir.join(RESOLVED), exp.to_toml()?.as_bytes())?;
    let script = dir.join(SCRIPT);
    write_atomic(&script, plan.script.as_bytes())?;
    Ok(script)
}
