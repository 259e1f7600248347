//! [`Backbone`]: the one network type the methods use, whichever architecture [`NetSpec`] names.

use super::arch::{Arch, NetSpec, Stem};
use super::cifar_resnet::CifarResNet;
use super::preact::PreActResNet;
use super::resnet::ResNet;
use super::wide::WideResNet;
use crate::distributed::{DistError, ProcessGroup};
use tch::nn::Path;
use tch::Tensor;

/// A backbone without its classifier: N×3×H×W images → N×`embedding_dim` pooled features.
#[derive(Debug)]
pub enum Backbone {
    /// torchvision's ResNet-18/34/50.
    ResNet(ResNet),
    /// SSR's PreAct ResNet-18.
    PreAct(PreActResNet),
    /// WRN-d-k.
    Wide(WideResNet),
    /// Meta-Weight-Net's CIFAR ResNet-32.
    Cifar(CifarResNet),
}

impl Backbone {
    /// Variables go directly under `p` with the reference's names: pass `vs.root()` to get its
    /// state_dict names, or `vs.root() / "backbone"` to nest.
    pub fn new(p: &Path, spec: &NetSpec) -> Backbone {
        match spec.arch {
            Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 => Backbone::ResNet(
                ResNet::with_width(p, spec.arch, spec.stem.unwrap_or(Stem::Cifar), spec.width),
            ),
            Arch::Preact18 => Backbone::PreAct(PreActResNet::new(p, spec.width)),
            Arch::Wrn => Backbone::Wide(WideResNet::new(p, spec)),
            Arch::Resnet32 => Backbone::Cifar(CifarResNet::new(p, spec.width)),
        }
    }

    /// `train` selects batch statistics (synchronized over `group`) in every BN.
    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        match self {
            Backbone::ResNet(n) => n.forward(x, train, group),
            Backbone::PreAct(n) => n.forward(x, train, group),
            Backbone::Wide(n) => n.forward(x, train, group),
            Backbone::Cifar(n) => n.forward(x, train, group),
        }
    }

    /// Width of the embedding `forward` returns.
    pub fn embedding_dim(&self) -> i64 {
        match self {
            Backbone::ResNet(n) => n.embedding_dim(),
            Backbone::PreAct(n) => n.embedding_dim(),
            Backbone::Wide(n) => n.embedding_dim(),
            Backbone::Cifar(n) => n.embedding_dim(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::{Device, Kind};

    /// Every architecture at a narrow width: the embedding has the width `NetSpec` promises
    /// (hand-derived in arch.rs), and a gray batch gets the to_rgb hint.
    #[test]
    fn every_architecture_embeds_and_checks_its_input() {
        let g = ProcessGroup::single(Device::Cpu);
        for (arch, width, dim) in [
            (Arch::Resnet18, 4, 32),
            (Arch::Resnet50, 4, 128),
            (Arch::Preact18, 4, 32),
            (Arch::Wrn, 1, 64),
            (Arch::Resnet32, 4, 16),
        ] {
            let spec = NetSpec::new(arch, None, Some(width), None).unwrap();
            let vs = VarStore::new(Device::Cpu);
            let net = Backbone::new(&vs.root(), &spec);
            assert_eq!(
                (net.embedding_dim(), spec.embedding_dim()),
                (dim, dim),
                "{arch}"
            );
            let x = Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu));
            let out = tch::no_grad(|| net.forward(&x, true, &g).unwrap());
            assert_eq!(out.size(), [2, dim], "{arch}");
            let gray = Tensor::zeros([2, 1, 16, 16], (Kind::Float, Device::Cpu));
            let err = net.forward(&gray, false, &g).unwrap_err().to_string();
            assert!(err.contains("to_rgb"), "{arch}: {err}");
        }
    }
}
