//! Which launcher started this process, and where the process sits in the job. The detection
//! order is documented on [`ClusterEnv::from_vars`], where users of the crate can see it.

use super::port::DEFAULT_PORT;
use super::vars::Vars;
use super::{slurm, torchrun, ClusterError};
use std::fmt;

/// torch's default rendezvous address for a job on one machine.
pub(super) const DEFAULT_ADDR: &str = "127.0.0.1";

/// What started this process, which decides the variables it is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// A task of an `srun` step.
    Slurm,
    /// A torchrun worker, or any launcher that sets torch's `RANK`/`WORLD_SIZE`.
    Torchrun,
    /// Started by hand: rank 0 of 1.
    Single,
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Launcher::Slurm => "SLURM",
            Launcher::Torchrun => "torchrun",
            Launcher::Single => "single-process",
        })
    }
}

/// This process's place in the job, as read from the launcher's environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterEnv {
    pub launcher: Launcher,
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub node_rank: usize,
    pub num_nodes: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// Expanded SLURM node list; `[master_addr]` under torchrun, `["localhost"]` alone.
    pub nodes: Vec<String>,
    /// `SLURM_JOB_ID`; under torchrun `TORCHELASTIC_RUN_ID` unless it is torchrun's
    /// placeholder `none`.
    pub job_id: Option<String>,
    /// `SLURM_STEP_ID`: two steps of one job are different groups.
    pub step_id: Option<String>,
    pub array_job_id: Option<u64>,
    pub array_task_id: Option<u64>,
    /// `SLURM_RESTART_COUNT` (requeues), or `TORCHELASTIC_RESTART_COUNT`; 0 when unset.
    pub restart_count: u32,
    /// Under torchrun with `TORCHELASTIC_USE_AGENT_STORE=True`, torchrun's agent already serves
    /// the store at MASTER_ADDR:MASTER_PORT: every worker joins it as a client, with no key
    /// prefix (torch's `_create_c10d_store`: the agent makes a new store for every restart).
    pub agent_store: bool,
}

impl ClusterEnv {
    /// Read the process environment. Values that are not UTF-8 are kept (lossily) so that they
    /// fail validation with a message instead of looking unset.
    pub fn from_env() -> Result<ClusterEnv, ClusterError> {
        Self::from_vars(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Detect the launcher and read its variables through `get`: the testable core of
    /// [`from_env`](Self::from_env). Detection, first match wins:
    ///
    /// 1. `TORCHELASTIC_RUN_ID` set → torchrun. torchrun started inside a SLURM allocation (one
    ///    `srun` task per node running `torchrun`) inherits `SLURM_PROCID` & co., but those
    ///    describe the srun task that ran torchrun, not this worker; torchrun's variables win.
    /// 2. `SLURM_PROCID` set → SLURM (`srun` sets it for every task of a step).
    /// 3. `RANK` or `WORLD_SIZE` set → torchrun (or any launcher using torch's variables). Both
    ///    are then required: half a configuration is an error, not a silent single-process run.
    /// 4. Otherwise a single process (`MASTER_ADDR`/`MASTER_PORT` still honoured).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<ClusterEnv, ClusterError> {
        let vars = Vars(get);
        match detect(&vars) {
            Launcher::Slurm => slurm::read(&vars),
            Launcher::Torchrun => torchrun::read(&vars),
            Launcher::Single => single_from(&vars),
        }
    }

    /// Rank 0 of a one-process job on localhost, at torch's default port.
    pub fn single() -> ClusterEnv {
        ClusterEnv {
            launcher: Launcher::Single,
            rank: 0,
            world_size: 1,
            local_rank: 0,
            local_world_size: 1,
            node_rank: 0,
            num_nodes: 1,
            master_addr: DEFAULT_ADDR.to_string(),
            master_port: DEFAULT_PORT,
            nodes: vec!["localhost".to_string()],
            job_id: None,
            step_id: None,
            array_job_id: None,
            array_task_id: None,
            restart_count: 0,
            agent_store: false,
        }
    }

    /// Identity of this job's group, used to reject a foreign group met on the same port (ports
    /// are derived from job ids and can collide): `slurm:<job_id>[.<step_id>]`,
    /// `torchrun:<run id, or master addr:port>`, `single:<pid>`.
    pub fn group_id(&self) -> String {
        let endpoint = || format!("{}:{}", self.master_addr, self.master_port);
        match (self.launcher, &self.job_id, &self.step_id) {
            (Launcher::Slurm, Some(job), Some(step)) => format!("slurm:{job}.{step}"),
            (Launcher::Slurm, Some(job), None) => format!("slurm:{job}"),
            (Launcher::Slurm, None, _) => format!("slurm:{}", endpoint()),
            (Launcher::Torchrun, job, _) => {
                format!("torchrun:{}", job.clone().unwrap_or_else(endpoint))
            }
            (Launcher::Single, _, _) => format!("single:{}", std::process::id()),
        }
    }

    pub fn is_main(&self) -> bool {
        self.rank == 0
    }
}

fn detect<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Launcher {
    if v.is_set("TORCHELASTIC_RUN_ID") {
        Launcher::Torchrun
    } else if v.is_set("SLURM_PROCID") {
        Launcher::Slurm
    } else if v.is_set("RANK") || v.is_set("WORLD_SIZE") {
        Launcher::Torchrun
    } else {
        Launcher::Single
    }
}

/// One process; an explicit `MASTER_ADDR`/`MASTER_PORT` still wins (e.g. to dodge a busy port).
fn single_from<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<ClusterEnv, ClusterError> {
    Ok(ClusterEnv {
        master_addr: v.master_addr()?.unwrap_or_else(|| DEFAULT_ADDR.to_string()),
        master_port: v.master_port()?.unwrap_or(DEFAULT_PORT),
        ..ClusterEnv::single()
    })
}

/// A consistency check between values that each parsed fine.
pub(super) fn ensure(
    launcher: Launcher,
    ok: bool,
    detail: impl FnOnce() -> String,
) -> Result<(), ClusterError> {
    match ok {
        true => Ok(()),
        false => Err(ClusterError::Inconsistent {
            launcher,
            detail: detail(),
        }),
    }
}
