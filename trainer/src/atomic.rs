//! Atomic file writes (temp file, fsync, rename, fsync the directory): the workspace's
//! `nls-atomic` crate, shared with the launcher and the plots.

pub use nls_atomic::{write_atomic, write_atomic_parts};
