//! Named protocols: the defaults of a published evaluation or training recipe, a layer between
//! the built-in defaults and `--config`/flags (which still override any key of it).
//!
//! Each protocol is a TOML file in `protocols/`, compiled in: readable as documentation and
//! usable as a starting point for a `--config` file.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// No preset: this project's defaults (a frozen backbone's features computed once and
    /// cached, the head trained on them with dropout and batch statistics).
    #[default]
    None,
    /// Seed 000's `evaluate.py`: under `--weights freeze` backbone and head in eval mode,
    /// RandomResizedCrop + flip with the backbone re-run every epoch, its normalization, SGD
    /// momentum 0.9, weight decay 1e-6, cosine per epoch down to lr × 0.1.
    Seed000,
}

impl Protocol {
    /// The preset's table (empty for `none`).
    pub fn preset(self) -> Result<toml::Table> {
        let text = match self {
            Protocol::None => return Ok(toml::Table::new()),
            Protocol::Seed000 => include_str!("protocols/seed000.toml"),
        };
        text.parse()
            .with_context(|| format!("the built-in protocol {self} is not valid TOML"))
    }

    /// The protocol named by `protocol` in the merged file and flags.
    pub fn chosen(given: &toml::Table) -> Result<Protocol> {
        match given.get("protocol") {
            None => Ok(Protocol::None),
            Some(value) => value
                .clone()
                .try_into()
                .map_err(|e| anyhow::anyhow!("--protocol: {e}")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}
