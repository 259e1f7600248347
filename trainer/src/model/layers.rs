//! Building blocks every backbone shares: a bias-free convolution with the initialization its
//! reference uses, a convolution followed by its batch norm, the input check and [`to_rgb`].

use crate::distributed::sync_bn::SyncBatchNorm;
use crate::distributed::{DistError, ProcessGroup};
use anyhow::{bail, Result};
use tch::nn::init::{FanInOut, NonLinearity, NormalOrUniform};
use tch::nn::{self, Init, Path};
use tch::Tensor;

/// Input channels of every backbone: the exported weights must fit the reference's `conv1`.
pub const IN_CHANNELS: i64 = 3;

/// How a reference initializes its convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvInit {
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: torchvision, and the WRN's
    /// `normal_(0, sqrt(2 / (k·k·out)))`, which is the same distribution.
    KaimingFanOut,
    /// `init.kaiming_normal_(w)` with its defaults (fan-in, gain √2): Meta-Weight-Net.
    KaimingFanIn,
    /// What `nn.Conv2d` does by itself, `kaiming_uniform_(a=√5)` = U(±1/√fan_in): PreAct.
    TorchDefault,
}

impl ConvInit {
    fn init(self) -> Init {
        let kaiming = |dist, fan, non_linearity| Init::Kaiming {
            dist,
            fan,
            non_linearity,
        };
        match self {
            ConvInit::KaimingFanOut => kaiming(
                NormalOrUniform::Normal,
                FanInOut::FanOut,
                NonLinearity::ReLU,
            ),
            ConvInit::KaimingFanIn => {
                kaiming(NormalOrUniform::Normal, FanInOut::FanIn, NonLinearity::ReLU)
            }
            // gain √(2 / (1 + a²)) with a = √5; tch's uniform bound is √3 · gain / √fan_in.
            ConvInit::TorchDefault => kaiming(
                NormalOrUniform::Uniform,
                FanInOut::FanIn,
                NonLinearity::ExplicitGain(1.0 / 3f64.sqrt()),
            ),
        }
    }
}

/// A bias-free square convolution padded to keep the size at stride 1.
#[derive(Clone, Copy, Debug)]
pub struct ConvSpec {
    pub c_in: i64,
    pub c_out: i64,
    pub kernel: i64,
    pub stride: i64,
    pub init: ConvInit,
}

impl ConvSpec {
    /// A convolution initialized as torchvision's.
    pub fn new(c_in: i64, c_out: i64, kernel: i64, stride: i64) -> ConvSpec {
        ConvSpec {
            c_in,
            c_out,
            kernel,
            stride,
            init: ConvInit::KaimingFanOut,
        }
    }

    pub fn with_init(self, init: ConvInit) -> ConvSpec {
        ConvSpec { init, ..self }
    }

    /// No bias: the batch norm next to it has one.
    pub fn build(self, p: Path) -> nn::Conv2D {
        let config = nn::ConvConfig {
            stride: self.stride,
            padding: self.kernel / 2,
            bias: false,
            ws_init: self.init.init(),
            ..Default::default()
        };
        nn::conv2d(p, self.c_in, self.c_out, self.kernel, config)
    }
}

/// A convolution and the batch norm after it. The two are siblings in the references' naming
/// (`conv1`/`bn1`, `downsample.0`/`downsample.1`), hence two paths.
#[derive(Debug)]
pub struct ConvBn {
    pub conv: nn::Conv2D,
    pub bn: SyncBatchNorm,
}

impl ConvBn {
    pub fn new(conv: Path, bn: Path, spec: ConvSpec) -> ConvBn {
        ConvBn {
            conv: spec.build(conv),
            bn: SyncBatchNorm::new(bn, spec.c_out),
        }
    }

    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        self.bn.forward(&x.apply(&self.conv), train, group)
    }
}

/// `relu(bn(x))`, the pre-activation of PreAct and Wide ResNet blocks.
pub fn bn_relu(
    bn: &SyncBatchNorm,
    x: &Tensor,
    train: bool,
    group: &ProcessGroup,
) -> Result<Tensor, DistError> {
    Ok(bn.forward(x, train, group)?.relu())
}

/// Global average pooling to N×C (the references' `avg_pool2d` over the whole 32×32 map).
pub fn global_pool(h: &Tensor) -> Tensor {
    h.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}

/// A wrong input shape is a caller's mistake worth a sentence, not a libtorch panic.
pub fn check_input(x: &Tensor, op: &'static str, group: &ProcessGroup) -> Result<(), DistError> {
    let size = x.size();
    if size.len() == 4 && size[1] == IN_CHANNELS {
        return Ok(());
    }
    Err(DistError::BadTensor {
        op,
        rank: group.rank(),
        problem: format!(
            "expected an N×3×H×W image batch, got shape {size:?} (expand gray images with \
             model::to_rgb)"
        ),
    })
}

/// Gray N×1×H×W batches → N×3×H×W by repeating the channel; 3-channel batches unchanged.
///
/// Every backbone keeps its reference's 3-channel `conv1` for every dataset (Fashion-MNIST
/// included) so that the exported weights load into the unmodified reference module and the
/// usual evaluation code runs on them. Repeating the gray channel is what
/// `transforms.Grayscale(3)` does on the Python side.
pub fn to_rgb(x: &Tensor) -> Result<Tensor> {
    let size = x.size();
    match size.as_slice() {
        [_, 1, _, _] => Ok(x.repeat([1, IN_CHANNELS, 1, 1])),
        [_, c, _, _] if *c == IN_CHANNELS => Ok(x.shallow_clone()),
        _ => bail!("to_rgb expects an N×1×H×W or N×3×H×W batch, got shape {size:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::Device;

    /// Sample std of a large conv's weights against the hand-derived std of each init.
    #[test]
    fn conv_inits_have_their_reference_spread() {
        tch::manual_seed(0);
        let (c_in, c_out, k) = (256, 128, 3);
        let cases = [
            (
                ConvInit::KaimingFanOut,
                (2.0 / (c_out * k * k) as f64).sqrt(),
            ),
            (ConvInit::KaimingFanIn, (2.0 / (c_in * k * k) as f64).sqrt()),
            // U(±b) has std b/√3, b = 1/√fan_in.
            (
                ConvInit::TorchDefault,
                1.0 / ((c_in * k * k) as f64).sqrt() / 3f64.sqrt(),
            ),
        ];
        for (init, expected) in cases {
            let vs = VarStore::new(Device::Cpu);
            let conv = ConvSpec::new(c_in, c_out, k, 1)
                .with_init(init)
                .build(vs.root());
            let std = conv.ws.std(true).double_value(&[]);
            assert!(
                (std / expected - 1.0).abs() < 0.02,
                "{init:?}: {std} vs {expected}"
            );
        }
    }
}
