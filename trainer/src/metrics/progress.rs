//! A one-line status on stderr, redrawn in place, only when stderr is a terminal (batch logs
//! get the `log` lines instead of carriage returns).

use std::io::{IsTerminal, Write};

pub struct Progress {
    enabled: bool,
    total: usize,
}

impl Progress {
    pub fn new(total: usize, enabled: bool) -> Progress {
        Progress {
            enabled: enabled && std::io::stderr().is_terminal(),
            total,
        }
    }

    pub fn update(&self, step: usize, message: &str) {
        if self.enabled {
            let pct = 100.0 * step as f64 / self.total.max(1) as f64;
            eprint!("\r\x1b[2K[{step}/{} {pct:5.1}%] {message}", self.total);
            std::io::stderr().flush().ok();
        }
    }

    pub fn finish(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}
