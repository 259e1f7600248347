//! Named protocols: the defaults of a published evaluation or training recipe, a layer between
//! the built-in defaults and `--config`/flags (which still override any key of it).
//!
//! Each protocol is a TOML file in `protocols/`, compiled in: readable as documentation and
//! usable as a starting point for a `--config` file.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
    /// Seed 001: the SSL-initialized network finetuned whole (SGD 0.01, no decay on BN and
    /// biases, 1% warm-up, cosine to 0, zero-initialized linear head, flips only).
    Seed001,
    /// Meta-Weight-Net's CIFAR training: ResNet-32, SGD 0.1, steps at epochs 80 and 100.
    Mwn,
    /// SSR's: PreAct ResNet-18, 300 epochs, SGD 0.02, cosine to lr/50.
    Ssr,
    /// IEG's: WRN-28-10, AutoAugment, a weight average.
    Ieg,
    /// Seed 003's: ResNet-34 with Adam 1e-3.
    Seed003,
}

impl Protocol {
    /// The preset's table (empty for `none`).
    pub fn preset(self) -> Result<toml::Table> {
        let text = match self {
            Protocol::None => return Ok(toml::Table::new()),
            Protocol::Seed000 => include_str!("protocols/seed000.toml"),
            Protocol::Seed001 => include_str!("protocols/seed001.toml"),
            Protocol::Mwn => include_str!("protocols/mwn.toml"),
            Protocol::Ssr => include_str!("protocols/ssr.toml"),
            Protocol::Ieg => include_str!("protocols/ieg.toml"),
            Protocol::Seed003 => include_str!("protocols/seed003.toml"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::eval::config::{EvalConfig, HeadMode, Weights};
    use crate::optim::ScheduleKind;

    fn resolve(extra: &[(&str, toml::Value)]) -> Result<EvalConfig> {
        let mut flags = toml::Table::new();
        flags.insert("data_dir".into(), "/data".into());
        flags.insert("exp_dir".into(), "/exp".into());
        flags.insert("backbone".into(), "none".into());
        for (k, v) in extra {
            flags.insert(k.to_string(), v.clone());
        }
        EvalConfig::resolve(None, flags)
    }

    #[test]
    fn every_preset_is_a_valid_configuration() {
        for protocol in <Protocol as clap::ValueEnum>::value_variants() {
            let name = protocol.to_string();
            let cfg = resolve(&[("protocol", name.as_str().into())])
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(cfg.protocol, *protocol);
            assert_eq!(
                cfg.protocol_label(),
                name.replace("none", "cached-features")
            );
        }
    }

    #[test]
    fn seed000_sets_its_recipe_and_flags_still_win() {
        let cfg = resolve(&[("protocol", "seed000".into())]).unwrap();
        assert_eq!(cfg.head_mode, HeadMode::Eval);
        assert!(cfg.augment && cfg.schedule_per_epoch);
        assert_eq!((cfg.wd, cfg.lr_end), (1e-6, 0.1));
        let cfg = resolve(&[("protocol", "seed000".into()), ("wd", 0.5.into())]).unwrap();
        assert_eq!(cfg.wd, 0.5);
        let mwn = resolve(&[("protocol", "mwn".into())]).unwrap();
        assert_eq!(mwn.weights, Weights::Finetune);
        assert_eq!(mwn.schedule, ScheduleKind::Step);
        assert_eq!(mwn.milestones, [80.0, 100.0]);
    }

    #[test]
    fn augmentation_options_without_augmented_images_are_refused() {
        let e = resolve(&[("geometry", "crop".into())]).unwrap_err();
        assert!(format!("{e:#}").contains("add --augment"), "{e:#}");
        let cfg = resolve(&[("geometry", "crop".into()), ("augment", true.into())]).unwrap();
        assert_eq!(cfg.protocol_label(), "frozen-augmented");
    }

    #[test]
    fn an_unknown_protocol_is_named() {
        let e = resolve(&[("protocol", "seed999".into())]).unwrap_err();
        assert!(format!("{e:#}").contains("seed999"), "{e:#}");
    }
}
