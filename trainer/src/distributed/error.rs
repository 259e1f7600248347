//! What can go wrong between ranks, said so that the user knows which rank, which operation and
//! what to do.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error(
        "port {port} on {host} is busy (another job or a leftover process holds it): set \
         MASTER_PORT to a free port, or wait for that process to exit\n  ({cause})"
    )]
    PortBusy {
        host: String,
        port: u16,
        cause: String,
    },

    #[error(
        "the rendezvous at {addr} belongs to another group ({found:?}, not ours {ours:?}): two \
         jobs derived the same port; set MASTER_PORT explicitly for one of them"
    )]
    ForeignGroup {
        addr: String,
        ours: String,
        found: String,
    },

    #[error(
        "rank {rank} of {world} could not join the rendezvous at {addr} within {timeout:?}: \
         {cause}\n  (every rank must start within the timeout; check MASTER_ADDR/MASTER_PORT \
         and that rank 0 is running)"
    )]
    Rendezvous {
        rank: usize,
        world: usize,
        addr: String,
        timeout: Duration,
        cause: String,
    },

    #[error("{backend} process group could not be created on rank {rank} of {world}: {cause}")]
    Backend {
        backend: &'static str,
        rank: usize,
        world: usize,
        cause: String,
    },

    #[error("{op} failed on rank {rank} of {world}: {cause}{}", diagnosis(.missing))]
    Collective {
        op: &'static str,
        rank: usize,
        world: usize,
        cause: String,
        missing: Missing,
    },

    #[error("{op} on rank {rank}: {problem}")]
    BadTensor {
        op: &'static str,
        rank: usize,
        problem: String,
    },
}

/// What the store says about the other ranks after a collective failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// Not looked up (single process, or the failure was local).
    Unknown,
    /// These ranks stopped sending heartbeats.
    Ranks(Vec<usize>),
    /// The store itself is gone: rank 0, which hosts it, has exited.
    StoreGone,
}

fn diagnosis(missing: &Missing) -> String {
    match missing {
        Missing::Unknown => String::new(),
        Missing::Ranks(r) if r.is_empty() => {
            "\n  (every rank still has a heartbeat: look for a rank stuck elsewhere or issuing \
             collectives in a different order)"
                .into()
        }
        Missing::Ranks(r) => {
            format!("\n  (no heartbeat from rank(s) {r:?}: they have exited or hung)")
        }
        Missing::StoreGone => {
            "\n  (the rendezvous store is unreachable, so rank 0, which hosts it, has exited)"
                .into()
        }
    }
}
