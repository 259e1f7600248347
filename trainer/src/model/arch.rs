//! Which network: the architecture names of the command line, and [`NetSpec`], an architecture
//! with its checked, defaulted shape parameters (stem, width, depth).

use anyhow::{bail, ensure, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Backbone architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// torchvision's ResNet-18.
    #[value(name = "resnet18")]
    Resnet18,
    /// torchvision's ResNet-34.
    #[value(name = "resnet34")]
    Resnet34,
    /// torchvision's ResNet-50.
    #[value(name = "resnet50")]
    Resnet50,
    /// PreAct ResNet-18 of SSR / DivideMix.
    #[value(name = "preact18")]
    Preact18,
    /// Wide ResNet WRN-depth-width (xternalz/WideResNet-pytorch).
    #[value(name = "wrn")]
    Wrn,
    /// The CIFAR ResNet-32 of Meta-Weight-Net.
    #[value(name = "resnet32")]
    Resnet32,
}

/// The first layers of a torchvision ResNet: what the input resolution calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// 3×3 stride-1 conv, no max-pool: 32×32 images keep their resolution (CIFAR, Fashion-MNIST).
    Cifar,
    /// torchvision's 7×7 stride-2 conv and 3×3 stride-2 max-pool, for ≥ 224-pixel images.
    Imagenet,
}

/// torchvision's base width: channels after the stem.
pub const STANDARD_WIDTH: i64 = 64;
/// WRN-28-10, the Wide ResNet of the CIFAR papers.
pub const WRN_DEPTH: i64 = 28;
pub const WRN_WIDEN: i64 = 10;

/// How an architecture's reference initializes its classifier, `nn.Linear(embedding, K)`, for a
/// network trained from scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifierInit {
    /// PyTorch's `nn.Linear`: weight and bias U(±1/√fan_in) (torchvision's ResNets, which leave
    /// `fc` as built, and SSR's PreAct ResNet).
    Torch,
    /// Meta-Weight-Net's ResNet-32 (`_weights_init`): the weight `kaiming_normal_`,
    /// N(0, 2/fan_in); the bias PyTorch's.
    KaimingNormalWeight,
    /// The Wide ResNet reference: the weight PyTorch's, the bias zero.
    ZeroBias,
}

impl Arch {
    /// How this architecture's reference initializes its classifier.
    pub fn classifier_init(self) -> ClassifierInit {
        match self {
            Arch::Resnet32 => ClassifierInit::KaimingNormalWeight,
            Arch::Wrn => ClassifierInit::ZeroBias,
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 | Arch::Preact18 => {
                ClassifierInit::Torch
            }
        }
    }

    /// torchvision's ResNets: the only ones with a choice of stem.
    pub fn is_torchvision(self) -> bool {
        matches!(self, Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50)
    }

    /// `--width` when not given: the reference's base width (the widen factor for `wrn`).
    pub fn default_width(self) -> i64 {
        match self {
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 | Arch::Preact18 => STANDARD_WIDTH,
            Arch::Wrn => WRN_WIDEN,
            Arch::Resnet32 => 16,
        }
    }

    /// Width of the embedding at the default width and depth.
    pub fn embedding_dim(self) -> i64 {
        NetSpec::new(self, None, None, None)
            .expect("the defaults are valid")
            .embedding_dim()
    }

    /// The reference's classifier attribute: a whole network is the backbone plus a linear layer
    /// under this name (`fc.weight`, `fc.bias` or `linear.weight`, …), as its `state_dict` has it.
    pub fn classifier_prefix(self) -> &'static str {
        match self {
            // torchvision; SSR's models/preresnet.py; xternalz's wideresnet.py.
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 | Arch::Preact18 | Arch::Wrn => "fc",
            // Meta-Weight-Net's resnet.py (`ResNet32.linear`).
            Arch::Resnet32 => "linear",
        }
    }
}

/// An architecture with its shape: `stem` only for torchvision ResNets, `depth` only for `wrn`.
/// Built by [`NetSpec::new`], which fills the defaults and refuses what an architecture lacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetSpec {
    pub arch: Arch,
    pub stem: Option<Stem>,
    /// Base width (channels of the first stage) or, for `wrn`, the widen factor k.
    pub width: i64,
    pub depth: Option<i64>,
}

impl NetSpec {
    /// `arch` with the given `--stem/--width/--depth` (None: the architecture's default).
    pub fn new(
        arch: Arch,
        stem: Option<Stem>,
        width: Option<i64>,
        depth: Option<i64>,
    ) -> Result<NetSpec> {
        if let (Some(s), false) = (stem, arch.is_torchvision()) {
            bail!(
                "--stem {s} applies only to resnet18, resnet34 and resnet50; {arch} has its \
                 reference's fixed CIFAR stem, so leave --stem out"
            );
        }
        if let (Some(d), false) = (depth, arch == Arch::Wrn) {
            bail!("--depth {d} applies only to --arch wrn; {arch} has a fixed depth, so leave --depth out");
        }
        let width = width.unwrap_or(arch.default_width());
        ensure!(width > 0, "--width must be positive, not {width}");
        if arch == Arch::Resnet32 {
            // Option-A shortcuts pad planes/4 zero channels on each side of planes/2.
            ensure!(
                width % 2 == 0,
                "--width {width}: resnet32 needs an even width (its shortcuts pad the channels \
                 equally on both sides)"
            );
        }
        let depth = (arch == Arch::Wrn).then(|| depth.unwrap_or(WRN_DEPTH));
        if let Some(d) = depth {
            ensure!(
                d >= 10 && (d - 4) % 6 == 0,
                "--depth {d}: a Wide ResNet has depth 6n + 4 with n ≥ 1 (10, 16, 22, 28, 34, 40, …)"
            );
        }
        let stem = arch.is_torchvision().then(|| stem.unwrap_or(Stem::Cifar));
        Ok(NetSpec {
            arch,
            stem,
            width,
            depth,
        })
    }

    /// Width of the pooled embedding the backbone returns.
    pub fn embedding_dim(&self) -> i64 {
        match self.arch {
            Arch::Resnet18 | Arch::Resnet34 | Arch::Preact18 => self.width * 8,
            Arch::Resnet50 => self.width * 8 * 4,
            Arch::Wrn => 64 * self.width,
            Arch::Resnet32 => self.width * 4,
        }
    }

    /// Blocks per stage of a Wide ResNet: (depth − 4) / 6.
    pub fn wrn_blocks(&self) -> usize {
        ((self.depth.unwrap_or(WRN_DEPTH) - 4) / 6) as usize
    }
}

impl fmt::Display for NetSpec {
    /// e.g. "resnet18 (cifar stem, width 64)", "wrn (depth 28, widen factor 10)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.stem, self.depth) {
            (Some(s), _) => write!(f, "{} ({s} stem, width {})", self.arch, self.width),
            (None, Some(d)) => write!(f, "{} (depth {d}, widen factor {})", self.arch, self.width),
            (None, None) => write!(f, "{} (width {})", self.arch, self.width),
        }
    }
}

/// `Display` and `FromStr` use the command-line names, so configs and flags agree.
fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .expect("no skipped variants")
        .get_name()
        .to_owned()
}

fn parse_value<T: ValueEnum>(s: &str, what: &str) -> Result<T> {
    match T::from_str(s, true) {
        Ok(v) => Ok(v),
        Err(_) => {
            let names: Vec<String> = T::value_variants().iter().map(value_name).collect();
            bail!(
                "unknown {what} '{s}' (expected one of: {})",
                names.join(", ")
            )
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&value_name(self))
    }
}

impl FromStr for Arch {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Arch> {
        parse_value(s, "architecture")
    }
}

impl fmt::Display for Stem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&value_name(self))
    }
}

impl FromStr for Stem {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Stem> {
        parse_value(s, "stem")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for arch in Arch::value_variants() {
            assert_eq!(arch.to_string().parse::<Arch>().unwrap(), *arch);
            let json = serde_json::to_value(arch).unwrap();
            assert_eq!(json, serde_json::Value::from(arch.to_string()));
        }
        assert_eq!("imagenet".parse::<Stem>().unwrap(), Stem::Imagenet);
        assert_eq!(Arch::Resnet50.to_string(), "resnet50");
        let err = "resnet101".parse::<Arch>().unwrap_err().to_string();
        assert!(
            err.contains("resnet18, resnet34, resnet50, preact18, wrn, resnet32"),
            "{err}"
        );
    }

    /// 512 and 2048 are torchvision's; 512 SSR's PreAct-18 (`512 * expansion`), 640 WRN-28-10's
    /// `nChannels[3] = 64 * 10`, 64 Meta-Weight-Net's `MetaLinear(64, num_classes)`.
    #[test]
    fn embedding_dims() {
        let dims: Vec<i64> = Arch::value_variants()
            .iter()
            .map(|a| a.embedding_dim())
            .collect();
        assert_eq!(dims, [512, 512, 2048, 512, 640, 64]);
    }

    #[test]
    fn defaults_fill_in_per_architecture() {
        let wrn = NetSpec::new(Arch::Wrn, None, None, None).unwrap();
        assert_eq!((wrn.stem, wrn.width, wrn.depth), (None, 10, Some(28)));
        assert_eq!(wrn.wrn_blocks(), 4);
        let r18 = NetSpec::new(Arch::Resnet18, None, None, None).unwrap();
        assert_eq!(
            (r18.stem, r18.width, r18.depth),
            (Some(Stem::Cifar), 64, None)
        );
        let r32 = NetSpec::new(Arch::Resnet32, None, None, None).unwrap();
        assert_eq!((r32.stem, r32.width, r32.depth), (None, 16, None));
        assert_eq!(
            NetSpec::new(Arch::Preact18, None, None, None)
                .unwrap()
                .width,
            64
        );
    }

    #[test]
    fn refuses_what_an_architecture_lacks() {
        let cases = [
            (
                Arch::Preact18,
                Some(Stem::Cifar),
                None,
                None,
                "--stem cifar applies only to resnet18",
            ),
            (
                Arch::Wrn,
                Some(Stem::Imagenet),
                None,
                None,
                "--stem imagenet applies only",
            ),
            (
                Arch::Resnet18,
                None,
                None,
                Some(28),
                "--depth 28 applies only to --arch wrn",
            ),
            (
                Arch::Resnet32,
                None,
                None,
                Some(16),
                "--depth 16 applies only",
            ),
            (
                Arch::Wrn,
                None,
                None,
                Some(27),
                "--depth 27: a Wide ResNet has depth 6n + 4",
            ),
            (Arch::Wrn, None, None, Some(4), "--depth 4: a Wide ResNet"),
            (
                Arch::Resnet32,
                None,
                Some(15),
                None,
                "resnet32 needs an even width",
            ),
            (Arch::Wrn, None, Some(0), None, "--width must be positive"),
        ];
        for (arch, stem, width, depth, expected) in cases {
            let err = NetSpec::new(arch, stem, width, depth)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{arch}: {err}");
        }
    }
}
