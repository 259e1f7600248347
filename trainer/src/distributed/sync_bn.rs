//! Batch normalization with statistics over the global batch (SyncBatchNorm).
//!
//! Each rank sums x and x² over its samples; one differentiable all-reduce of [Σx, Σx², n] gives the
//! global mean and biased variance, and its backward sums the gradients of those statistics over
//! ranks, so input gradients equal those of BatchNorm on the whole batch. Running statistics use
//! the unbiased variance, as torch.nn.BatchNorm does.

use super::error::DistError;
use super::group::ProcessGroup;
use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

#[derive(Debug)]
pub struct SyncBatchNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub momentum: f64,
    pub eps: f64,
}

impl SyncBatchNorm {
    /// Variables named as tch's `batch_norm*d`: weight, bias, running_mean, running_var.
    pub fn new(vs: Path, channels: i64) -> SyncBatchNorm {
        SyncBatchNorm {
            weight: vs.var("weight", &[channels], Init::Const(1.0)),
            bias: vs.var("bias", &[channels], Init::Const(0.0)),
            running_mean: vs.zeros_no_train("running_mean", &[channels]),
            running_var: vs.ones_no_train("running_var", &[channels]),
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Normalizes x (N×C or N×C×…) with global-batch statistics when training, running ones
    /// otherwise. Alone (or in eval mode) this is libtorch's fused batch_norm.
    pub fn forward(
        &self,
        x: &Tensor,
        train: bool,
        group: &ProcessGroup,
    ) -> Result<Tensor, DistError> {
        if !train || group.world_size() == 1 {
            return Ok(self.local(x, train));
        }
        let shape = channel_shape(x);
        let (mean, var) = self.global_stats(x, group)?;
        let scale = (var + self.eps).rsqrt() * &self.weight;
        let shift = &self.bias - &mean * &scale;
        Ok(x * scale.view(shape.as_slice()) + shift.view(shape.as_slice()))
    }

    fn local(&self, x: &Tensor, train: bool) -> Tensor {
        x.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            self.eps,
            true,
        )
    }

    fn global_stats(
        &self,
        x: &Tensor,
        group: &ProcessGroup,
    ) -> Result<(Tensor, Tensor), DistError> {
        let dims = reduce_dims(x);
        let c = x.size()[1];
        let count = (x.numel() as i64 / c) as f64;
        let local = Tensor::cat(
            &[
                x.sum_dim_intlist(dims.as_slice(), false, Kind::Float),
                x.square()
                    .sum_dim_intlist(dims.as_slice(), false, Kind::Float),
                // Filled on the device: an upload would make the host wait for the stream.
                Tensor::full([1], count, (Kind::Float, x.device())),
            ],
            0,
        );
        let global = group.all_reduce_sum_with_grad(&local)?;
        let n = global.get(2 * c);
        let mean = global.narrow(0, 0, c) / &n;
        let var = global.narrow(0, c, c) / &n - mean.square();
        self.update_running(&mean, &var, &n);
        Ok((mean, var))
    }

    fn update_running(&self, mean: &Tensor, var: &Tensor, n: &Tensor) {
        tch::no_grad(|| {
            // Bessel's correction from the device-side count: reading it on the host would
            // wait for the whole forward pass so far, every layer, every step.
            let unbiased = var * (n / (n - 1.0).clamp_min(1.0));
            let m = self.momentum;
            let _ = self
                .running_mean
                .shallow_clone()
                .g_mul_scalar_(1.0 - m)
                .g_add_(&(mean * m));
            let _ = self
                .running_var
                .shallow_clone()
                .g_mul_scalar_(1.0 - m)
                .g_add_(&(unbiased * m));
        });
    }
}

/// Every dimension but the channel one (dim 1).
fn reduce_dims(x: &Tensor) -> Vec<i64> {
    (0..x.dim() as i64).filter(|&d| d != 1).collect()
}

/// [1, C, 1, …] to broadcast per-channel values against x.
fn channel_shape(x: &Tensor) -> Vec<i64> {
    let mut shape = vec![1; x.dim()];
    shape[1] = x.size()[1];
    shape
}
