//! One run per exp-dir: rank 0 holds an exclusive `flock` on `<exp-dir>/.lock` for the whole
//! run, taken before anything else is written there. A second run on the same folder refuses at
//! start and names the holder (host, pid, SLURM job, start time, from the file's content).
//!
//! The kernel drops a `flock` when its holder dies, however it dies (SIGKILL included), so a
//! lock file left behind is never stale: the next run (a requeued job, a restart) simply takes
//! it. The file is rewritten in place, not through the atomic rename, because the lock belongs to
//! the file's inode: a rename would hand the next run a different, unlocked file.

use crate::cluster::ClusterEnv;
use crate::distributed::agree::any_rank;
use crate::distributed::ProcessGroup;
use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

pub const LOCK_FILE: &str = ".lock";

/// Held for as long as it lives; dropping it (or the process ending) releases the folder.
pub struct RunLock {
    _lock: Flock<File>,
}

/// Rank 0 takes the lock; every rank learns whether it did, so that all of them stop together
/// when another run holds the folder (rank 0 with the holder's name, the others pointing to it).
pub fn acquire_for_group(
    exp_dir: &Path,
    env: &ClusterEnv,
    group: &ProcessGroup,
) -> Result<Option<RunLock>> {
    let mine = (group.rank() == 0).then(|| acquire(exp_dir, env));
    let failed = matches!(mine, Some(Err(_)));
    if any_rank(group, failed)? && mine.is_none() {
        bail!(
            "rank 0 could not lock {}: see its log",
            exp_dir.join(LOCK_FILE).display()
        );
    }
    mine.transpose()
}

/// Takes `<exp-dir>/.lock` (creating the folder), or says who holds it and what to do.
pub fn acquire(exp_dir: &Path, env: &ClusterEnv) -> Result<RunLock> {
    std::fs::create_dir_all(exp_dir)
        .with_context(|| format!("creating the exp-dir {}", exp_dir.display()))?;
    let path = exp_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((mut file, Errno::EWOULDBLOCK)) => bail!(in_use(exp_dir, &path, &mut file)),
        Err((_, e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    };
    let holder = holder_description(env);
    lock.set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| lock.write_all(holder.as_bytes()))
        .and_then(|()| lock.sync_all())
        .with_context(|| format!("writing the holder into {}", path.display()))?;
    Ok(RunLock { _lock: lock })
}

fn in_use(exp_dir: &Path, path: &Path, file: &mut File) -> String {
    let mut holder = String::new();
    file.read_to_string(&mut holder).ok();
    let holder = match holder.trim() {
        "" => "a run that is still starting".to_string(),
        h => h.to_string(),
    };
    format!(
        "the exp-dir {} is in use by another run ({holder}; lock {}): two runs in one folder \
         would mix their files. Wait for that run to end or stop it (scancel / kill), or give \
         this run another --exp-dir",
        exp_dir.display(),
        path.display()
    )
}

/// `host H, pid P, SLURM job J, started T` (the job only under SLURM).
fn holder_description(env: &ClusterEnv) -> String {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "?".into());
    let job = match &env.job_id {
        Some(job) => format!(", SLURM job {job}"),
        None => String::new(),
    };
    format!(
        "host {host}, pid {}{job}, started {}",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}
