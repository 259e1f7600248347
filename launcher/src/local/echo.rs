//! Rank 0's log files, echoed to the terminal as they grow, so a local run shows its progress
//! the way a foreground script would; every rank's output stays in its files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

/// A log file and how much of it has been echoed.
struct Followed {
    path: PathBuf,
    offset: u64,
    to_stderr: bool,
}

pub struct Echo {
    files: Vec<Followed>,
}

impl Echo {
    /// Follows `stdout` and `stderr` from their current ends (earlier attempts are not
    /// repeated); `on` false echoes nothing.
    pub fn new(stdout: PathBuf, stderr: PathBuf, on: bool) -> Echo {
        if !on {
            return Echo { files: Vec::new() };
        }
        let follow = |path: PathBuf, to_stderr| Followed {
            offset: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            path,
            to_stderr,
        };
        Echo {
            files: vec![follow(stdout, false), follow(stderr, true)],
        }
    }

    /// Prints what was appended since the last call. Echoing is best effort: a log that cannot
    /// be read is skipped, and the run goes on.
    pub fn pump(&mut self) {
        for f in &mut self.files {
            let Ok(mut file) = File::open(&f.path) else {
                continue;
            };
            let mut new = Vec::new();
            if file.seek(SeekFrom::Start(f.offset)).is_err() || file.read_to_end(&mut new).is_err()
            {
                continue;
            }
            f.offset += new.len() as u64;
            let written = match f.to_stderr {
                true => std::io::stderr().write_all(&new),
                false => std::io::stdout().write_all(&new),
            };
            written.ok();
        }
        std::io::stdout().flush().ok();
    }
}
