//! Wide ResNet WRN-d-k for CIFAR as xternalz/WideResNet-pytorch `wideresnet.py` defines it, the
//! module the CIFAR noisy-label and semi-supervised code copies (Meta-Weight-Net's
//! `wideresnet.py`, FixMatch-pytorch's `models/wideresnet.py` keep its names). Dropout is 0.
//! FixMatch's copy differs in its numerics (LeakyReLU 0.1, BN momentum 0.001), not in its names.
//!
//! Names: `conv1` (3 → 16), `block{1,2,3}.layer.{i}.{bn1,conv1,bn2,conv2,convShortcut}`, the
//! final `bn1`, and the classifier `fc`. Channels 16·k, 32·k, 64·k; (d − 4) / 6 blocks a stage.
//! Convs start as `normal_(0, sqrt(2 / (k·k·out)))`, i.e. kaiming-normal fan-out.

use super::arch::NetSpec;
use super::layers::{bn_relu, check_input, global_pool, ConvSpec};
use crate::distributed::sync_bn::SyncBatchNorm;
use crate::distributed::{DistError, ProcessGroup};
use tch::nn::{Conv2D, Path};
use tch::Tensor;

/// Channels of the stem conv, whatever the widen factor.
const STEM_CHANNELS: i64 = 16;

/// `BasicBlock`: `shortcut + conv2(relu(bn2(conv1(relu(bn1(x))))))`. The shortcut is x itself
/// when the channels stay (`equalInOut`), else `convShortcut(relu(bn1(x)))`: the reference
/// then overwrites x with its activation before both paths.
#[derive(Debug)]
struct WideBlock {
    bn1: SyncBatchNorm,
    conv1: Conv2D,
    bn2: SyncBatchNorm,
    conv2: Conv2D,
    conv_shortcut: Option<Conv2D>,
}

impl WideBlock {
    fn new(p: &Path, c_in: i64, c_out: i64, stride: i64) -> WideBlock {
        WideBlock {
            bn1: SyncBatchNorm::new(p / "bn1", c_in),
            conv1: ConvSpec::new(c_in, c_out, 3, stride).build(p / "conv1"),
            bn2: SyncBatchNorm::new(p / "bn2", c_out),
            conv2: ConvSpec::new(c_out, c_out, 3, 1).build(p / "conv2"),
            conv_shortcut: (c_in != c_out)
                .then(|| ConvSpec::new(c_in, c_out, 1, stride).build(p / "convShortcut")),
        }
    }

    fn forward(&self, x: &Tensor, train: bool, group: &ProcessGroup) -> Result<Tensor, DistError> {
        let a = bn_relu(&self.bn1, x, train, group)?;
        let shortcut = match &self.conv_shortcut {
            Some(c) => a.apply(c),
            None => x.shallow_clone(),
        };
        let h = bn_relu(&self.bn2, &a.apply(&self.conv1), train, group)?;
        Ok(shortcut + h.apply(&self.conv2))
    }
}

/// WideResNet without its classifier: image batch → `relu(bn1(·))`, pooled.
#[derive(Debug)]
pub struct WideResNet {
    conv1: Conv2D,
    blocks: Vec<WideBlock>,
    bn1: SyncBatchNorm,
    channels: i64,
}

impl WideResNet {
    /// WRN-`spec.depth`-`spec.width` (the widen factor k).
    pub fn new(p: &Path, spec: &NetSpec) -> WideResNet {
        let k = spec.width;
        let mut c_in = STEM_CHANNELS;
        let mut blocks = Vec::new();
        for g in 0..3 {
            let stage = p / format!("block{}", g + 1) / "layer";
            let c_out = (STEM_CHANNELS << g) * k;
            for i in 0..spec.wrn_blocks() {
                let stride = if g > 0 && i == 0 { 2 } else { 1 };
                blocks.push(WideBlock::new(&(&stage / i), c_in, c_out, stride));
                c_in = c_out;
            }
        }
        WideResNet {
            conv1: ConvSpec::new(3, STEM_CHANNELS, 3, 1).build(p / "conv1"),
            blocks,
            bn1: SyncBatchNorm::new(p / "bn1", c_in),
            channels: c_in,
        }
    }

    pub fn embedding_dim(&self) -> i64 {
        self.channels
    }

    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        check_input(x, "WideResNet::forward", group)?;
        let mut h = x.apply(&self.conv1);
        for block in &self.blocks {
            h = block.forward(&h, train, group)?;
        }
        Ok(global_pool(&bn_relu(&self.bn1, &h, train, group)?))
    }
}
