//! `--help` shows the real defaults of `pretrain` and `evaluate`. They live in the configuration
//! layers (`PretrainConfig::default()`, `EvalConfig::default()`), not in clap: a clap default
//! would count as a given flag and override the `--config` file. So each option's help gets
//! `[default: …]` appended from those same `Default` values, one source for both.

use crate::method::eval::config::EvalConfig;
use crate::method::ssl::config::PretrainConfig;
use clap::Command;
use serde::Serialize;

/// The trainer's command line with the configuration defaults written into the help.
pub fn with_defaults(cli: Command) -> Command {
    cli.mut_subcommand("pretrain", |c| {
        annotate(c, &defaults(&PretrainConfig::default()))
    })
    .mut_subcommand("evaluate", |c| {
        annotate(c, &defaults(&EvalConfig::default()))
    })
}

fn defaults(config: &impl Serialize) -> toml::Table {
    toml::Table::try_from(config).expect("a configuration serializes to a TOML table")
}

/// Appends `[default: v]` to every option whose configuration key has a shown default.
fn annotate(cmd: Command, defaults: &toml::Table) -> Command {
    let ids: Vec<String> = cmd
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .collect();
    ids.into_iter()
        .fold(cmd, |cmd, id| match defaults.get(&id).and_then(shown) {
            Some(value) => cmd.mut_arg(&id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                // Options shared with commands without configuration layers say it already.
                match help.contains("[default:") {
                    true => arg,
                    false => arg.help(format!("{help} [default: {value}]")),
                }
            }),
            None => cmd,
        })
}

/// How a default reads in the help; none for required paths (empty) and tables.
fn shown(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) if s.is_empty() => None,
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Table(_) => None,
        other => Some(other.to_string()),
    }
}
