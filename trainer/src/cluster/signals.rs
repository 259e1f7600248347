//! SIGUSR1 (SLURM's pre-timeout warning) and SIGTERM (preemption, `scancel`) become a flag that
//! the training loop reads at step boundaries; SIGINT (Ctrl-C) counts as SIGTERM, once: a second
//! Ctrl-C kills the process. Long steps before training (noise generation, feature caching) call
//! [`check`] so that a stop request ends them too.
//!
//! The handler only stores an atomic: checkpointing inside a signal handler is what hangs or
//! corrupts runs in the Python tools. Handlers are installed with `SA_RESTART`, so a signal that
//! arrives during a collective or a file write does not make the system call fail.

use anyhow::{Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: none; otherwise the code of the first stop signal received (see [`code`]).
static PENDING: AtomicU8 = AtomicU8::new(0);

/// Which signal asked the run to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopSignal {
    Usr1,
    Term,
}

impl StopSignal {
    /// Small integers so ranks can agree on a signal with an all-reduce (max: SIGTERM wins).
    pub fn code(self) -> u8 {
        match self {
            StopSignal::Usr1 => 1,
            StopSignal::Term => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<StopSignal> {
        match code {
            1 => Some(StopSignal::Usr1),
            2 => Some(StopSignal::Term),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Term => "SIGTERM",
        }
    }
}

extern "C" fn record(signal: i32) {
    let code = if signal == Signal::SIGTERM as i32 || signal == Signal::SIGINT as i32 {
        StopSignal::Term.code()
    } else {
        StopSignal::Usr1.code()
    };
    // Keep the strongest request: a SIGTERM after a SIGUSR1 means preemption.
    PENDING.fetch_max(code, Ordering::SeqCst);
}

/// Installs the handlers for SIGUSR1 and SIGTERM (call before joining the process group, so
/// that an early signal cannot kill the process with its default action).
pub fn install() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // The first Ctrl-C asks for a clean stop; the handler then resets, so a second one kills.
    let once = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART | SaFlags::SA_RESETHAND,
        SigSet::empty(),
    );
    for (signal, action) in [
        (Signal::SIGUSR1, &action),
        (Signal::SIGTERM, &action),
        (Signal::SIGINT, &once),
    ] {
        // SAFETY: the handler only performs an atomic store, which is async-signal-safe.
        unsafe { sigaction(signal, action) }
            .with_context(|| format!("installing the {signal} handler"))?;
    }
    Ok(())
}

/// A stop signal arrived during a step that has nothing to checkpoint.
#[derive(Debug)]
pub struct Interrupted {
    pub signal: StopSignal,
    pub during: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped by {} while {}", self.signal.name(), self.during)
    }
}

impl std::error::Error for Interrupted {}

/// Errors with [`Interrupted`] when a stop signal has arrived; `during` says what was running.
pub fn check(during: impl FnOnce() -> String) -> Result<()> {
    match pending() {
        Some(signal) => Err(Interrupted {
            signal,
            during: during(),
        }
        .into()),
        None => Ok(()),
    }
}

/// The stop signal received so far on this process, if any.
pub fn pending() -> Option<StopSignal> {
    StopSignal::from_code(PENDING.load(Ordering::SeqCst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_signal_sets_the_flag_and_term_wins() {
        install().unwrap();
        assert_eq!(pending(), None);
        nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
        assert_eq!(pending(), Some(StopSignal::Usr1));
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        assert_eq!(pending(), Some(StopSignal::Term));
        nix::sys::signal::raise(Signal::SIGUSR1).unwrap();
        assert_eq!(pending(), Some(StopSignal::Term));
    }
}
