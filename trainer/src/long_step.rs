//! Progress and stop requests for the long steps before training (noise generation over many
//! configurations, feature caching): a log line about every tenth of the work or every
//! [`EVERY`], whichever comes first, and the stop flag checked at each unit of work, so such a
//! step never runs silent or deaf to SIGTERM/SIGINT for minutes.

use crate::cluster::signals;
use anyhow::Result;
use std::time::{Duration, Instant};

/// Longest silence between two progress lines.
const EVERY: Duration = Duration::from_secs(10);

pub struct LongStep {
    what: String,
    total: usize,
    started: Instant,
    last_line: Instant,
    /// The next tenth of `total` that earns a line.
    next_tenth: usize,
}

impl LongStep {
    /// `what` names the step in log lines and in the error of an interrupted step.
    pub fn new(what: impl Into<String>, total: usize) -> LongStep {
        let now = Instant::now();
        LongStep {
            what: what.into(),
            total,
            started: now,
            last_line: now,
            next_tenth: 1,
        }
    }

    /// Call after `done` units of `total`: logs when due, and errors with
    /// [`signals::Interrupted`] when a stop signal has arrived.
    pub fn advance(&mut self, done: usize) -> Result<()> {
        signals::check(|| format!("{} ({done} of {} done)", self.what, self.total))?;
        let reached_tenth = done * 10 >= self.next_tenth * self.total;
        if done < self.total && (reached_tenth || self.last_line.elapsed() >= EVERY) {
            self.log(done);
        }
        while self.next_tenth <= 10 && done * 10 >= self.next_tenth * self.total {
            self.next_tenth += 1;
        }
        Ok(())
    }

    fn log(&mut self, done: usize) {
        log::info!(
            "{}: {done}/{} ({:.0}%, {:.0} s)",
            self.what,
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64,
            self.started.elapsed().as_secs_f64()
        );
        self.last_line = Instant::now();
    }
}
