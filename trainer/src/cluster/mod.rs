//! Where this process sits in the job: rank, world, node and rendezvous address, read from
//! whichever launcher started it (SLURM's `srun`, torchrun, or nothing).
//!
//! Everything here is a pure function of the environment variables ([`ClusterEnv::from_vars`]),
//! so every task of a job computes the same rendezvous address and port without talking to the
//! others first, and the parsing can be tested without a cluster. Malformed or contradictory
//! values are errors that name the variable and the value: a job that guesses its rank wrong
//! hangs at rendezvous, which is far harder to diagnose than a refusal to start.
//!
//! - [`ClusterEnv`]: the result; [`ClusterEnv::from_vars`] documents the launcher detection.
//! - [`hostlist`]: SLURM node lists, `gpu-[01-03,07],cpu5`.
//! - [`tasks`]: SLURM tasks-per-node lists, `4(x2),3`.
//! - [`derive_port`]: the rendezvous port derived from the job id.

mod env;
mod error;
pub mod hostlist;
mod port;
pub mod requeue;
pub mod signals;
mod slurm;
pub mod tasks;
mod torchrun;
mod vars;

pub use env::{ClusterEnv, Launcher};
pub use error::ClusterError;
pub use port::{derive_port, DEFAULT_PORT};
pub use tasks::parse_tasks_per_node;

/// Most hosts (or per-node entries) a list may expand to. Real clusters are far below this; a
/// typo like `n[1-99999999]` should fail fast rather than allocate gigabytes.
pub const MAX_EXPANSION: usize = 1_000_000;

/// Parse a string of ASCII digits only. Stricter than `str::parse`, which accepts a leading
/// `+`: launcher variables are plain decimal, so anything else is a sign of a wrong variable.
pub(crate) fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    match !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        true => s.parse().ok(),
        false => None,
    }
}
