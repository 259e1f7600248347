//! Backbones and heads.
//!
//! - [`arch`]: the architecture names and [`NetSpec`] (architecture + stem, width, depth);
//! - [`backbone`]: [`Backbone`], the one type the methods use, over the four families:
//!   - [`resnet`]: ResNet-18/34/50 with torchvision's state_dict names, CIFAR or ImageNet stem,
//!     zero-init residuals;
//!   - [`preact`]: SSR's PreAct ResNet-18; [`wide`]: WRN-d-k; [`cifar_resnet`]: Meta-Weight-Net's
//!     ResNet-32; each with its reference module's names;
//! - [`layers`]: what they share (conv + BN, the inits, [`to_rgb`]: input is always 3 channels);
//! - [`projector`]: the reference VICReg/Barlow Twins expander, named as its `nn.Sequential`.
//!
//! Every batch norm is a [`SyncBatchNorm`](crate::distributed::sync_bn::SyncBatchNorm): one
//! process uses libtorch's fused batch_norm, several normalize over the global batch.
//!
//! ## Exporting to PyTorch
//! A VarStore holds every parameter and running statistic under torchvision's name, but not the
//! `num_batches_tracked` counters that `nn.BatchNorm*d` keeps as buffers. PyTorch reads that
//! counter only when `momentum=None` (cumulative averaging); with the default `momentum=0.1`,
//! which torchvision and our SyncBatchNorm use, it never affects an output. Rather than carry a
//! dead buffer in every module, the exporter writes it: [`torchvision_state_dict`] is the
//! VarStore plus [`torchvision_state_dict_extras`], the counter of every BN set to the number
//! of training steps, so that `load_state_dict(strict=True)` accepts the file.

pub mod arch;
pub mod backbone;
pub mod cifar_resnet;
pub mod layers;
pub mod preact;
pub mod precision;
pub mod projector;
pub mod resnet;
pub mod wide;

pub use arch::{Arch, ClassifierInit, NetSpec, Stem, STANDARD_WIDTH};
pub use backbone::Backbone;
pub use layers::to_rgb;
pub use precision::{MemoryFormat, Precision};
pub use projector::{parse_mlp, Projector};
pub use resnet::{Block, ResNet};

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Suffix that marks a batch norm's variables (every BN has exactly one).
const BN_MARKER: &str = "running_var";
const BN_COUNTER: &str = "num_batches_tracked";

/// Trainable parameters, as `sum(p.numel() for p in model.parameters())` (running statistics
/// are buffers and do not count).
pub fn count_parameters(vs: &VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// `<bn>.num_batches_tracked` (int64 scalar = `batches_tracked`) for every batch norm in `vs`,
/// the buffers PyTorch has and the VarStore lacks (see the module docs for why that is sound).
pub fn torchvision_state_dict_extras(vs: &VarStore, batches_tracked: i64) -> Vec<(String, Tensor)> {
    let mut extras: Vec<(String, Tensor)> = vs
        .variables()
        .into_keys()
        .filter_map(|name| {
            name.strip_suffix(BN_MARKER)
                .filter(|prefix| prefix.is_empty() || prefix.ends_with('.'))
                .map(|prefix| format!("{prefix}{BN_COUNTER}"))
        })
        .map(|name| (name, Tensor::from(batches_tracked)))
        .collect();
    extras.sort_by(|a, b| a.0.cmp(&b.0));
    extras
}

/// Everything `model.state_dict()` holds, sorted by name: contiguous float CPU copies of the
/// VarStore's variables (ready for `Tensor::write_npz` or safetensors), plus the extras.
pub fn torchvision_state_dict(vs: &VarStore, batches_tracked: i64) -> Vec<(String, Tensor)> {
    let mut all: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, cpu_copy(&t)))
        .collect();
    all.extend(torchvision_state_dict_extras(vs, batches_tracked));
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Detached contiguous CPU copy: writers read raw memory, which must not be strided or on a GPU.
fn cpu_copy(t: &Tensor) -> Tensor {
    t.detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .copy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_name_every_bn() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Projector::new(&(vs.root() / "projector"), 16, &[8, 8, 4]).unwrap();
        let names: Vec<String> = torchvision_state_dict_extras(&vs, 3)
            .into_iter()
            .map(|(n, t)| {
                assert_eq!((t.kind(), t.int64_value(&[])), (Kind::Int64, 3));
                n
            })
            .collect();
        assert_eq!(
            names,
            [
                "projector.1.num_batches_tracked",
                "projector.4.num_batches_tracked"
            ]
        );
    }

    #[test]
    fn counts_trainable_only() {
        let vs = VarStore::new(Device::Cpu);
        let _ = Projector::new(&vs.root(), 4, &[3, 2]).unwrap();
        // Linear 4→3 with bias (15), BN weight+bias (6), Linear 3→2 without bias (6).
        assert_eq!(count_parameters(&vs), 27);
    }
}
