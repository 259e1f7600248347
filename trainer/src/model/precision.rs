//! Numeric precision and memory layout by device: on CUDA, bf16 autocast and channels-last
//! (NHWC) tensors, which tensor cores want; on the CPU, plain fp32 in the default layout, which
//! keeps CPU runs bit-reproducible.
//!
//! Losses promote embeddings back to fp32 ([`SslLoss::compute`](crate::method::ssl::SslLoss)),
//! and parameters, gradients and optimizer state stay fp32 (autocast casts per operation).

use tch::nn::VarStore;
use tch::{Device, Tensor};

extern "C" {
    fn nls_autocast_use_bf16();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Precision {
    cuda: bool,
}

impl Precision {
    pub fn for_device(device: Device) -> Precision {
        let cuda = device.is_cuda();
        if cuda {
            // SAFETY: sets a process-wide libtorch setting; no pointers involved.
            unsafe { nls_autocast_use_bf16() };
        }
        Precision { cuda }
    }

    /// "bf16 autocast, channels-last" or "fp32", for the logs.
    pub fn describe(&self) -> &'static str {
        if self.cuda {
            "bf16 autocast, channels-last"
        } else {
            "fp32"
        }
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
        if self.cuda && x.dim() == 4 {
            channels_last(x)
        } else {
            x.shallow_clone()
        }
    }

    /// Converts every 4-D variable (convolution weights) of `vs` to channels-last.
    pub fn convert(&self, vs: &VarStore) {
        if !self.cuda {
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
        let p = Precision::for_device(Device::Cpu);
        let x = Tensor::zeros([1, 3, 2, 2], (Kind::Float, Device::Cpu));
        assert_eq!(p.layout(&x).stride(), x.stride());
        assert_eq!(p.autocast(|| x.matmul(&x).kind()), Kind::Float);
        assert_eq!(p.describe(), "fp32");
    }
}
