//! Numeric precision and memory layout by device: on CUDA, bf16 autocast and channels-last
//! (NHWC) tensors, which tensor cores want; on the CPU, plain fp32 in the default layout, which
//! keeps CPU runs bit-reproducible.
//!
//! `--memory-format channels-last` gives a CPU run the GPU's layout, so that the tests on CPU
//! send the same strided conv weights and gradients through the collectives as a GPU run does.
//!
//! Losses promote embeddings back to fp32 ([`SslLoss::compute`](crate::method::ssl::SslLoss)),
//! and parameters, gradients and optimizer state stay fp32 (autocast casts per operation).

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Tensor};

extern "C" {
    fn nls_autocast_use_bf16();
}

/// How image batches and conv weights are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryFormat {
    /// Channels-last on CUDA, contiguous (NCHW) on the CPU.
    #[default]
    Auto,
    Contiguous,
    ChannelsLast,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Precision {
    cuda: bool,
    channels_last: bool,
}

impl Precision {
    /// On CUDA, cuDNN picks its fastest convolution algorithms by timing them (benchmark mode)
    /// unless `deterministic`: the timing may pick differently in a resumed process, so only a
    /// deterministic run resumes bit for bit on a GPU.
    pub fn new(device: Device, format: MemoryFormat, deterministic: bool) -> Precision {
        let cuda = device.is_cuda();
        if cuda {
            // SAFETY: sets a process-wide libtorch setting; no pointers involved.
            unsafe { nls_autocast_use_bf16() };
            tch::Cuda::cudnn_set_benchmark(!deterministic);
        }
        let channels_last = match format {
            MemoryFormat::Auto => cuda,
            MemoryFormat::Contiguous => false,
            MemoryFormat::ChannelsLast => true,
        };
        Precision {
            cuda,
            channels_last,
        }
    }

    /// "bf16 autocast, channels-last", "fp32" and so on, for the logs.
    pub fn describe(&self) -> String {
        let numbers = if self.cuda { "bf16 autocast" } else { "fp32" };
        let layout = if self.channels_last {
            ", channels-last"
        } else {
            ""
        };
        format!("{numbers}{layout}")
    }

    /// Runs `f` (forward passes and losses) under autocast on CUDA.
    pub fn autocast<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.cuda {
            tch::autocast(true, f)
        } else {
            f()
        }
    }

    /// An image batch in the layout the convolutions want.
    pub fn layout(&self, x: &Tensor) -> Tensor {
        if self.channels_last && x.dim() == 4 {
            channels_last(x)
        } else {
            x.shallow_clone()
        }
    }

    /// Converts every 4-D variable (convolution weights) of `vs` to channels-last.
    pub fn convert(&self, vs: &VarStore) {
        if !self.channels_last {
            return;
        }
        tch::no_grad(|| {
            for (_, mut var) in vs.variables() {
                if var.dim() == 4 {
                    var.set_data(&channels_last(&var));
                }
            }
        });
    }
}

/// Same values and logical NCHW shape, stored NHWC (what `memory_format=torch.channels_last`
/// gives in PyTorch: strides [H·W·C, 1, W·C, C]).
pub fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// `t` on `device`: on a GPU through pinned memory, copied without blocking the host (the
/// caching host allocator keeps the pinned block until the copy is done).
pub fn upload(t: &Tensor, device: Device) -> Tensor {
    if device == Device::Cpu {
        return t.shallow_clone();
    }
    t.pin_memory(device)
        .to_device_(device, t.kind(), true, false)
}

/// `values` (sample ids, partners, indices) as a tensor on `device`, as [`upload`] copies it.
pub fn upload_slice<T: tch::kind::Element>(values: &[T], device: Device) -> Tensor {
    upload(&Tensor::from_slice(values), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn channels_last_has_nhwc_strides_and_the_same_values() {
        let x = Tensor::arange(2 * 3 * 4 * 5, (Kind::Float, Device::Cpu)).view([2, 3, 4, 5]);
        let y = channels_last(&x);
        assert_eq!(y.size(), [2, 3, 4, 5]);
        assert_eq!(y.stride(), [60, 1, 15, 3]);
        assert!(y.equal(&x));
    }

    #[test]
    fn cpu_keeps_fp32_and_the_default_layout() {
        let p = Precision::new(Device::Cpu, MemoryFormat::Auto, false);
        let x = Tensor::zeros([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        assert_eq!(p.layout(&x).stride(), x.stride());
        assert_eq!(p.autocast(|| x.matmul(&x).kind()), Kind::Float);
        assert_eq!(p.describe(), "fp32");
    }

    #[test]
    fn channels_last_on_the_cpu_converts_inputs_and_conv_weights() {
        let p = Precision::new(Device::Cpu, MemoryFormat::ChannelsLast, false);
        let x = Tensor::zeros([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        assert_eq!(p.layout(&x).stride(), [12, 1, 6, 3]);
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().zeros("w", &[4, 3, 2, 2]);
        let b = vs.root().zeros("b", &[4]);
        p.convert(&vs);
        assert_eq!(w.stride(), [12, 1, 6, 3]);
        assert_eq!(b.stride(), [1]);
        assert_eq!(p.autocast(|| x.matmul(&x).kind()), Kind::Float);
        assert_eq!(p.describe(), "fp32, channels-last");
    }
}
