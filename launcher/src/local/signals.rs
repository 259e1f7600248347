//! SIGUSR1, SIGTERM and SIGINT sent to `nls-launch --local` become flags the supervision loop
//! reads: SIGUSR1 is forwarded as a preemption (the ranks checkpoint and the group restarts),
//! SIGTERM and SIGINT as a stop (the ranks checkpoint and the executor ends, resumable).
//! The handler only stores an atomic.

use anyhow::{Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

const USR1: u8 = 1;
const STOP: u8 = 2;
static PENDING: AtomicU8 = AtomicU8::new(0);
/// A stop once asked for stays asked for: no further run of a sweep starts.
static STOP_ASKED: AtomicBool = AtomicBool::new(false);

/// What arrived since the last [`take`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub usr1: bool,
    /// SIGTERM or SIGINT.
    pub stop: bool,
}

extern "C" fn record(signal: i32) {
    let bit = match signal == Signal::SIGUSR1 as i32 {
        true => USR1,
        false => STOP,
    };
    PENDING.fetch_or(bit, Ordering::SeqCst);
    if bit == STOP {
        STOP_ASKED.store(true, Ordering::SeqCst);
    }
}

/// Installs the handlers (`SA_RESTART`: a signal during a write does not fail it).
pub fn install() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGUSR1, Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only performs an atomic read-modify-write, which is
        // async-signal-safe.
        unsafe { sigaction(signal, &action) }
            .with_context(|| format!("installing the {signal} handler"))?;
    }
    Ok(())
}

/// The signals received since the last call, cleared.
pub fn take() -> Received {
    let bits = PENDING.swap(0, Ordering::SeqCst);
    Received {
        usr1: bits & USR1 != 0,
        stop: bits & STOP != 0,
    }
}

/// Whether a SIGTERM or SIGINT has arrived since [`install`] (not cleared by [`take`]).
pub fn stop_asked() -> bool {
    STOP_ASKED.load(Ordering::SeqCst)
}
