//! The backbone to evaluate: an exported `backbone.safetensors` (architecture from its JSON
//! card), a pretraining checkpoint (architecture from its configuration), or `none` (random
//! initialization, the baseline that shows what pretraining is worth).
//!
//! Everything is checked when the backbone is opened, before any work:
//! `--arch/--stem/--width/--depth` against the card or configuration, the weights against that architecture (names and shapes,
//! both ways), and a checkpoint that fails its checksum or is cut short is reported as damaged.

use super::config::EvalConfig;
use crate::checkpoint;
use crate::data::normalization::Normalization;
use crate::method::ssl::model::{BACKBONE, PROJECTOR};
use crate::model::{Arch, Backbone, NetSpec};
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::Tensor;

/// Where the weights come from, and the architecture they need.
pub struct BackboneSource {
    pub net: NetSpec,
    /// Tensors named as the reference module's state_dict; None for a random initialization.
    pub weights: Option<HashMap<String, Tensor>>,
    pub description: String,
    /// The pretraining projector, when the backbone is a pretraining checkpoint.
    pub projector: Option<SavedProjector>,
    /// What pretraining normalized its inputs with (None: random initialization, or a card
    /// written before cards said).
    pub normalization: Option<Normalization>,
}

/// A projector's layer widths (`--mlp`) and weights, named as in [`crate::model::Projector`].
pub struct SavedProjector {
    pub mlp: String,
    pub tensors: HashMap<String, Tensor>,
}

impl BackboneSource {
    pub fn open(cfg: &EvalConfig) -> Result<BackboneSource> {
        if cfg.backbone == "none" {
            let arch = cfg.arch.unwrap_or(Arch::Resnet18);
            return Ok(BackboneSource {
                net: NetSpec::new(arch, cfg.stem, cfg.width, cfg.depth)
                    .with_context(|| format!("--arch {arch}"))?,
                weights: None,
                description: "random initialization".into(),
                projector: None,
                normalization: None,
            });
        }
        let path = Path::new(&cfg.backbone);
        ensure!(
            path.is_file(),
            "--backbone {} does not exist (give a backbone.safetensors export, a pretraining \
             checkpoint, or none)",
            path.display()
        );
        let found = match checkpoint::read(path) {
            Ok(ckpt) => from_checkpoint(path, ckpt)?,
            // Our checkpoint format, but it fails its checks: say so rather than go looking
            // for an export's card.
            Err(e) if is_nls_checkpoint(path) => bail!(
                "--backbone {} is a damaged or unreadable checkpoint ({e:#}); use an intact \
                 one, such as an older checkpoint from the same folder, or the export \
                 backbone.safetensors",
                path.display()
            ),
            Err(e) => from_export(path, e)?,
        };
        found.check_against(cfg)?;
        found.check_weights()?;
        Ok(found)
    }

    /// The weights must be exactly the variables of the architecture they claim to be: every
    /// variable present with its shape, and nothing else (BN counters aside). Without the second
    /// half a ResNet-34 whose card says ResNet-18 would load silently, its extra blocks ignored.
    fn check_weights(&self) -> Result<()> {
        let Some(weights) = &self.weights else {
            return Ok(());
        };
        let vs = VarStore::new(tch::Device::Cpu);
        let _net = Backbone::new(&vs.root(), &self.net);
        let vars = vs.variables();
        let what = format!(
            "architecture mismatch: {} does not hold a {}",
            self.description, self.net
        );
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let saved = weights
                .get(name)
                .with_context(|| format!("{what}: it has no tensor {name}"))?;
            ensure!(
                saved.size() == var.size(),
                "{what}: {name} is {:?} there but {:?} in a {}",
                saved.size(),
                var.size(),
                self.net.arch
            );
        }
        let mut extra: Vec<&String> = weights
            .keys()
            .filter(|n| !vars.contains_key(*n) && !n.ends_with(".num_batches_tracked"))
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            bail!(
                "{what}: it has {} tensor(s) that architecture lacks, such as {first}",
                extra.len()
            );
        }
        Ok(())
    }

    /// `--arch/--stem/--width/--depth`, when given, must match what the weights were trained
    /// as (and suit that architecture: no `--stem` for a wrn, no `--depth` for a ResNet).
    fn check_against(&self, cfg: &EvalConfig) -> Result<()> {
        let mismatch = |what: &str, given: String, found: String| {
            anyhow::anyhow!(
                "architecture mismatch: --{what} {given} was given, but {} is {found}",
                self.description
            )
        };
        let found = self.net;
        if let Some(a) = cfg.arch.filter(|a| *a != found.arch) {
            return Err(mismatch("arch", a.to_string(), found.arch.to_string()));
        }
        NetSpec::new(found.arch, cfg.stem, cfg.width, cfg.depth)
            .with_context(|| format!("{} is a {}", self.description, found))?;
        if let Some(s) = cfg.stem.filter(|s| Some(*s) != found.stem) {
            return Err(mismatch("stem", format!("{s:?}"), found.to_string()));
        }
        if let Some(w) = cfg.width.filter(|w| *w != found.width) {
            return Err(mismatch("width", w.to_string(), found.to_string()));
        }
        if let Some(d) = cfg.depth.filter(|d| Some(*d) != found.depth) {
            return Err(mismatch("depth", d.to_string(), found.to_string()));
        }
        Ok(())
    }

    /// The backbone under `vs.root()`, loaded with the weights (every variable must be present
    /// with its shape).
    pub fn build(&self, vs: &VarStore) -> Result<Backbone> {
        let net = Backbone::new(&vs.root(), &self.net);
        if let Some(weights) = &self.weights {
            load_into(vs, weights, &self.description)?;
        }
        Ok(net)
    }
}

/// Copies `weights` into every variable of `vs` (each must be there with its shape).
pub fn load_into(vs: &VarStore, weights: &HashMap<String, Tensor>, from: &str) -> Result<()> {
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            let saved = weights.get(&name).with_context(|| {
                format!("{from} has no tensor {name}: is it a backbone of this architecture?")
            })?;
            ensure!(
                saved.size() == var.size(),
                "architecture mismatch: {name} is {:?} in {from} but {:?} here",
                saved.size(),
                var.size()
            );
            var.copy_(&saved.to_device(var.device()));
        }
        Ok(())
    })
}

/// Whether `path` starts with a safetensors header carrying our checkpoint format tag (the
/// header survives most damage: a flipped byte in the tensors, a truncated data region).
fn is_nls_checkpoint(path: &Path) -> bool {
    use std::io::Read;
    let header = || -> Option<Value> {
        let mut file = std::fs::File::open(path).ok()?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).ok()?;
        let len = u64::from_le_bytes(len);
        if len > 100_000_000 {
            return None;
        }
        let mut bytes = vec![0u8; len as usize];
        file.read_exact(&mut bytes).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    header().is_some_and(|h| h["__metadata__"]["nls_format"].is_string())
}

/// `path` as an export: safetensors weights next to their JSON card. `as_checkpoint` is why it
/// did not read as a checkpoint, for the message when it is no safetensors file either.
fn from_export(path: &Path, as_checkpoint: anyhow::Error) -> Result<BackboneSource> {
    let tensors = Tensor::read_safetensors(path).map_err(|e| {
        anyhow::anyhow!(
            "--backbone {} is damaged or unreadable: it is neither a pretraining checkpoint \
             ({as_checkpoint:#}) nor a safetensors export ({e})",
            path.display()
        )
    })?;
    let card_path = path.with_extension("json");
    let card: Value = serde_json::from_str(
        &std::fs::read_to_string(&card_path)
            .with_context(|| format!("reading the backbone's card {}", card_path.display()))?,
    )
    .with_context(|| format!("{} is not JSON", card_path.display()))?;
    let field = |key: &str| -> Result<Value> {
        card.get(key)
            .cloned()
            .with_context(|| format!("{} has no \"{key}\"", card_path.display()))
    };
    let saved = |key: &str| card.get(key).cloned().unwrap_or(Value::Null);
    Ok(BackboneSource {
        net: saved_net(field("arch")?, saved)
            .with_context(|| format!("the card {}", card_path.display()))?,
        weights: Some(tensors.into_iter().collect()),
        description: format!("the export {}", path.display()),
        normalization: normalization_of(card.get("normalization"), &card_path)?,
        projector: None,
    })
}

/// The `normalization` entry of a card or checkpoint state, when it has one.
fn normalization_of(value: Option<&Value>, from: &Path) -> Result<Option<Normalization>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .with_context(|| format!("{}: unreadable \"normalization\"", from.display())),
    }
}

/// The architecture a card or a pretraining configuration records: `arch`, and `stem`, `width`,
/// `depth` where the architecture has them (older files without `width` get the default).
fn saved_net(arch: Value, saved: impl Fn(&str) -> Value) -> Result<NetSpec> {
    let arch: Arch = serde_json::from_value(arch).context("arch")?;
    let stem = serde_json::from_value(saved("stem")).context("stem")?;
    let width = saved("width").as_i64();
    let depth = saved("depth").as_i64();
    NetSpec::new(arch, stem, width, depth)
}

fn from_checkpoint(path: &Path, ckpt: checkpoint::Checkpoint) -> Result<BackboneSource> {
    let config = ckpt
        .state
        .get("config")
        .with_context(|| format!("{} holds no pretraining configuration", path.display()))?;
    let get = |key: &str| -> Result<Value> {
        config
            .get(key)
            .cloned()
            .with_context(|| format!("{}: the configuration has no {key}", path.display()))
    };
    let prefix = format!("model/{BACKBONE}.");
    let projector_prefix = format!("model/{PROJECTOR}.");
    let mut weights = HashMap::new();
    let mut projector = HashMap::new();
    for (name, t) in ckpt.tensors {
        if let Some(n) = name.strip_prefix(&prefix) {
            weights.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix(&projector_prefix) {
            projector.insert(n.to_string(), t);
        }
    }
    if weights.is_empty() {
        bail!(
            "{} is not a pretraining checkpoint (no {prefix}* tensors)",
            path.display()
        );
    }
    let saved = |key: &str| config.get(key).cloned().unwrap_or(Value::Null);
    Ok(BackboneSource {
        net: saved_net(get("arch")?, saved)
            .with_context(|| format!("{}: the configuration", path.display()))?,
        weights: Some(weights),
        description: format!("the checkpoint {}", path.display()),
        normalization: normalization_of(ckpt.state.get("normalization"), path)?,
        projector: match (get("mlp")?.as_str(), projector.is_empty()) {
            (Some(mlp), false) => Some(SavedProjector {
                mlp: mlp.to_string(),
                tensors: projector,
            }),
            _ => None,
        },
    })
}
