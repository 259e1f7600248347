//! PreAct ResNet-18 as SSR defines it (github MrChenFeng/SSR_BMVC2022, `models/preresnet.py`,
//! `PreResNet18`; DivideMix's `PreResNet.py` is the same network with `linear` for `fc`).
//!
//! Variables carry that module's state_dict names (`conv1`, `bn1`, `layer2.0.bn1`,
//! `layer2.0.shortcut.0`, …) and its init (`nn.Conv2d`'s own). Its forward is kept as written,
//! including what its docstring calls the wrong order: the stem is conv → BN → ReLU, each block
//! adds `shortcut(relu(bn1(x)))` (the *pre-activated* input, also when the shortcut is the empty
//! `nn.Sequential`) to the branch and applies no ReLU after the sum, and no BN-ReLU follows
//! layer4. The reference pools with `avg_pool2d(out, 4)`, the whole map at 32×32 input; we pool
//! globally, which is that at 32×32 and defined at every size.

use super::layers::{bn_relu, check_input, global_pool, ConvBn, ConvInit, ConvSpec};
use crate::distributed::sync_bn::SyncBatchNorm;
use crate::distributed::{DistError, ProcessGroup};
use tch::nn::{Conv2D, Path};
use tch::Tensor;

/// Blocks in layer1..layer4 of PreResNet18.
const DEPTHS: [usize; 4] = [2, 2, 2, 2];

/// `conv3x3` / the 1×1 shortcut, with `nn.Conv2d`'s default initialization.
fn conv(c_in: i64, c_out: i64, kernel: i64, stride: i64) -> ConvSpec {
    ConvSpec::new(c_in, c_out, kernel, stride).with_init(ConvInit::TorchDefault)
}

/// `PreActBlock`: `conv2(relu(bn2(conv1(a)))) + shortcut(a)` with `a = relu(bn1(x))`.
#[derive(Debug)]
struct PreActBlock {
    bn1: SyncBatchNorm,
    conv1: Conv2D,
    bn2: SyncBatchNorm,
    conv2: Conv2D,
    /// `shortcut.0`: a strided 1×1 conv (no BN) when the shape changes.
    shortcut: Option<Conv2D>,
}

impl PreActBlock {
    fn new(p: &Path, c_in: i64, planes: i64, stride: i64) -> PreActBlock {
        PreActBlock {
            bn1: SyncBatchNorm::new(p / "bn1", c_in),
            conv1: conv(c_in, planes, 3, stride).build(p / "conv1"),
            bn2: SyncBatchNorm::new(p / "bn2", planes),
            conv2: conv(planes, planes, 3, 1).build(p / "conv2"),
            shortcut: (stride != 1 || c_in != planes)
                .then(|| conv(c_in, planes, 1, stride).build(p / "shortcut" / "0")),
        }
    }

    fn forward(&self, x: &Tensor, train: bool, group: &ProcessGroup) -> Result<Tensor, DistError> {
        let a = bn_relu(&self.bn1, x, train, group)?;
        let shortcut = match &self.shortcut {
            Some(c) => a.apply(c),
            None => a.shallow_clone(),
        };
        let h = bn_relu(&self.bn2, &a.apply(&self.conv1), train, group)?;
        Ok(h.apply(&self.conv2) + shortcut)
    }
}

/// SSR's PreResNet18 without its classifier: image batch → pooled embedding.
#[derive(Debug)]
pub struct PreActResNet {
    stem: ConvBn,
    blocks: Vec<PreActBlock>,
    width: i64,
}

impl PreActResNet {
    /// Stages of `width`, 2·`width`, 4·`width`, 8·`width` channels (64 in the reference).
    pub fn new(p: &Path, width: i64) -> PreActResNet {
        let mut c_in = width;
        let mut blocks = Vec::new();
        for (i, depth) in DEPTHS.iter().enumerate() {
            let layer = p / format!("layer{}", i + 1);
            let planes = width << i;
            for j in 0..*depth {
                let stride = if i > 0 && j == 0 { 2 } else { 1 };
                blocks.push(PreActBlock::new(&(&layer / j), c_in, planes, stride));
                c_in = planes;
            }
        }
        PreActResNet {
            stem: ConvBn::new(p / "conv1", p / "bn1", conv(3, width, 3, 1)),
            blocks,
            width,
        }
    }

    pub fn embedding_dim(&self) -> i64 {
        self.width * 8
    }

    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        check_input(x, "PreActResNet::forward", group)?;
        let mut h = self.stem.forward(x, train, group)?.relu();
        for block in &self.blocks {
            h = block.forward(&h, train, group)?;
        }
        Ok(global_pool(&h))
    }
}
