//! Data-parallel training: the same parameters on every rank, gradients averaged after backward.
//!
//! Parameters and buffers travel in name order (a VarStore is a HashMap, and Gloo matches
//! collectives by order, so every rank must agree). Gradients are averaged in a few large flat
//! buckets: one collective per bucket rather than one per tensor.

use super::error::DistError;
use super::group::{ProcessGroup, ReduceOp};
use tch::nn::VarStore;
use tch::Tensor;

/// Default bucket capacity, as PyTorch DDP's `bucket_cap_mb`.
pub const DEFAULT_BUCKET_MB: f64 = 25.0;

/// Every variable of `vs` (parameters and buffers), sorted by name.
pub fn named_variables(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// Copies rank 0's parameters and buffers to every rank.
pub fn broadcast_variables(group: &ProcessGroup, vs: &VarStore) -> Result<(), DistError> {
    tch::no_grad(|| {
        for (_, mut v) in named_variables(vs) {
            group.broadcast(&mut v, 0)?;
        }
        Ok(())
    })
}

/// Averages the gradients of a VarStore's trainable variables over ranks, bucket by bucket.
pub struct GradSync {
    buckets: Vec<Vec<Tensor>>,
}

impl GradSync {
    /// Buckets of at most `bucket_mb` megabytes each (a tensor larger than that gets its own);
    /// `bucket_mb <= 0` gives one collective per tensor.
    pub fn new(vs: &VarStore, bucket_mb: f64) -> GradSync {
        let cap = (bucket_mb * 1e6) as i64;
        let mut trainable: Vec<_> = named_variables(vs)
            .into_iter()
            .filter(|(_, v)| v.requires_grad())
            .collect();
        // Buckets hold one dtype each; the sort is stable, so name order remains within a kind.
        trainable.sort_by_key(|(_, v)| format!("{:?}", v.kind()));
        let mut buckets: Vec<Vec<Tensor>> = Vec::new();
        let mut bytes = 0;
        for (_, v) in trainable {
            let size = v.numel() as i64 * v.kind().elt_size_in_bytes() as i64;
            let same_kind = buckets.last().is_some_and(|b| b[0].kind() == v.kind());
            if buckets.is_empty() || !same_kind || bytes + size > cap {
                buckets.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            buckets.last_mut().unwrap().push(v);
        }
        GradSync { buckets }
    }

    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Call after backward, before the optimizer step. A parameter without a gradient counts as
    /// zero, so every rank issues the same collectives.
    pub fn average(&self, group: &ProcessGroup) -> Result<(), DistError> {
        if group.world_size() == 1 {
            return Ok(());
        }
        tch::no_grad(|| {
            self.buckets
                .iter()
                .try_for_each(|b| average_bucket(group, b))
        })
    }
}

fn average_bucket(group: &ProcessGroup, params: &[Tensor]) -> Result<(), DistError> {
    let grads: Vec<Tensor> = params.iter().map(grad_or_zeros).collect();
    let flat: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
    let mut flat = Tensor::cat(&flat, 0);
    group.all_reduce(&mut flat, ReduceOp::Avg)?;
    let mut offset = 0;
    for (p, g) in params.iter().zip(&grads) {
        let n = g.numel() as i64;
        let mut target = p.grad();
        if target.defined() {
            target.copy_(&flat.narrow(0, offset, n).view_as(g));
        }
        offset += n;
    }
    Ok(())
}

fn grad_or_zeros(p: &Tensor) -> Tensor {
    let g = p.grad();
    if g.defined() {
        g
    } else {
        p.zeros_like().to_kind(p.kind())
    }
}

/// Sum of all gradient elements' sizes in bytes (for reporting bucket plans).
pub fn gradient_bytes(vs: &VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|v| v.numel() as i64 * v.kind().elt_size_in_bytes() as i64)
        .sum()
}
