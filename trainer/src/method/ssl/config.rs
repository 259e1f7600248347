//! The resolved configuration of a pretraining run: built-in defaults, then `--config run.toml`,
//! then command-line flags, each layer overriding the previous one key by key.
//!
//! Layers merge as TOML tables and the result is deserialized once with `deny_unknown_fields`,
//! so a misspelt key in the file is an error naming it, whichever layer it came from.

use crate::augment::{view_recipes, AugmentConfig};
use crate::data::normalization::Normalization;
use crate::data::resident::{BadImages, ImageOptions};
use crate::data::stream::DecodeScale;
use crate::data::{DatasetName, Source};
use crate::method::ssl::{Method, SslLoss, VicregWeights};
use crate::model::{parse_mlp, Arch, MemoryFormat, NetSpec, Stem};
use crate::optim::OptimizerKind;
use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    pub data_dir: PathBuf,
    pub exp_dir: PathBuf,
    /// Image files only: the square side images are resized and centre-cropped to (see
    /// [`crate::data::resident`]). Unset keys stay out of the serialized form and the hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bad_images: Option<BadImages>,
    /// Image files only: cut both views from the files batch by batch ([`crate::data::stream`])
    /// instead of decoding the split into memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Streamed JPEGs: full or reduced DCT scale ([`DecodeScale`]); unset: full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_scale: Option<DecodeScale>,
    /// Where resident splits are shared by the node's processes ([`crate::data::shared`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_dir: Option<PathBuf>,
    /// Expected dataset name; the folder's contents decide, this checks them (and on a WebVision
    /// release, `webvision` takes it whole rather than as mini-WebVision).
    pub dataset: Option<String>,
    pub method: Method,
    pub arch: Arch,
    /// The shape of `arch` (see [`NetSpec`]). Unset, each gets its architecture's default when
    /// the configuration is resolved, so a resolved configuration always holds its `width`, a
    /// torchvision ResNet its `stem` and `wrn` its `depth`. An unset key is left out of the
    /// serialized form, so the hash of a ResNet configuration is what it was before `depth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stem: Option<Stem>,
    /// Base width (64 is the reference ResNets', 16 ResNet-32's), or `wrn`'s widen factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    /// `wrn` only: depth 6n + 4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub depth: Option<i64>,
    /// Projector widths after the embedding, e.g. "1024-1024-1024".
    pub mlp: String,
    /// Layout of image batches and conv weights ([`MemoryFormat`]); unset: auto.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_format: Option<MemoryFormat>,
    /// CUDA: cuDNN benchmark mode off, so that a resumed run continues bit for bit; unset: off
    /// (benchmark on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deterministic: Option<bool>,
    pub epochs: usize,
    /// Global batch over all ranks.
    pub batch_size: usize,
    pub base_lr: f64,
    pub wd: f64,
    pub optimizer: OptimizerKind,
    pub warmup_epochs: usize,
    /// NT-Xent temperature (`-T`).
    pub temperature: f64,
    /// VICReg invariance (`-I`), variance (`-V`), covariance (`-C`) coefficients.
    pub sim_coeff: f64,
    pub std_coeff: f64,
    pub cov_coeff: f64,
    pub seed: u64,
    /// Train on the first N images of the training split only (0: all).
    pub train_samples: usize,
    /// Also checkpoint every N steps (0: at epoch ends and on signals only).
    pub checkpoint_every: usize,
    pub keep_checkpoints: usize,
    /// Write a metrics line every N steps (and at every epoch end).
    pub log_every: usize,
    /// kNN accuracy on the test split every N epochs (0: never).
    pub knn_every: usize,
    pub knn_k: usize,
    /// Training images in the kNN monitor's bank (0: all).
    pub knn_train_samples: usize,
    /// Test images used by the kNN monitor (0: all).
    pub knn_test_samples: usize,
    /// End the run as finished after this many steps (0: the whole schedule). The schedule
    /// still spans `epochs`; used by benchmarks and smoke runs.
    pub max_steps: usize,
    /// Requeues after a time-limit signal before the job stops for good (SLURM only).
    pub max_timeouts: u32,
    /// Overrides of the method's augmentation recipe (see [`AugmentConfig`]).
    pub augment: toml::Table,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            data_dir: PathBuf::new(),
            image_size: None,
            bad_images: None,
            stream: None,
            decode_scale: None,
            shared_dir: None,
            exp_dir: PathBuf::new(),
            dataset: None,
            method: Method::Vicreg,
            arch: Arch::Resnet18,
            stem: None,
            width: None,
            depth: None,
            mlp: "1024-1024-1024".into(),
            memory_format: None,
            deterministic: None,
            epochs: 100,
            batch_size: 256,
            base_lr: 0.2,
            wd: 1e-6,
            optimizer: OptimizerKind::Lars,
            warmup_epochs: crate::optim::DEFAULT_WARMUP_EPOCHS,
            temperature: 0.5,
            sim_coeff: 25.0,
            std_coeff: 25.0,
            cov_coeff: 1.0,
            seed: 0,
            train_samples: 0,
            checkpoint_every: 0,
            keep_checkpoints: 3,
            log_every: 10,
            knn_every: 1,
            knn_k: 20,
            knn_train_samples: 10_000,
            knn_test_samples: 2_000,
            max_steps: 0,
            max_timeouts: 3,
            augment: toml::Table::new(),
        }
    }
}

/// Keys that change where or how often things are written, not the weights a run produces:
/// they may differ between a run and its resumption.
const BOOKKEEPING: [&str; 12] = [
    "data_dir",
    "exp_dir",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "knn_every",
    "knn_k",
    "knn_train_samples",
    "knn_test_samples",
    "max_steps",
    "max_timeouts",
    "deterministic",
];

impl PretrainConfig {
    /// Defaults, overridden by the TOML file (if any), overridden by `flags`.
    pub fn resolve(file: Option<&Path>, flags: toml::Table) -> Result<PretrainConfig> {
        let mut config: PretrainConfig =
            crate::method::layers::resolve(file, flags, "pretraining")?;
        let net = config.net()?;
        (config.stem, config.width, config.depth) = (net.stem, Some(net.width), net.depth);
        config.check_values()?;
        Ok(config)
    }

    /// The backbone's architecture and shape, defaults filled in.
    pub fn net(&self) -> Result<NetSpec> {
        NetSpec::new(self.arch, self.stem, self.width, self.depth)
            .with_context(|| format!("--arch {}", self.arch))
    }

    /// Everything that can be checked without the data or the cluster.
    fn check_values(&self) -> Result<()> {
        crate::method::layers::check_dirs(&self.data_dir, &self.exp_dir)?;
        ensure!(self.epochs > 0, "--epochs must be at least 1");
        ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        positive("--base-lr", self.base_lr)?;
        positive("-T/--temperature", self.temperature)?;
        for (name, v) in [
            ("--wd", self.wd),
            ("-I/--sim-coeff", self.sim_coeff),
            ("-V/--std-coeff", self.std_coeff),
            ("-C/--cov-coeff", self.cov_coeff),
        ] {
            ensure!(v >= 0.0 && v.is_finite(), "{name} must be ≥ 0, not {v}");
        }
        ensure!(
            self.keep_checkpoints >= 1,
            "--keep-checkpoints must be at least 1"
        );
        ensure!(self.log_every >= 1, "--log-every must be at least 1");
        ensure!(self.knn_k >= 1, "--knn-k must be at least 1");
        parse_mlp(&self.mlp).context("--mlp")?;
        self.augment_for(32, DatasetName::Cifar10)?;
        self.check_stream()
    }

    pub fn streams(&self) -> bool {
        self.stream == Some(true)
    }

    /// A streamed run cuts its crops at `--image-size` and decodes the kNN monitor's bank.
    fn check_stream(&self) -> Result<()> {
        if !self.streams() {
            ensure!(
                self.decode_scale.is_none(),
                "--decode-scale applies to streamed training images: add --stream"
            );
            return Ok(());
        }
        ensure!(
            self.image_size.is_some(),
            "--stream needs --image-size S, the side of the crops both views are cut to"
        );
        ensure!(
            self.knn_every == 0 || self.knn_train_samples > 0,
            "--stream with the kNN monitor decodes its bank into memory: set \
             --knn-train-samples N (N > 0), or --knn-every 0"
        );
        Ok(())
    }

    /// Settings that are legal but probably not meant, as sentences for the log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.warmup_epochs > self.epochs {
            warnings.push(format!(
                "--warmup-epochs {} is longer than the run (--epochs {}): the warm-up is cut to \
                 the run, so the learning rate rises until the last step and never decays; \
                 lower --warmup-epochs",
                self.warmup_epochs, self.epochs
            ));
        }
        warnings
    }

    /// Checks that need the job: the global batch splits evenly over `world` ranks and the
    /// training split holds at least one batch.
    pub fn check_job(&self, world: usize, train_images: usize) -> Result<()> {
        ensure!(
            self.batch_size.is_multiple_of(world),
            "--batch-size {} (the global batch) is not divisible by the {world} ranks of this job; \
             use a multiple of {world}",
            self.batch_size
        );
        ensure!(
            train_images >= self.batch_size,
            "the training set has {train_images} images, fewer than one batch of {}; lower \
             --batch-size",
            self.batch_size
        );
        Ok(())
    }

    /// The dataset in `data_dir`, checked against `dataset` when given.
    pub fn source(&self) -> Result<Source> {
        Source::detect(&self.data_dir)?
            .with_images(ImageOptions::from_keys(self.image_size, self.bad_images))
            .with_shared_dir(self.shared_dir.clone())
            .as_dataset(self.dataset.as_deref(), &self.data_dir)
    }

    pub fn loss(&self) -> SslLoss {
        let weights = VicregWeights {
            sim: self.sim_coeff,
            std: self.std_coeff,
            cov: self.cov_coeff,
        };
        SslLoss::new(self.method, self.temperature, weights)
    }

    /// The two views' recipes for images of side `side` from `dataset`: the method's recipe
    /// normalized with the dataset's statistics, then the `[augment]` overrides, then each
    /// view's (see [`view_recipes`]).
    pub fn augment_views(&self, side: i64, dataset: DatasetName) -> Result<[AugmentConfig; 2]> {
        let mut base = match self.method {
            Method::Simclr => AugmentConfig::simclr(),
            Method::Vicreg => AugmentConfig::vicreg(),
        };
        base.size = side;
        let stats = Normalization::of_dataset(dataset);
        (base.mean, base.std) = (stats.mean, stats.std);
        view_recipes(&base, &self.augment)
    }

    /// The first view's recipe (its size and normalization are both views').
    pub fn augment_for(&self, side: i64, dataset: DatasetName) -> Result<AugmentConfig> {
        let [first, _] = self.augment_views(side, dataset)?;
        Ok(first)
    }

    /// The configuration as TOML, as written to `<exp-dir>/config.toml`.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("serializing the configuration")
    }

    /// The keys that decide the weights, as JSON (bookkeeping keys left out).
    pub fn trajectory(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
        let serde_json::Value::Object(mut map) = serde_json::to_value(self)? else {
            bail!("the configuration did not serialize to an object");
        };
        for key in BOOKKEEPING {
            map.remove(key);
        }
        Ok(map)
    }

    /// SHA-256 of [`trajectory`](Self::trajectory): a checkpoint from another configuration
    /// must not be resumed silently.
    pub fn hash(&self) -> Result<String> {
        let json = serde_json::to_string(&self.trajectory()?)?;
        Ok(hex::encode(Sha256::digest(json.as_bytes())))
    }
}

pub use crate::data::normalization::{FASHION_MNIST_MEAN, FASHION_MNIST_STD};

fn positive(name: &str, v: f64) -> Result<()> {
    ensure!(v > 0.0 && v.is_finite(), "{name} must be positive, not {v}");
    Ok(())
}

/// The keys on which two trajectories differ, for the resume error message.
pub fn differing_keys(
    a: &serde_json::Map<String, serde_json::Value>,
    b: &serde_json::Map<String, serde_json::Value>,
) -> Vec<String> {
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&str, toml::Value)]) -> toml::Table {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn required() -> Vec<(&'static str, toml::Value)> {
        vec![("data_dir", "/d".into()), ("exp_dir", "/e".into())]
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.toml");
        std::fs::write(&file, "epochs = 7\nbatch_size = 64\n[augment]\nsize = 24\n").unwrap();
        let mut f = required();
        f.push(("batch_size", 32.into()));
        let c = PretrainConfig::resolve(Some(&file), flags(&f)).unwrap();
        assert_eq!((c.epochs, c.batch_size, c.base_lr), (7, 32, 0.2));
        assert_eq!(
            c.augment_for(28, DatasetName::FashionMnist).unwrap().size,
            24
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let mut f = required();
        f.push(("epoch", 3.into()));
        let err = PretrainConfig::resolve(None, flags(&f)).unwrap_err();
        assert!(format!("{err:#}").contains("epoch"), "{err:#}");
        let mut f = required();
        f.push(("augment", toml::Value::Table(flags(&[("sise", 3.into())]))));
        let c = PretrainConfig::resolve(None, flags(&f));
        assert!(format!("{:#}", c.unwrap_err()).contains("sise"));
    }

    #[test]
    fn impossible_values_are_refused() {
        for (key, value) in [
            ("epochs", toml::Value::from(0)),
            ("temperature", 0.0.into()),
            ("mlp", "1024-x".into()),
            ("keep_checkpoints", 0.into()),
        ] {
            let mut f = required();
            f.push((key, value));
            assert!(PretrainConfig::resolve(None, flags(&f)).is_err(), "{key}");
        }
        let c = PretrainConfig::resolve(None, flags(&required())).unwrap();
        let err = c.check_job(3, 1000).unwrap_err().to_string();
        assert!(err.contains("not divisible by the 3 ranks"), "{err}");
        assert!(c.check_job(2, 100).is_err());
    }

    /// A ResNet configuration serializes `stem` and `width` as it did before they became
    /// optional and has no `depth` key, so its hash (of this JSON) is unchanged and checkpoints
    /// of older runs still resume.
    #[test]
    fn resnet_hash_is_unchanged_by_the_new_keys() {
        let c = PretrainConfig::resolve(None, flags(&required())).unwrap();
        assert_eq!(
            (c.stem, c.width, c.depth),
            (Some(Stem::Cifar), Some(64), None)
        );
        let json = serde_json::to_value(c.trajectory().unwrap()).unwrap();
        assert_eq!(
            (&json["stem"], &json["width"]),
            (&"cifar".into(), &64.into())
        );
        assert!(json.get("depth").is_none(), "{json}");
    }

    #[test]
    fn architecture_defaults_and_refusals() {
        let mut f = required();
        f.push(("arch", "wrn".into()));
        let c = PretrainConfig::resolve(None, flags(&f)).unwrap();
        assert_eq!((c.stem, c.width, c.depth), (None, Some(10), Some(28)));
        let toml = c.to_toml().unwrap();
        assert!(
            toml.contains("depth = 28") && !toml.contains("stem"),
            "{toml}"
        );
        f.push(("stem", "cifar".into()));
        let err = format!(
            "{:#}",
            PretrainConfig::resolve(None, flags(&f)).unwrap_err()
        );
        assert!(
            err.contains("--stem cifar applies only to resnet18"),
            "{err}"
        );
        let mut f = required();
        f.push(("depth", 16.into()));
        let err = format!(
            "{:#}",
            PretrainConfig::resolve(None, flags(&f)).unwrap_err()
        );
        assert!(
            err.contains("--depth 16 applies only to --arch wrn"),
            "{err}"
        );
    }

    #[test]
    fn bookkeeping_keys_do_not_change_the_hash() {
        let a = PretrainConfig::resolve(None, flags(&required())).unwrap();
        let mut b = a.clone();
        b.exp_dir = "/elsewhere".into();
        b.knn_every = 5;
        assert_eq!(a.hash().unwrap(), b.hash().unwrap());
        b.seed = 1;
        assert_ne!(a.hash().unwrap(), b.hash().unwrap());
        let keys = differing_keys(&a.trajectory().unwrap(), &b.trajectory().unwrap());
        assert_eq!(keys, ["seed"]);
    }
}
