//! Reading a worker's place from the variables torchrun (torch.distributed.run) exports.
//! Only `RANK` and `WORLD_SIZE` are required, so hand-rolled launchers that set torch's
//! variables work too; the rest default as torch's own `env://` initialisation assumes.

use super::env::{ensure, ClusterEnv, Launcher, DEFAULT_ADDR};
use super::vars::Vars;
use super::{ClusterError, DEFAULT_PORT};

type Result<T> = std::result::Result<T, ClusterError>;

const HINT: &str = "set by torchrun; RANK or WORLD_SIZE being set selects the torchrun launcher";

pub(super) fn read<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<ClusterEnv> {
    let rank = v.uint(&["RANK"], HINT)?;
    let world_size = v.positive(&["WORLD_SIZE"], HINT)?;
    let local_rank = v.opt_uint(&["LOCAL_RANK"], HINT)?.unwrap_or(0);
    let local_world_size = v
        .opt_positive(&["LOCAL_WORLD_SIZE"], HINT)?
        .unwrap_or(world_size);
    let node_rank = v
        .opt_uint(&["GROUP_RANK"], HINT)?
        .unwrap_or(rank / local_world_size);
    let num_nodes = world_size.div_ceil(local_world_size);
    check(rank < world_size, || {
        format!("RANK={rank} is not below WORLD_SIZE={world_size}")
    })?;
    check(local_world_size <= world_size, || {
        format!("LOCAL_WORLD_SIZE={local_world_size} exceeds WORLD_SIZE={world_size}")
    })?;
    check(local_rank < local_world_size, || {
        format!("LOCAL_RANK={local_rank} is not below LOCAL_WORLD_SIZE={local_world_size}")
    })?;
    check(node_rank < num_nodes, || {
        format!("GROUP_RANK={node_rank} is not below the node count {num_nodes} (WORLD_SIZE / LOCAL_WORLD_SIZE)")
    })?;
    let master_addr = v.master_addr()?.unwrap_or_else(|| DEFAULT_ADDR.to_string());
    let restart_count = v
        .opt_uint(&["TORCHELASTIC_RESTART_COUNT"], HINT)?
        .unwrap_or(0);
    Ok(ClusterEnv {
        launcher: Launcher::Torchrun,
        rank,
        world_size,
        local_rank,
        local_world_size,
        node_rank,
        num_nodes,
        master_port: v.master_port()?.unwrap_or(DEFAULT_PORT),
        nodes: vec![master_addr.clone()],
        master_addr,
        job_id: run_id(v),
        step_id: None,
        array_job_id: None,
        array_task_id: None,
        restart_count,
        // torch/distributed/rendezvous.py: `_torchelastic_use_agent_store()`.
        agent_store: v.get("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True"),
    })
}

fn check(ok: bool, detail: impl FnOnce() -> String) -> Result<()> {
    ensure(Launcher::Torchrun, ok, detail)
}

/// torchrun's `--rdzv-id` defaults to the literal `none`, which would make every such run look
/// like the same group; treat it as no id.
fn run_id<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Option<String> {
    v.get("TORCHELASTIC_RUN_ID")
        .filter(|id| !id.is_empty() && id != "none")
}
