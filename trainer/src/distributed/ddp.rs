//! Data-parallel training: the same parameters on every rank, gradients averaged after backward.
//!
//! Parameters and buffers travel in name order (a VarStore is a HashMap, and Gloo matches
//! collectives by order, so every rank must agree). Gradients are averaged in a few large flat
//! buckets: one collective per bucket rather than one per tensor, issued while backward still
//! runs when armed ([`GradSync::arm`]).

use super::error::DistError;
use super::ffi;
use super::group::ProcessGroup;
use std::cell::OnceCell;
use tch::nn::VarStore;
use tch::Tensor;
use torch_sys::C_tensor;

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
///
/// [`GradSync::arm`] before the step's backward lets each bucket's all-reduce start as soon as
/// backward has produced its gradients, while it computes the earlier layers' (as PyTorch DDP
/// does; `csrc/grad_sync.cpp`); [`GradSync::average`] after backward issues the rest, waits and
/// writes the averages back. Without `arm`, `average` does it all after backward. Either way
/// the averages are the same numbers.
pub struct GradSync {
    /// In the order backward completes them: reverse name order (outputs' layers first).
    buckets: Vec<Vec<Tensor>>,
    /// The shim's hooks, made on first use with a group of more than one rank.
    hooks: OnceCell<Hooks>,
}

struct Hooks(*mut ffi::nls_grad_sync);

// The shim's state is locked on every use; hooks run on autograd's threads.
unsafe impl Send for Hooks {}
unsafe impl Sync for Hooks {}

impl Drop for Hooks {
    fn drop(&mut self) {
        unsafe { ffi::nls_grad_sync_free(self.0) }
    }
}

impl GradSync {
    /// Buckets of at most `bucket_mb` megabytes each (a tensor larger than that gets its own);
    /// `bucket_mb <= 0` gives one collective per tensor.
    pub fn new(vs: &VarStore, bucket_mb: f64) -> GradSync {
        let cap = (bucket_mb * 1e6) as i64;
        let mut trainable: Vec<_> = named_variables(vs)
            .into_iter()
            .rev()
            .filter(|(_, v)| v.requires_grad())
            .collect();
        // Buckets hold one dtype each; the sort is stable, so the order remains within a kind.
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
        GradSync {
            buckets,
            hooks: OnceCell::new(),
        }
    }

    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Call right before the step's (only) backward, after the gradients were zeroed: buckets
    /// are then averaged while backward runs. Not for a backward that adds to gradients kept
    /// from an earlier one (their sum would be averaged as this backward's alone).
    pub fn arm(&self, group: &ProcessGroup) -> Result<(), DistError> {
        let Some(hooks) = self.hooks(group)? else {
            return Ok(());
        };
        group.shim_call("arm gradient averaging", |_, err| unsafe {
            ffi::nls_grad_sync_arm(hooks.0, err)
        })
    }

    /// Call after backward, before the optimizer step. A parameter without a gradient counts as
    /// zero, so every rank issues the same collectives. Returns how many buckets an armed
    /// backward had already issued.
    pub fn average(&self, group: &ProcessGroup) -> Result<usize, DistError> {
        let Some(hooks) = self.hooks(group)? else {
            return Ok(0);
        };
        let mut issued = 0;
        tch::no_grad(|| {
            group.shim_call("all_reduce of gradients", |_, err| unsafe {
                ffi::nls_grad_sync_finish(hooks.0, &mut issued, err)
            })
        })?;
        Ok(issued)
    }

    /// The shim's hooks for `group`, made on first use; `None` for a group of one.
    fn hooks(&self, group: &ProcessGroup) -> Result<Option<&Hooks>, DistError> {
        if group.raw().is_none() {
            return Ok(None);
        }
        if let Some(hooks) = self.hooks.get() {
            return Ok(Some(hooks));
        }
        let vars: Vec<&Tensor> = self.buckets.iter().flatten().collect();
        let params: Vec<*mut C_tensor> = vars.iter().map(|v| v.as_ptr() as *mut _).collect();
        let bucket_of: Vec<i64> = (self.buckets.iter().enumerate())
            .flat_map(|(b, members)| std::iter::repeat_n(b as i64, members.len()))
            .collect();
        let mut raw = std::ptr::null_mut();
        group.shim_call("gradient averaging set-up", |g, err| unsafe {
            ffi::nls_grad_sync_new(
                g,
                params.as_ptr(),
                params.len(),
                bucket_of.as_ptr(),
                self.buckets.len(),
                &mut raw,
                err,
            )
        })?;
        Ok(Some(self.hooks.get_or_init(|| Hooks(raw))))
    }
}

/// Sum of all gradient elements' sizes in bytes (for reporting bucket plans).
pub fn gradient_bytes(vs: &VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|v| v.numel() as i64 * v.kind().elt_size_in_bytes() as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterEnv;
    use crate::distributed::{BackendKind, GroupOptions};
    use std::time::Duration;
    use tch::{Device, Kind};

    /// A group of one that still has its store and Gloo backend (as `dist-check` alone), on a
    /// free port: the shim's hooks run as on any rank.
    fn lone_group() -> ProcessGroup {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let env = ClusterEnv {
            master_port: free.local_addr().unwrap().port(),
            ..ClusterEnv::single()
        };
        drop(free);
        let opts = GroupOptions {
            backend: BackendKind::Gloo,
            timeout: Duration::from_secs(30),
            connect_alone: true,
            ..Default::default()
        };
        ProcessGroup::init(&env, &opts).unwrap()
    }

    fn store() -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let _ = vs.root().randn("w", &[3, 2], 0.0, 1.0);
        vs
    }

    fn loss(vs: &VarStore) -> Tensor {
        vs.trainable_variables()[0].square().sum(Kind::Float)
    }

    #[test]
    fn an_armed_backward_averages_once_and_refuses_a_second_backward() {
        let group = lone_group();
        let vs = store();
        let sync = GradSync::new(&vs, 25.0);
        let w = vs.trainable_variables()[0].shallow_clone();
        sync.arm(&group).unwrap();
        loss(&vs).backward();
        assert_eq!(sync.average(&group).unwrap(), 1, "issued by the hook");
        let want = &w * 2.0; // d/dw Σw², averaged over one rank
        assert!(w.grad().equal(&want));
        let _ = w.grad().zero_();
        sync.arm(&group).unwrap();
        loss(&vs).backward();
        let err = loss(&vs).f_backward().unwrap_err().to_string();
        assert!(err.contains("arrived twice"), "{err}");
    }

    #[test]
    fn two_averagers_over_one_variable_are_refused() {
        let group = lone_group();
        let vs = store();
        let first = GradSync::new(&vs, 25.0);
        first.arm(&group).unwrap();
        let err = GradSync::new(&vs, 25.0).arm(&group).unwrap_err();
        assert!(format!("{err}").contains("two gradient averagers"), "{err}");
        drop(first);
        GradSync::new(&vs, 25.0).arm(&group).unwrap();
    }
}
