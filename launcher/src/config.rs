//! The job's configuration: defaults ← the experiment file's `[job]` table ← command-line
//! flags, merged as TOML tables and parsed once into [`JobConfig`] (`deny_unknown_fields`).
//!
//! Every error names where the offending key came from ([`Origin::of`]): the flag, or the key
//! in `[job]` of the file. Decisions worth knowing:
//! - GPU mode is the default (`ngpus` 1 when unset); one task per GPU. `ngpus = 0` is an
//!   error: a CPU job is asked for explicitly with `--cpu` (`cpu = true`), which drops the GPU
//!   lines and runs `tasks_per_node` tasks per node (default 1).
//! - A GPU job gets [`GPU_CPUS_PER_TASK`] CPUs per task unless `cpus_per_task` is given.
//! - `exp_dir` is made absolute: the job may start anywhere. The job's working directory is
//!   the directory `nls-launch` ran in (`#SBATCH --chdir`), so relative trainer paths work.

use crate::paper::{self, PaperNumber};
use crate::smoke::{self, Smoke};
use crate::{quote, sweep};
use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Subcommands of the trainer that take `--exp-dir` (and `--max-timeouts`: `pretrain`).
const EXP_DIR_SUBCOMMANDS: [&str; 3] = ["pretrain", "evaluate", "train"];

/// Whether a trainer subcommand is supervised training (`evaluate`, or its alias `train`):
/// runs that count epochs and write `results.json`.
pub fn is_training(subcommand: &str) -> bool {
    matches!(subcommand, "evaluate" | "train")
}

/// CPUs per task of a GPU job unless `cpus_per_task` says otherwise: threads for the trainer's
/// data loading and augmentation beside the GPU (with 1, `OMP_NUM_THREADS` would be 1). CPU jobs
/// keep SLURM's default.
pub const GPU_CPUS_PER_TASK: u32 = 8;

/// Every key of `[job]`, in the order of [`JobConfig`].
pub const JOB_KEYS: [&str; 19] = [
    "nodes",
    "ngpus",
    "cpu",
    "tasks_per_node",
    "cpus_per_task",
    "mem",
    "partition",
    "account",
    "qos",
    "constraint",
    "time",
    "signal_delay",
    "max_timeouts",
    "parallel",
    "exp_dir",
    "name",
    "trainer",
    "template",
    "command",
];

/// The resolved configuration of one submission (written to `<exp>/job.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    #[serde(default = "one")]
    pub nodes: u32,
    /// GPUs per node, one task each (GPU mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngpus: Option<u32>,
    /// CPU mode: no GPU lines, `tasks_per_node` tasks per node.
    #[serde(default)]
    pub cpu: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_per_node: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Time limit in minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u32>,
    /// Seconds before the time limit at which SLURM sends SIGUSR1.
    #[serde(default = "default_signal_delay")]
    pub signal_delay: u32,
    /// Time-limit requeues allowed (passed to `trainer pretrain --max-timeouts`).
    #[serde(default = "default_max_timeouts")]
    pub max_timeouts: u32,
    /// Sweeps: at most this many array tasks at once (`--array=...%P`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    pub exp_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<PathBuf>,
    /// sbatch template: a path, or a name looked up in the template folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
    /// The trainer subcommand and its arguments.
    #[serde(default)]
    pub command: Vec<String>,
}

fn one() -> u32 {
    1
}
fn default_signal_delay() -> u32 {
    90
}
fn default_max_timeouts() -> u32 {
    3
}

/// The job flags shared by `nls-launch -- ...` and `nls-launch run FILE`; they override the file.
#[derive(Args, Clone, Debug, Default, Serialize)]
pub struct JobArgs {
    /// Number of nodes.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<u32>,
    /// GPUs per node; one task per GPU (default 1).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ngpus: Option<u32>,
    /// CPU job: no GPU lines; --tasks-per-node tasks per node.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cpu: bool,
    /// Tasks per node in CPU mode (default 1).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_per_node: Option<u32>,
    /// CPUs per task (`--cpus-per-task`; GPU jobs: 8 unless given).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<u32>,
    /// Memory per node, as sbatch takes it (`64G`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// SLURM partition.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// SLURM account.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// SLURM QOS.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qos: Option<String>,
    /// Node features (`--constraint`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraint: Option<String>,
    /// Time limit in minutes.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<u32>,
    /// SIGUSR1 this many seconds before the time limit (default 90).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal_delay: Option<u32>,
    /// Time-limit requeues allowed before the run stops for good (default 3).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_timeouts: Option<u32>,
    /// Sweeps: at most P array tasks at once.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// Experiment folder: script, job.toml, logs/, submissions.jsonl (and runs/ for sweeps).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp_dir: Option<PathBuf>,
    /// Job name (default: the exp-dir's name).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Trainer binary (default: `trainer` beside nls-launch, else on PATH).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trainer: Option<PathBuf>,
    /// sbatch template (default: sbatch.sh.j2 from the templates folder).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<PathBuf>,
}

/// Where each key's value came from, for error messages.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub file: Option<PathBuf>,
    file_keys: Vec<String>,
    /// Keys set by `[smoke.job]` (`--smoke`).
    smoke_keys: Vec<String>,
    flag_keys: Vec<String>,
}

impl Origin {
    /// `--ngpus (command line)`, `` `ngpus` in [job] of exp.toml `` or `` `ngpus` (default) ``.
    pub fn of(&self, key: &str) -> String {
        if self.flag_keys.iter().any(|k| k == key) {
            return format!("--{} (command line)", key.replace('_', "-"));
        }
        match &self.file {
            Some(f) if self.smoke_keys.iter().any(|k| k == key) => {
                format!("`{key}` in [smoke.job] of {}", f.display())
            }
            Some(f) if self.file_keys.iter().any(|k| k == key) => {
                format!("`{key}` in [job] of {}", f.display())
            }
            _ => format!("`{key}` (default)"),
        }
    }

    /// The file, or "the command line".
    pub fn source(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => "the command line".into(),
        }
    }
}

/// An experiment: the job, the optional sweep grid (raw; [`crate::sweep`] reads it), the
/// paper's numbers it should reproduce and where the values came from.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub job: JobConfig,
    pub grid: Option<toml::Value>,
    /// `[[paper]]`, checked against the grid; none at smoke scale.
    pub paper: Vec<PaperNumber>,
    pub origin: Origin,
}

/// The scale an experiment file runs at: as written, or its `[smoke]` table applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Full,
    Smoke,
}

/// What `job.toml` holds.
#[derive(Serialize)]
struct Resolved<'a> {
    job: &'a JobConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    grid: Option<&'a toml::Value>,
    #[serde(skip_serializing_if = "<[PaperNumber]>::is_empty")]
    paper: &'a [PaperNumber],
}

/// The tables of an experiment file.
#[derive(Default)]
struct FileParts {
    /// `[job]`, with a top-level `command` moved into it.
    job: toml::Table,
    grid: Option<toml::Value>,
    paper: Vec<PaperNumber>,
    smoke: Option<Smoke>,
}

impl Experiment {
    /// Flags (and the trainer args after `--`, appended to the file's `command`) over the file.
    pub fn load(file: Option<&Path>, flags: &JobArgs, extra: &[String]) -> Result<Experiment> {
        Experiment::load_at(file, flags, extra, Scale::Full)
    }

    /// [`Experiment::load`] at `scale`: `Smoke` applies the file's `[smoke]` table (see
    /// [`crate::smoke`]) before the flags, and drops the paper's numbers.
    pub fn load_at(
        file: Option<&Path>,
        flags: &JobArgs,
        extra: &[String],
        scale: Scale,
    ) -> Result<Experiment> {
        let mut parts = match file {
            Some(f) => read_file(f)?,
            None => FileParts::default(),
        };
        let mut origin = Origin {
            file: file.map(Path::to_path_buf),
            file_keys: parts.job.keys().cloned().collect(),
            ..Origin::default()
        };
        if scale == Scale::Smoke {
            origin.smoke_keys = apply_smoke(&mut parts, &origin.source())?;
        }
        let FileParts {
            mut job,
            grid,
            paper,
            ..
        } = parts;
        let flags = toml::Table::try_from(flags).context("reading the command-line flags")?;
        origin.flag_keys = flags.keys().cloned().collect();
        job.extend(flags);
        append_command(&mut job, extra);
        let cfg = JobConfig::deserialize(toml::Value::Table(job))
            .with_context(|| format!("invalid job configuration (from {})", origin.source()))?;
        cfg.validate(&origin)?;
        let job = cfg.resolve()?;
        Ok(Experiment {
            job,
            grid,
            paper,
            origin,
        })
    }

    /// The resolved configuration as `job.toml` text.
    pub fn to_toml(&self) -> Result<String> {
        let r = Resolved {
            job: &self.job,
            grid: self.grid.as_ref(),
            paper: &self.paper,
        };
        toml::to_string(&r).context("writing the resolved configuration as TOML")
    }
}

/// The top-level keys of an experiment file.
const FILE_KEYS: &str = "[job], command, [grid], [[paper]] and [smoke]";

/// The file's tables: `[job]` (with a top-level `command` moved into it), `grid`, the paper's
/// numbers (checked against the grid) and `[smoke]`.
fn read_file(path: &Path) -> Result<FileParts> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut top: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut job = match top.remove("job") {
        Some(toml::Value::Table(t)) => t,
        Some(_) => bail!("{}: `job` must be a table ([job])", path.display()),
        None => toml::Table::new(),
    };
    if let Some(cmd) = top.remove("command") {
        ensure!(
            !job.contains_key("command"),
            "{}: `command` is given both at the top level and in [job]",
            path.display()
        );
        job.insert("command".into(), cmd);
    }
    let source = path.display().to_string();
    let grid = top.remove("grid");
    let paper = match top.remove("paper") {
        Some(p) => paper::parse(&p, &source)?,
        None => Vec::new(),
    };
    let smoke = top
        .remove("smoke")
        .map(|s| smoke::parse(&s, &source))
        .transpose()?;
    if let Some(k) = top.keys().next() {
        bail!("{source}: unknown key `{k}` (the file holds {FILE_KEYS})");
    }
    if let Some(k) = job.keys().find(|k| !JOB_KEYS.contains(&k.as_str())) {
        bail!(
            "{source}: unknown key `{k}` in [job] (known keys: {})",
            JOB_KEYS.join(", ")
        );
    }
    if !paper.is_empty() {
        paper::check_against_grid(&paper, &grid_points(grid.as_ref(), &source)?, &source)?;
    }
    Ok(FileParts {
        job,
        grid,
        paper,
        smoke,
    })
}

/// Every configuration of a grid (none without one).
fn grid_points(grid: Option<&toml::Value>, source: &str) -> Result<Vec<sweep::Point>> {
    match grid {
        Some(g) => sweep::expand(&sweep::parse_grids(g, source)?),
        None => Ok(Vec::new()),
    }
}

/// `[smoke]` over the file's job, command and grid; the paper's numbers go (they are for the
/// full scale). Returns the job keys `[smoke.job]` set.
fn apply_smoke(parts: &mut FileParts, source: &str) -> Result<Vec<String>> {
    let smoke = parts.smoke.take().with_context(|| {
        format!(
            "{source} has no [smoke] table: --smoke runs the small scale a preset declares \
             there (see experiments/README.md)"
        )
    })?;
    smoke.apply_job(&mut parts.job);
    parts.grid = smoke.apply_grid(parts.grid.as_ref(), source)?;
    let keys: Vec<String> = grid_points(parts.grid.as_ref(), source)?
        .iter()
        .flat_map(|p| p.0.iter().map(|(k, _)| k.clone()))
        .collect();
    let mut command = command_strings(&parts.job, source)?;
    smoke.apply_args(&mut command, &keys, source)?;
    parts.job.insert("command".into(), command.into());
    parts.paper.clear();
    Ok(smoke.job.keys().cloned().collect())
}

/// The job's `command` as strings.
fn command_strings(job: &toml::Table, source: &str) -> Result<Vec<String>> {
    let Some(cmd) = job.get("command") else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(items) = cmd else {
        bail!("{source}: `command` must be a list of strings");
    };
    items
        .iter()
        .map(|v| match v {
            toml::Value::String(s) => Ok(s.clone()),
            other => bail!("{source}: `command` holds {other}, not a string: quote it"),
        })
        .collect()
}

fn append_command(job: &mut toml::Table, extra: &[String]) {
    if extra.is_empty() {
        return;
    }
    let cmd = job
        .entry("command")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    if let toml::Value::Array(a) = cmd {
        a.extend(extra.iter().cloned().map(toml::Value::String));
    }
}

impl JobConfig {
    /// Checks every value; errors name the key and where it came from.
    pub fn validate(&self, origin: &Origin) -> Result<()> {
        let at_least_one = |key: &str, v: Option<u32>| -> Result<()> {
            match v {
                Some(0) => bail!("{}: {key} = 0; it must be at least 1", origin.of(key)),
                _ => Ok(()),
            }
        };
        at_least_one("nodes", Some(self.nodes))?;
        at_least_one("tasks_per_node", self.tasks_per_node)?;
        at_least_one("cpus_per_task", self.cpus_per_task)?;
        at_least_one("time", self.time)?;
        at_least_one("parallel", self.parallel)?;
        self.validate_mode(origin)?;
        if let Some(t) = self.time {
            ensure!(
                u64::from(self.signal_delay) < u64::from(t) * 60,
                "{}: signal_delay = {} s is not shorter than the time limit ({t} min)",
                origin.of("signal_delay"),
                self.signal_delay
            );
        }
        self.validate_strings(origin)?;
        self.validate_one_exp_dir(origin)?;
        ensure!(
            !self.command.is_empty(),
            "no trainer command in {}: give it after `--` (nls-launch --exp-dir runs/x -- pretrain ...) \
             or as `command = [\"pretrain\", ...]` in the experiment file",
            origin.source()
        );
        Ok(())
    }

    fn validate_mode(&self, origin: &Origin) -> Result<()> {
        if self.cpu {
            ensure!(
                self.ngpus.is_none(),
                "{}: a CPU job (--cpu) takes no ngpus; drop one of them",
                origin.of("ngpus")
            );
            return Ok(());
        }
        ensure!(
            self.ngpus != Some(0),
            "{}: ngpus = 0 asks for no GPUs; for a CPU job say so with --cpu (cpu = true) \
             and --tasks-per-node",
            origin.of("ngpus")
        );
        ensure!(
            self.tasks_per_node.is_none(),
            "{}: tasks_per_node is for CPU jobs (--cpu); a GPU job runs one task per GPU (ngpus)",
            origin.of("tasks_per_node")
        );
        Ok(())
    }

    /// nls-launch passes its exp-dir to the trainer; a second `--exp-dir` in the command would
    /// split the run (script and logs in one folder, results in the other).
    fn validate_one_exp_dir(&self, origin: &Origin) -> Result<()> {
        ensure!(
            !has_flag(&self.command, "--exp-dir"),
            "--exp-dir is given twice: to nls-launch ({}) and in the trainer command ({}). \
             nls-launch passes its own --exp-dir to the trainer so that the script, the logs \
             and the results share one folder (a sweep's runs go to <exp_dir>/runs/<name>): \
             drop --exp-dir from the trainer command",
            origin.of("exp_dir"),
            origin.of("command")
        );
        Ok(())
    }

    /// Values that go into `#SBATCH` lines must be writable there.
    fn validate_strings(&self, origin: &Origin) -> Result<()> {
        let fields = [
            ("mem", self.mem.as_deref()),
            ("partition", self.partition.as_deref()),
            ("account", self.account.as_deref()),
            ("qos", self.qos.as_deref()),
            ("constraint", self.constraint.as_deref()),
            ("name", self.name.as_deref()),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                quote::sbatch(v).with_context(|| origin.of(key))?;
            }
        }
        let exp = path_str(&self.exp_dir).with_context(|| origin.of("exp_dir"))?;
        quote::sbatch(exp).with_context(|| origin.of("exp_dir"))?;
        quote::slurm_pattern_literal(exp).with_context(|| origin.of("exp_dir"))?;
        Ok(())
    }

    /// Fills the defaults that depend on the environment: absolute exp_dir, name, ngpus or
    /// tasks_per_node, trainer.
    pub fn resolve(mut self) -> Result<JobConfig> {
        self.exp_dir = std::path::absolute(&self.exp_dir)
            .with_context(|| format!("making {} absolute", self.exp_dir.display()))?;
        if self.name.is_none() {
            let base = self.exp_dir.file_name().unwrap_or_default();
            self.name = Some(format!("nls-{}", base.to_string_lossy()));
        }
        match self.cpu {
            true => self.tasks_per_node = Some(self.tasks_per_node.unwrap_or(1)),
            false => {
                self.ngpus = Some(self.ngpus.unwrap_or(1));
                self.cpus_per_task = Some(self.cpus_per_task.unwrap_or(GPU_CPUS_PER_TASK));
            }
        }
        if self.trainer.is_none() {
            self.trainer = Some(default_trainer());
        }
        Ok(self)
    }

    /// Tasks per node: one per GPU, or `tasks_per_node` in CPU mode.
    pub fn tasks_per_node(&self) -> u32 {
        match self.cpu {
            true => self.tasks_per_node.unwrap_or(1),
            false => self.ngpus.unwrap_or(1),
        }
    }

    /// GPUs per node, None in CPU mode.
    pub fn gpus_per_node(&self) -> Option<u32> {
        match self.cpu {
            true => None,
            false => Some(self.ngpus.unwrap_or(1)),
        }
    }

    /// The trainer arguments for a run in `run_dir`: `command`, then `extra`, then
    /// `--exp-dir run_dir` (and `--max-timeouts K` for `pretrain`) when the subcommand takes
    /// them and they are not already given.
    pub fn trainer_args(&self, extra: &[String], run_dir: &Path) -> Vec<String> {
        let mut args: Vec<String> = self.command.iter().chain(extra).cloned().collect();
        let sub = self.command.first().map(String::as_str).unwrap_or("");
        if !EXP_DIR_SUBCOMMANDS.contains(&sub) {
            return args;
        }
        if !has_flag(&args, "--exp-dir") {
            args.extend(["--exp-dir".into(), run_dir.display().to_string()]);
        }
        if sub == "pretrain" && !has_flag(&args, "--max-timeouts") {
            args.extend(["--max-timeouts".into(), self.max_timeouts.to_string()]);
        }
        args
    }
}

/// `--flag value` or `--flag=value` among `args`.
pub fn has_flag(args: &[String], flag: &str) -> bool {
    args.iter()
        .any(|a| a == flag || a.strip_prefix(flag).is_some_and(|r| r.starts_with('=')))
}

/// A path as UTF-8 (scripts and TOML need text).
pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not valid UTF-8", p.display()))
}

/// `trainer` beside this executable when it exists, else `trainer` from PATH.
fn default_trainer() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("trainer")));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from("trainer"),
    }
}
