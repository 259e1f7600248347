//! The CIFAR ResNet-32 of Meta-Weight-Net (github xjtushujun/meta-weight-net, `resnet.py`,
//! `ResNet32`): He et al.'s 6n+2 network with n = 5, stages of 16, 32, 64 channels (`width`,
//! 2·`width`, 4·`width`) and option-A shortcuts, which subsample x by 2 and pad the new channels
//! with zeros instead of a projection (no variables).
//!
//! Names as that module's with plain `nn` layers (its `MetaConv2d`/`MetaBatchNorm2d` expose the
//! same `weight`/`bias`/`running_*`): `conv1`, `bn1`, `layer{1,2,3}.{j}.{conv1,bn1,conv2,bn2}`,
//! and the classifier `linear`. Convs start as `init.kaiming_normal` (fan-in, gain √2).

use super::layers::{check_input, global_pool, ConvBn, ConvInit, ConvSpec};
use crate::distributed::{DistError, ProcessGroup};
use tch::nn::Path;
use tch::Tensor;

/// Blocks per stage (ResNet-32 = 6·5 + 2 layers).
const BLOCKS: usize = 5;

fn conv(c_in: i64, c_out: i64, stride: i64) -> ConvSpec {
    ConvSpec::new(c_in, c_out, 3, stride).with_init(ConvInit::KaimingFanIn)
}

/// `BasicBlock(option='A')`: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Debug)]
struct CifarBlock {
    conv1: ConvBn,
    conv2: ConvBn,
    /// Zero channels added on each side by the option-A shortcut (`planes // 4`), when the
    /// block changes shape.
    pad: Option<i64>,
}

impl CifarBlock {
    fn new(p: &Path, c_in: i64, planes: i64, stride: i64) -> CifarBlock {
        CifarBlock {
            conv1: ConvBn::new(p / "conv1", p / "bn1", conv(c_in, planes, stride)),
            conv2: ConvBn::new(p / "conv2", p / "bn2", conv(planes, planes, 1)),
            pad: (stride != 1 || c_in != planes).then_some(planes / 4),
        }
    }

    fn forward(&self, x: &Tensor, train: bool, group: &ProcessGroup) -> Result<Tensor, DistError> {
        let h = self.conv1.forward(x, train, group)?.relu();
        let h = self.conv2.forward(&h, train, group)?;
        Ok((h + self.shortcut(x)).relu())
    }

    /// `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))`.
    fn shortcut(&self, x: &Tensor) -> Tensor {
        match self.pad {
            None => x.shallow_clone(),
            Some(pad) => {
                let sub = x.slice(2, 0, None, 2).slice(3, 0, None, 2);
                sub.constant_pad_nd([0, 0, 0, 0, pad, pad])
            }
        }
    }
}

/// Meta-Weight-Net's ResNet32 without its classifier: image batch → pooled embedding.
#[derive(Debug)]
pub struct CifarResNet {
    stem: ConvBn,
    blocks: Vec<CifarBlock>,
    width: i64,
}

impl CifarResNet {
    /// Stages of `width`, 2·`width`, 4·`width` channels (16 in the reference; even widths only,
    /// which [`NetSpec::new`](super::NetSpec::new) checks).
    pub fn new(p: &Path, width: i64) -> CifarResNet {
        let mut c_in = width;
        let mut blocks = Vec::new();
        for i in 0..3 {
            let layer = p / format!("layer{}", i + 1);
            let planes = width << i;
            for j in 0..BLOCKS {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                blocks.push(CifarBlock::new(&(&layer / j), c_in, planes, stride));
                c_in = planes;
            }
        }
        CifarResNet {
            stem: ConvBn::new(p / "conv1", p / "bn1", conv(3, width, 1)),
            blocks,
            width,
        }
    }

    pub fn embedding_dim(&self) -> i64 {
        self.width * 4
    }

    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        check_input(x, "CifarResNet::forward", group)?;
        let mut h = self.stem.forward(x, train, group)?.relu();
        for block in &self.blocks {
            h = block.forward(&h, train, group)?;
        }
        Ok(global_pool(&h))
    }
}
