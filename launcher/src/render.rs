//! The sbatch script, rendered from a template in `templates/` with minijinja.
//!
//! Quoting is enforced by the engine: the formatter prints numbers and strings marked safe,
//! and only the `sh` and `sbatch` filters ([`crate::quote`]) mark strings safe. A template
//! that prints a raw string fails to render instead of producing an injectable script.

use crate::config::{path_str, JobConfig, Origin};
use crate::quote;
use anyhow::{anyhow, bail, Context, Result};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The template used when `template` is not set.
pub const DEFAULT_TEMPLATE: &str = "sbatch.sh.j2";
/// `templates/sbatch.sh.j2`, compiled in: used when no templates folder has it.
const BUILTIN: &str = include_str!("../../templates/sbatch.sh.j2");

/// A template's name (for messages) and text.
pub struct Template {
    pub name: String,
    pub source: String,
}

/// What the script runs: one command, or one command per array task.
pub enum Body {
    Single { args: Vec<String> },
    Array { spec: String, tasks_dir: PathBuf },
}

/// Folders searched for templates by name: `$NLS_TEMPLATES`, `./templates`, and `templates/`
/// of the checkout this executable was built in (`target/release/../../templates`).
pub fn template_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("NLS_TEMPLATES")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.push(PathBuf::from("templates"));
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("../../templates"));
    }
    dirs
}

/// The configured template (an error naming the key when it does not exist), or the default.
pub fn load_template(job: &JobConfig, origin: &Origin) -> Result<Template> {
    let dirs = template_dirs();
    let Some(wanted) = &job.template else {
        let found = dirs
            .iter()
            .map(|d| d.join(DEFAULT_TEMPLATE))
            .find(|p| p.is_file());
        return match found {
            Some(p) => read_template(&p),
            None => Ok(Template {
                name: format!("{DEFAULT_TEMPLATE} (built in)"),
                source: BUILTIN.to_string(),
            }),
        };
    };
    let candidates = std::iter::once(wanted.clone())
        .chain(match wanted.is_relative() {
            true => dirs.iter().map(|d| d.join(wanted)).collect(),
            false => Vec::new(),
        })
        .collect::<Vec<_>>();
    match candidates.iter().find(|p| p.is_file()) {
        Some(p) => read_template(p).with_context(|| origin.of("template")),
        None => bail!(
            "{}: template {} does not exist (looked for {})",
            origin.of("template"),
            wanted.display(),
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn read_template(path: &Path) -> Result<Template> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("reading template {}", path.display()))?;
    Ok(Template {
        name: path.display().to_string(),
        source,
    })
}

#[derive(Serialize)]
struct ScriptContext<'a> {
    version: &'a str,
    name: &'a str,
    nodes: u32,
    tasks_per_node: u32,
    gpus_per_node: Option<u32>,
    cpus_per_task: Option<u32>,
    mem: Option<&'a str>,
    partition: Option<&'a str>,
    account: Option<&'a str>,
    qos: Option<&'a str>,
    constraint: Option<&'a str>,
    time: Option<u32>,
    signal_delay: u32,
    workdir: &'a str,
    batch_output: String,
    batch_error: String,
    task_output: String,
    task_error: String,
    array: Option<&'a str>,
    tasks_dir: Option<&'a str>,
    args: &'a [String],
    trainer: &'a str,
}

/// Log file patterns: the batch shell's (`%j_batch`, arrays `%A_%a_batch`) and each task's
/// (`%j_%t`, arrays `%A_%a_%t`), `.out` and `.err`, in `<exp>/logs/`.
pub fn log_patterns(exp_dir: &Path, array: bool) -> Result<[String; 4]> {
    let logs = quote::slurm_pattern_literal(path_str(&exp_dir.join("logs"))?)?;
    let job = if array { "%A_%a" } else { "%j" };
    Ok([
        format!("{logs}/{job}_batch.out"),
        format!("{logs}/{job}_batch.err"),
        format!("{logs}/{job}_%t.out"),
        format!("{logs}/{job}_%t.err"),
    ])
}

/// Render `template` for `job`, running `body`, starting in `workdir`.
pub fn render(job: &JobConfig, body: &Body, template: &Template, workdir: &Path) -> Result<String> {
    let (array, tasks_dir, args): (Option<&str>, Option<&str>, &[String]) = match body {
        Body::Single { args } => (None, None, args),
        Body::Array { spec, tasks_dir } => (Some(spec), Some(path_str(tasks_dir)?), &[]),
    };
    let [batch_output, batch_error, task_output, task_error] =
        log_patterns(&job.exp_dir, array.is_some())?;
    let trainer = job.trainer.as_deref().unwrap_or(Path::new("trainer"));
    let ctx = ScriptContext {
        version: env!("CARGO_PKG_VERSION"),
        name: job.name.as_deref().unwrap_or("nls"),
        nodes: job.nodes,
        tasks_per_node: job.tasks_per_node(),
        gpus_per_node: job.gpus_per_node(),
        cpus_per_task: job.cpus_per_task,
        mem: job.mem.as_deref(),
        partition: job.partition.as_deref(),
        account: job.account.as_deref(),
        qos: job.qos.as_deref(),
        constraint: job.constraint.as_deref(),
        time: job.time,
        signal_delay: job.signal_delay,
        workdir: path_str(workdir)?,
        batch_output,
        batch_error,
        task_output,
        task_error,
        array,
        tasks_dir,
        args,
        trainer: path_str(trainer)?,
    };
    environment()
        .render_named_str(&template.name, &template.source, ctx)
        .map_err(|e| anyhow!("{e:#}"))
        .with_context(|| format!("rendering template {}", template.name))
}

/// minijinja with strict undefined values, the quoting filters and the enforcing formatter.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.add_filter("sh", |v: Value| {
        Value::from_safe_string(quote::sh(&text(&v)))
    });
    env.add_filter("sbatch", |v: Value| -> Result<Value, Error> {
        quote::sbatch(&text(&v))
            .map(Value::from_safe_string)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("{e:#}")))
    });
    env.set_formatter(|out, _state, value| {
        if !(value.is_safe() || value.is_number()) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("{value:?} is printed unquoted; pipe it through `sh` or `sbatch`"),
            ));
        }
        write!(out, "{value}")
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "writing the script"))
    });
    env
}

/// A value's text (strings without quotes).
fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}
