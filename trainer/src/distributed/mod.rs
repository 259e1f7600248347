//! Process groups through libtorch's own c10d (the C++ shim in `trainer/csrc`), compatible with
//! Python's `torch.distributed` default group, and the data-parallel primitives built on them.
//!
//! - [`store`]: the TCPStore rendezvous; [`group`]: Gloo/NCCL groups and collectives;
//! - [`liveness`]: heartbeats that name dead ranks; [`error`]: what failed, where;
//! - [`ddp`]: parameter broadcast and bucketed gradient averaging; [`sync_bn`]: SyncBatchNorm.

pub mod agree;
pub mod ddp;
pub mod error;
pub(crate) mod ffi;
pub mod group;
pub mod liveness;
pub mod store;
pub mod sync_bn;

pub use error::{DistError, Missing};
pub use group::{nccl_compiled, BackendKind, DeviceKind, GroupOptions, ProcessGroup, ReduceOp};
