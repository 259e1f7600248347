//! The process's peak resident memory, reported with a run's results: what a job needs to ask
//! its scheduler for.

/// Peak resident set size in bytes (`VmHWM` of /proc/self/status), where Linux reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
