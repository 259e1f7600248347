//! A torch.distributed-compatible process group: TCPStore rendezvous, then Gloo (CPU, or CUDA
//! tensors staged through the host, as PyTorch's ProcessGroupGloo allows) or NCCL (CUDA)
//! through libtorch's own c10d, with a safe API where every collective returns a `Result`.

use super::error::{DistError, Missing};
use super::ffi;
use super::liveness::{self, Heartbeat};
use super::store::Store;
use crate::cluster::ClusterEnv;
use std::ffi::{c_char, c_int};
use std::time::Duration;
use tch::{Device, Tensor};

/// Which communication backend to use; `Auto` picks NCCL when CUDA is available, else Gloo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Auto,
    Gloo,
    Nccl,
}

/// Where a rank computes; `Auto` is the local rank's GPU when CUDA is present and the backend
/// is not forced to Gloo, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceKind {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone)]
pub struct GroupOptions {
    pub backend: BackendKind,
    pub device: DeviceKind,
    /// Rendezvous and per-collective timeout.
    pub timeout: Duration,
    /// Build the store and backend even for a world of one, where training needs neither
    /// (`dist-check`, so that a one-GPU machine still exercises NCCL itself).
    pub connect_alone: bool,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            backend: BackendKind::Auto,
            device: DeviceKind::Auto,
            timeout: Duration::from_secs(600),
            connect_alone: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// Sum, then divide by the world size (Gloo has no native average).
    Avg,
    Max,
    Min,
}

/// This process's membership in the job's default group. With one process there is no store
/// and no backend unless asked for ([`GroupOptions::connect_alone`]): every collective is then
/// the identity.
pub struct ProcessGroup {
    rank: usize,
    world: usize,
    device: Device,
    backend: &'static str,
    connected: Option<Connected>,
}

struct Connected {
    raw: *mut ffi::nls_group,
    store: Store,
    heartbeat: Heartbeat,
}

// c10d backends are thread-safe; the store connection is only used from the owning thread.
unsafe impl Send for Connected {}
unsafe impl Sync for Connected {}

impl Drop for Connected {
    fn drop(&mut self) {
        unsafe { ffi::nls_group_free(self.raw) }
    }
}

impl ProcessGroup {
    /// Joins the group described by `env` (rank 0 hosts the store at master_addr:master_port).
    pub fn init(env: &ClusterEnv, opts: &GroupOptions) -> Result<ProcessGroup, DistError> {
        let device = device_for(env, opts)?;
        let backend = match (opts.backend, device) {
            (BackendKind::Nccl, _) | (BackendKind::Auto, Device::Cuda(_)) => "nccl",
            _ => "gloo",
        };
        let mut group = ProcessGroup {
            rank: env.rank,
            world: env.world_size,
            device,
            backend,
            connected: None,
        };
        if env.world_size > 1 || opts.connect_alone {
            group.connected = Some(connect(env, opts, device)?);
        }
        Ok(group)
    }

    /// A group of one: every collective is the identity.
    pub fn single(device: Device) -> ProcessGroup {
        ProcessGroup {
            rank: 0,
            world: 1,
            device,
            backend: "none",
            connected: None,
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }
    pub fn world_size(&self) -> usize {
        self.world
    }
    /// The device this rank computes on (CUDA device = local rank, or CPU).
    pub fn device(&self) -> Device {
        self.device
    }
    pub fn backend_name(&self) -> &'static str {
        self.backend
    }

    /// Reduces `t` in place over all ranks.
    pub fn all_reduce(&self, t: &mut Tensor, op: ReduceOp) -> Result<(), DistError> {
        let Some(c) = &self.connected else {
            return Ok(());
        };
        self.check_device("all_reduce", t)?;
        if op == ReduceOp::Avg && !t.is_floating_point() {
            return Err(self.bad_tensor("all_reduce", "an average needs a floating-point tensor"));
        }
        let code = match op {
            ReduceOp::Sum | ReduceOp::Avg => ffi::NLS_SUM,
            ReduceOp::Max => ffi::NLS_MAX,
            ReduceOp::Min => ffi::NLS_MIN,
        };
        through_contiguous(t, |t| {
            let ptr = t.as_mut_ptr();
            self.collective("all_reduce", c, |err| unsafe {
                ffi::nls_allreduce(c.raw, ptr, code, err)
            })
        })?;
        if op == ReduceOp::Avg {
            let _ = t.g_div_scalar_(self.world as f64);
        }
        Ok(())
    }

    /// Overwrites `t` on every rank with rank `root`'s value.
    pub fn broadcast(&self, t: &mut Tensor, root: usize) -> Result<(), DistError> {
        let Some(c) = &self.connected else {
            return Ok(());
        };
        self.check_device("broadcast", t)?;
        through_contiguous(t, |t| {
            let ptr = t.as_mut_ptr();
            self.collective("broadcast", c, |err| unsafe {
                ffi::nls_broadcast(c.raw, ptr, root as c_int, err)
            })
        })
    }

    /// Concatenates every rank's `t` along dim 0, in rank order (all ranks: same shape).
    pub fn all_gather(&self, t: &Tensor) -> Result<Tensor, DistError> {
        self.gather_like("all_gather", t, ffi::nls_allgather)
            .map(|o| o.unwrap_or_else(|| t.copy()))
    }

    /// `all_gather` that keeps the graph: the local slice receives the sum over ranks of the
    /// gradient flowing into it, so every rank may compute a loss on the global batch.
    pub fn all_gather_with_grad(&self, t: &Tensor) -> Result<Tensor, DistError> {
        self.gather_like("all_gather_with_grad", t, ffi::nls_allgather_with_grad)
            .map(|o| o.unwrap_or_else(|| t.shallow_clone()))
    }

    /// Sum over ranks that keeps the graph (its gradient is summed over ranks as well).
    pub fn all_reduce_sum_with_grad(&self, t: &Tensor) -> Result<Tensor, DistError> {
        self.gather_like(
            "all_reduce_sum_with_grad",
            t,
            ffi::nls_allreduce_sum_with_grad,
        )
        .map(|o| o.unwrap_or_else(|| t.shallow_clone()))
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&self) -> Result<(), DistError> {
        let Some(c) = &self.connected else {
            return Ok(());
        };
        self.collective("barrier", c, |err| unsafe { ffi::nls_barrier(c.raw, err) })
    }

    /// The shim's handle of this group; `None` for a group of one.
    pub(crate) fn raw(&self) -> Option<*mut ffi::nls_group> {
        self.connected.as_ref().map(|c| c.raw)
    }

    /// Runs a shim call that issues collectives on this group (nothing for a group of one),
    /// with a failure diagnosed as any collective's.
    pub(crate) fn shim_call(
        &self,
        op: &'static str,
        f: impl FnOnce(*mut ffi::nls_group, *mut *mut c_char) -> c_int,
    ) -> Result<(), DistError> {
        let Some(c) = &self.connected else {
            return Ok(());
        };
        self.collective(op, c, |err| f(c.raw, err))
    }

    /// Runs a shim call that produces a new tensor; `None` for a group of one.
    fn gather_like(
        &self,
        op: &'static str,
        t: &Tensor,
        f: unsafe extern "C" fn(
            *mut ffi::nls_group,
            *mut torch_sys::C_tensor,
            *mut *mut torch_sys::C_tensor,
            *mut *mut c_char,
        ) -> c_int,
    ) -> Result<Option<Tensor>, DistError> {
        let Some(c) = &self.connected else {
            return Ok(None);
        };
        if t.dim() == 0 {
            return Err(self.bad_tensor(op, "needs at least one dimension to gather along"));
        }
        let input = t.as_ptr() as *mut torch_sys::C_tensor;
        let mut out = std::ptr::null_mut();
        self.collective(op, c, |err| unsafe { f(c.raw, input, &mut out, err) })?;
        Ok(Some(unsafe { Tensor::from_ptr(out) }))
    }

    fn collective(
        &self,
        op: &'static str,
        c: &Connected,
        f: impl FnOnce(*mut *mut c_char) -> c_int,
    ) -> Result<(), DistError> {
        ffi::call(f).map_err(|cause| {
            log::error!(
                "{op} failed on rank {}: {cause}; asking the store which ranks are gone",
                self.rank
            );
            DistError::Collective {
                op,
                rank: self.rank,
                world: self.world,
                cause,
                missing: liveness::missing_ranks(&c.store, &c.heartbeat, self.rank, self.world),
            }
        })
    }

    fn check_device(&self, op: &'static str, t: &Tensor) -> Result<(), DistError> {
        if t.device() != self.device && self.backend == "nccl" {
            return Err(self.bad_tensor(
                op,
                &format!(
                    "tensor is on {:?}, the group on {:?}",
                    t.device(),
                    self.device
                ),
            ));
        }
        Ok(())
    }

    /// An error raised where collectives run inside libtorch (the backward pass of the
    /// gathers), with the same diagnosis as a failed collective: which ranks stopped sending
    /// heartbeats.
    pub fn failed_during(&self, op: &'static str, cause: impl std::fmt::Display) -> DistError {
        DistError::Collective {
            op,
            rank: self.rank,
            world: self.world,
            cause: cause.to_string(),
            missing: match &self.connected {
                Some(c) => liveness::missing_ranks(&c.store, &c.heartbeat, self.rank, self.world),
                None => Missing::Unknown,
            },
        }
    }

    fn bad_tensor(&self, op: &'static str, problem: &str) -> DistError {
        DistError::BadTensor {
            op,
            rank: self.rank,
            problem: problem.into(),
        }
    }
}

/// The local rank's CUDA device or the CPU, as `opts` ask. With one visible device per task
/// (CUDA_VISIBLE_DEVICES set per rank), or more ranks than GPUs (Gloo on one GPU), ranks share
/// device `local_rank mod count`.
fn device_for(env: &ClusterEnv, opts: &GroupOptions) -> Result<Device, DistError> {
    let cuda = tch::Cuda::is_available();
    let use_cuda = match (opts.device, opts.backend) {
        (DeviceKind::Cpu, BackendKind::Nccl) => {
            return Err(backend_error(
                env,
                "nccl",
                "--backend nccl needs --device cuda",
            ));
        }
        (DeviceKind::Cuda, _) if !cuda => {
            return Err(backend_error(
                env,
                "cuda",
                "--device cuda, but no CUDA device is visible to this process (check \
                 CUDA_VISIBLE_DEVICES, the driver, and that libtorch_cuda is on the library path)",
            ));
        }
        (DeviceKind::Cpu, _) | (DeviceKind::Auto, BackendKind::Gloo) => false,
        (DeviceKind::Cuda, _) => true,
        (DeviceKind::Auto, _) => cuda,
    };
    Ok(if use_cuda {
        Device::Cuda(env.local_rank % tch::Cuda::device_count().max(1) as usize)
    } else {
        Device::Cpu
    })
}

fn backend_error(env: &ClusterEnv, backend: &'static str, cause: &str) -> DistError {
    DistError::Backend {
        backend,
        rank: env.rank,
        world: env.world_size,
        cause: cause.into(),
    }
}

fn connect(env: &ClusterEnv, opts: &GroupOptions, device: Device) -> Result<Connected, DistError> {
    let store = connect_store(env, opts.timeout)?;
    check_group_id(&store, env, opts.timeout)?;
    store
        .wait_workers()
        .map_err(|cause| rendezvous_error(env, opts.timeout, cause))?;
    let raw = create_backend(&store, env, opts, device)?;
    let beat_store = store
        .try_clone()
        .map_err(|cause| rendezvous_error(env, opts.timeout, cause))?;
    Ok(Connected {
        raw,
        store,
        heartbeat: Heartbeat::start(beat_store, env.rank),
    })
}

fn connect_store(env: &ClusterEnv, timeout: Duration) -> Result<Store, DistError> {
    let (host, port) = (&env.master_addr, env.master_port);
    log::debug!("rank {} joining the rendezvous at {host}:{port}", env.rank);
    // Under torchrun's agent store nobody serves: the agent already does.
    let is_server = env.rank == 0 && !env.agent_store;
    Store::connect(host, port, is_server, env.world_size, timeout).map_err(|cause| {
        if cause.contains("EADDRINUSE") || cause.contains("already in use") {
            DistError::PortBusy {
                host: host.clone(),
                port,
                cause,
            }
        } else {
            rendezvous_error(env, timeout, cause)
        }
    })
}

fn rendezvous_error(env: &ClusterEnv, timeout: Duration, cause: String) -> DistError {
    DistError::Rendezvous {
        rank: env.rank,
        world: env.world_size,
        addr: format!("{}:{}", env.master_addr, env.master_port),
        timeout,
        cause,
    }
}

/// How long a joining rank waits for rank 0 to record the group's identity. A Rust rank 0 does
/// so microseconds after it starts listening; a Python rank 0 never does, and then the first
/// joining Rust rank records it after this grace.
const IDENTITY_GRACE: Duration = Duration::from_secs(2);
const GROUP_ID_KEY: &str = "nls/group_id";

/// Two jobs on one node may derive the same port, and a rank may reach another job's store.
/// Rank 0 records the job's identity right after it starts listening, before counting anyone
/// in; every other rank first gives it the time to, then compares before it is counted, so a
/// stray rank leaves without touching the other group's keys (a stray that recorded its own
/// identity first would be let in, and turn the owner away).
fn check_group_id(store: &Store, env: &ClusterEnv, timeout: Duration) -> Result<(), DistError> {
    let ours = env.group_id();
    let serves = env.rank == 0 && !env.agent_store;
    if !serves && !env.agent_store {
        wait_for_key(store, GROUP_ID_KEY, IDENTITY_GRACE.min(timeout))
            .map_err(|cause| rendezvous_error(env, timeout, cause))?;
    }
    let found = store
        .compare_set(GROUP_ID_KEY, "", &ours)
        .map_err(|cause| rendezvous_error(env, timeout, cause))?;
    if found != ours {
        return Err(DistError::ForeignGroup {
            addr: store.addr.clone(),
            ours,
            found,
        });
    }
    Ok(())
}

/// Polls until `key` exists or `grace` has passed (not an error: the caller decides).
fn wait_for_key(store: &Store, key: &str, grace: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + grace;
    while !store.check(key)? && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

fn create_backend(
    store: &Store,
    env: &ClusterEnv,
    opts: &GroupOptions,
    device: Device,
) -> Result<*mut ffi::nls_group, DistError> {
    let (rank, world) = (env.rank as c_int, env.world_size as c_int);
    let timeout_ms = opts.timeout.as_millis() as i64;
    let mut raw = std::ptr::null_mut();
    let (name, result) = match device {
        Device::Cuda(index) if opts.backend != BackendKind::Gloo => (
            "nccl",
            ffi::call(|err| unsafe {
                ffi::nls_group_new_nccl(
                    store.raw(),
                    rank,
                    world,
                    timeout_ms,
                    index as c_int,
                    &mut raw,
                    err,
                )
            }),
        ),
        _ if opts.backend == BackendKind::Nccl => (
            "nccl",
            Err(
                "--backend nccl needs CUDA, and no CUDA device is visible to this process"
                    .to_string(),
            ),
        ),
        _ => (
            "gloo",
            ffi::call(|err| unsafe {
                ffi::nls_group_new_gloo(store.raw(), rank, world, timeout_ms, &mut raw, err)
            }),
        ),
    };
    result.map_err(|cause| backend_error(env, name, &cause))?;
    Ok(raw)
}

/// Runs an in-place collective on `t` through a contiguous copy when `t` is strided otherwise
/// (a channels-last conv weight, a column view), writing the result back: the backends read a
/// tensor's storage in order, and every rank must send its elements in the same, logical order
/// whatever layout it keeps them in.
fn through_contiguous(
    t: &mut Tensor,
    collective: impl FnOnce(&mut Tensor) -> Result<(), DistError>,
) -> Result<(), DistError> {
    if t.is_contiguous() {
        return collective(t);
    }
    let mut buffer = t.contiguous();
    collective(&mut buffer)?;
    t.copy_(&buffer);
    Ok(())
}

/// Whether this build contains the NCCL backend.
pub fn nccl_compiled() -> bool {
    unsafe { ffi::nls_nccl_compiled() != 0 }
}
