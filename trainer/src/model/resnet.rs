//! ResNet-18/34/50 backbones whose variables carry torchvision's state_dict names.
//!
//! The pretrained backbone is the product of this project: it is exported and loaded into an
//! *unmodified* `torchvision.models.resnetXX` (with `fc = Identity`, and for the CIFAR stem
//! `conv1 = Conv2d(3, 64, 3, 1, 1, bias=False)`, `maxpool = Identity`). Hence the same names
//! (`layer2.0.downsample.1.running_var`, …), the same shapes, torchvision's v1.5 layout (the
//! stride of a Bottleneck sits on its 3×3 conv), its initialization (kaiming-normal fan-out convs,
//! `zero_init_residual=True`) and always three input channels (see [`to_rgb`](super::to_rgb)).
//!
//! Every batch norm is a [`SyncBatchNorm`](crate::distributed::sync_bn::SyncBatchNorm), so a distributed run normalizes with the statistics
//! of the global batch, as `nn.SyncBatchNorm.convert_sync_batchnorm` does in the reference code.
//! The forward pass is memory-format agnostic: convolutions, batch norm, pooling and the residual
//! additions all accept channels-last input, and nothing calls `view` on the activations.

use super::arch::{Arch, Stem, STANDARD_WIDTH};
use super::layers::{check_input, global_pool, ConvBn, ConvSpec, IN_CHANNELS};
use crate::distributed::{DistError, ProcessGroup};
use tch::nn::Path;
use tch::Tensor;

/// The two residual blocks of torchvision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockKind {
    /// Two 3×3 convs (ResNet-18/34).
    Basic,
    /// 1×1 reduce, 3×3, 1×1 expand by 4 (ResNet-50).
    Bottleneck,
}

/// Blocks in layer1..layer4 and their kind.
fn layout(arch: Arch) -> ([usize; 4], BlockKind) {
    match arch {
        Arch::Resnet18 => ([2, 2, 2, 2], BlockKind::Basic),
        Arch::Resnet34 => ([3, 4, 6, 3], BlockKind::Basic),
        Arch::Resnet50 => ([3, 4, 6, 3], BlockKind::Bottleneck),
        other => panic!("{other} is not a torchvision ResNet"),
    }
}

impl BlockKind {
    /// Output channels of a block = planes × expansion.
    fn expansion(self) -> i64 {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }

    /// The convs of the residual branch, in order (named conv1, conv2, … with bn1, bn2, …).
    fn branch(self, c_in: i64, planes: i64, stride: i64) -> Vec<ConvSpec> {
        match self {
            BlockKind::Basic => vec![
                ConvSpec::new(c_in, planes, 3, stride),
                ConvSpec::new(planes, planes, 3, 1),
            ],
            BlockKind::Bottleneck => vec![
                ConvSpec::new(c_in, planes, 1, 1),
                ConvSpec::new(planes, planes, 3, stride),
                ConvSpec::new(planes, planes * 4, 1, 1),
            ],
        }
    }
}

/// A residual block: `relu(branch(x) + shortcut(x))`, the shortcut being x itself or a strided
/// 1×1 conv + BN (`downsample`) when the shape changes.
#[derive(Debug)]
pub struct Block {
    branch: Vec<ConvBn>,
    downsample: Option<ConvBn>,
    in_channels: i64,
}

impl Block {
    fn new(p: &Path, kind: BlockKind, c_in: i64, planes: i64, stride: i64) -> Block {
        let specs = kind.branch(c_in, planes, stride);
        let branch: Vec<ConvBn> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| ConvBn::new(p / format!("conv{}", i + 1), p / format!("bn{}", i + 1), *s))
            .collect();
        let c_out = planes * kind.expansion();
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = p / "downsample";
            ConvBn::new(&d / "0", &d / "1", ConvSpec::new(c_in, c_out, 1, stride))
        });
        zero_init_residual(&branch);
        Block {
            branch,
            downsample,
            in_channels: c_in,
        }
    }

    /// Channels this block expects.
    pub fn in_channels(&self) -> i64 {
        self.in_channels
    }

    /// The whole block: `relu(branch(x) + shortcut(x))`.
    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        let mut h = x.shallow_clone();
        for (i, cb) in self.branch.iter().enumerate() {
            h = cb.forward(&h, train, group)?;
            if i + 1 < self.branch.len() {
                h = h.relu();
            }
        }
        Ok((h + self.shortcut(x, train, group)?).relu())
    }

    /// The identity path: x, or `downsample(x)` when the block changes shape.
    pub fn shortcut(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        match &self.downsample {
            Some(d) => d.forward(x, train, group),
            None => Ok(x.shallow_clone()),
        }
    }
}

/// torchvision's `zero_init_residual=True`: the last BN of each branch starts with weight 0, so
/// every block starts as `relu(shortcut(x))` and the deep network trains like a shallow one at
/// first (Goyal et al. 2017). The reference SSL code (VICReg, Barlow Twins) builds its ResNets so.
fn zero_init_residual(branch: &[ConvBn]) {
    if let Some(last) = branch.last() {
        tch::no_grad(|| {
            let _ = last.bn.weight.shallow_clone().zero_();
        });
    }
}

/// A ResNet backbone without its classifier: image batch → pooled embedding.
#[derive(Debug)]
pub struct ResNet {
    arch: Arch,
    stem: Stem,
    width: i64,
    conv1: ConvBn,
    layers: Vec<Vec<Block>>,
}

impl ResNet {
    /// Variables go directly under `p` (`conv1.weight`, `layer1.0.bn1.weight`, …): pass
    /// `vs.root()` to get torchvision's state_dict names, or `vs.root() / "backbone"` to nest.
    pub fn new(p: &Path, arch: Arch, stem: Stem) -> ResNet {
        Self::with_width(p, arch, stem, STANDARD_WIDTH)
    }

    /// A ResNet whose layers are `width`, 2·`width`, 4·`width`, 8·`width` channels wide. Narrow
    /// widths make CPU tests and smoke runs fast; only [`STANDARD_WIDTH`] loads into torchvision.
    pub fn with_width(p: &Path, arch: Arch, stem: Stem, width: i64) -> ResNet {
        let conv1 = match stem {
            Stem::Cifar => ConvSpec::new(IN_CHANNELS, width, 3, 1),
            Stem::Imagenet => ConvSpec::new(IN_CHANNELS, width, 7, 2),
        };
        let mut c_in = width;
        let (depths, kind) = layout(arch);
        let layers = (0..4)
            .map(|i| {
                let layer = p / format!("layer{}", i + 1);
                let planes = width << i;
                let first_stride = if i == 0 { 1 } else { 2 };
                (0..depths[i])
                    .map(|j| {
                        let stride = if j == 0 { first_stride } else { 1 };
                        let block = Block::new(&(&layer / j), kind, c_in, planes, stride);
                        c_in = planes * kind.expansion();
                        block
                    })
                    .collect()
            })
            .collect();
        ResNet {
            arch,
            stem,
            width,
            conv1: ConvBn::new(p / "conv1", p / "bn1", conv1),
            layers,
        }
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn stem(&self) -> Stem {
        self.stem
    }

    /// Width of the embedding.
    pub fn embedding_dim(&self) -> i64 {
        self.width * 8 * layout(self.arch).1.expansion()
    }

    /// Channels after the stem (64 in torchvision).
    pub fn width(&self) -> i64 {
        self.width
    }

    /// The residual blocks with their torchvision names (`layer2.0`, …), in forward order.
    pub fn blocks(&self) -> impl Iterator<Item = (String, &Block)> {
        self.layers.iter().enumerate().flat_map(|(i, layer)| {
            layer
                .iter()
                .enumerate()
                .map(move |(j, b)| (format!("layer{}.{j}", i + 1), b))
        })
    }

    /// N×3×H×W images (contiguous or channels-last) → N×embedding_dim, after global average
    /// pooling. `train` selects batch statistics (synchronized over `group`) in every BN.
    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        check_input(x, "ResNet::forward", group)?;
        let mut h = self.conv1.forward(x, train, group)?.relu();
        if self.stem == Stem::Imagenet {
            h = h.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for (_, block) in self.blocks() {
            h = block.forward(&h, train, group)?;
        }
        Ok(global_pool(&h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::ProcessGroup;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    /// kaiming_normal fan_out: std = sqrt(2 / (out · k²)); checked on the large convs only,
    /// where the sample std is within a few percent.
    #[test]
    fn conv_init_is_kaiming_fan_out() {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let _ = ResNet::new(&vs.root(), Arch::Resnet18, Stem::Cifar);
        for (name, w) in vs.variables() {
            if w.dim() != 4 || w.numel() < 100_000 {
                continue;
            }
            let s = w.size();
            let expected = (2.0 / (s[0] * s[2] * s[3]) as f64).sqrt();
            let std = w.std(true).double_value(&[]);
            assert!(
                (std / expected - 1.0).abs() < 0.05,
                "{name}: {std} vs {expected}"
            );
        }
    }

    #[test]
    fn rejects_wrong_channels() {
        let vs = VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), Arch::Resnet18, Stem::Cifar);
        let x = Tensor::zeros([2, 1, 8, 8], (Kind::Float, Device::Cpu));
        let err = net
            .forward(&x, false, &ProcessGroup::single(Device::Cpu))
            .unwrap_err()
            .to_string();
        assert!(err.contains("to_rgb"), "{err}");
    }
}
