//! Options shared by every subcommand that joins the job's process group.

use crate::cluster::ClusterEnv;
use crate::distributed::{BackendKind, DeviceKind, GroupOptions, ProcessGroup};
use anyhow::{Context, Result};
use clap::Args;
use std::time::Duration;

#[derive(Args, Debug, Clone)]
pub struct DistArgs {
    /// Communication backend: nccl on GPUs, gloo on CPUs; auto picks by CUDA availability.
    /// With --device cuda, gloo runs CUDA tensors through the host (several ranks may then
    /// share one GPU, which NCCL refuses).
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// Where each rank computes: the local rank's GPU when CUDA is present and --backend is not
    /// gloo (auto), the CPU, or the GPU whatever the backend (cuda).
    #[arg(long, value_enum, default_value_t = DeviceKind::Auto)]
    pub device: DeviceKind,
    /// Seconds to wait for the rendezvous and for any one collective before failing.
    #[arg(long, default_value_t = 600.0)]
    pub dist_timeout_s: f64,
}

impl DistArgs {
    /// Reads the cluster environment (SLURM, torchrun or single) and joins the group.
    pub fn join(&self) -> Result<(ClusterEnv, ProcessGroup)> {
        self.join_with(false)
    }

    /// [`DistArgs::join`], but a world of one builds its store and backend too.
    pub fn join_even_alone(&self) -> Result<(ClusterEnv, ProcessGroup)> {
        self.join_with(true)
    }

    fn join_with(&self, connect_alone: bool) -> Result<(ClusterEnv, ProcessGroup)> {
        let env = ClusterEnv::from_env().context("reading the cluster environment")?;
        anyhow::ensure!(
            self.dist_timeout_s > 0.0 && self.dist_timeout_s.is_finite(),
            "--dist-timeout-s must be a positive number of seconds, not {}",
            self.dist_timeout_s
        );
        let opts = GroupOptions {
            backend: self.backend,
            device: self.device,
            timeout: Duration::from_secs_f64(self.dist_timeout_s),
            connect_alone,
        };
        let group = ProcessGroup::init(&env, &opts)?;
        log::info!(
            "rank {} of {} ({:?}, node {} of {}) joined via {}:{} with {} on {:?} \
             (node name {}, restart {})",
            env.rank,
            env.world_size,
            env.launcher,
            env.node_rank,
            env.num_nodes,
            env.master_addr,
            env.master_port,
            group.backend_name(),
            group.device(),
            env.nodes.get(env.node_rank).map_or("?", String::as_str),
            env.restart_count
        );
        Ok((env, group))
    }
}
