//! Reading a task's place from the variables `srun` exports (`SLURM_PROCID` & co.).
//!
//! Within a step, the step's own variables describe the processes that will meet; the job's
//! describe the whole allocation, which a step may use only part of (`srun -N1` in a two-node
//! job), and `srun --preserve-env` leaves `SLURM_NTASKS` and `SLURM_NNODES` at the job's values.
//! So the step's task count, node list and tasks-per-node are preferred, and each node list is
//! checked only against the node count of the same scope.
//!
//! Not detected: running the trainer directly in an `sbatch` script without `srun`. The batch
//! script is task 0 of the job, so it reads as rank 0 of the job's task count and will wait at
//! rendezvous for peers that were never started.

use super::env::{ensure, ClusterEnv, Launcher};
use super::vars::Vars;
use super::{derive_port, hostlist, parse_tasks_per_node, ClusterError};

type Result<T> = std::result::Result<T, ClusterError>;

const HINT: &str = "set by srun; are you running inside a SLURM step?";
const WORLD_VARS: [&str; 3] = ["SLURM_STEP_NUM_TASKS", "SLURM_NTASKS", "SLURM_NPROCS"];
const NODE_LISTS: [&str; 3] = [
    "SLURM_STEP_NODELIST",
    "SLURM_JOB_NODELIST",
    "SLURM_NODELIST",
];
const TASK_LISTS: [&str; 2] = ["SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"];

pub(super) fn read<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<ClusterEnv> {
    let rank = v.uint(&["SLURM_PROCID"], HINT)?;
    let world_size = v.positive(&WORLD_VARS, HINT)?;
    let local_rank = v.uint(&["SLURM_LOCALID"], HINT)?;
    let node_rank = v.uint(&["SLURM_NODEID"], HINT)?;
    let job: u64 = v.uint(&["SLURM_JOB_ID", "SLURM_JOBID"], HINT)?;
    let array_task_id = v.opt_uint(&["SLURM_ARRAY_TASK_ID"], HINT)?;
    let nodes = nodes(v)?;
    check(rank < world_size, || {
        let world_var = v.first_name(&WORLD_VARS);
        format!("SLURM_PROCID={rank} is not below {world_var}={world_size}")
    })?;
    check(node_rank < nodes.len(), || {
        format!(
            "SLURM_NODEID={node_rank} is not below the node count {}",
            nodes.len()
        )
    })?;
    let local_world_size = local_world_size(v, world_size, nodes.len(), node_rank)?;
    check(local_rank < local_world_size, || {
        format!("SLURM_LOCALID={local_rank} is not below this node's task count {local_world_size}")
    })?;
    Ok(ClusterEnv {
        launcher: Launcher::Slurm,
        rank,
        world_size,
        local_rank,
        local_world_size,
        node_rank,
        num_nodes: nodes.len(),
        master_addr: v.master_addr()?.unwrap_or_else(|| nodes[0].clone()),
        master_port: v
            .master_port()?
            .unwrap_or_else(|| derive_port(job, array_task_id)),
        nodes,
        job_id: Some(job.to_string()),
        step_id: v.first(&["SLURM_STEP_ID", "SLURM_STEPID"]).map(|(_, s)| s),
        array_job_id: v.opt_uint(&["SLURM_ARRAY_JOB_ID"], HINT)?,
        array_task_id,
        restart_count: v.opt_uint(&["SLURM_RESTART_COUNT"], HINT)?.unwrap_or(0),
        agent_store: false,
    })
}

fn check(ok: bool, detail: impl FnOnce() -> String) -> Result<()> {
    ensure(Launcher::Slurm, ok, detail)
}

/// The expanded node list, checked against the node count of the same scope when one is set.
fn nodes<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Vec<String>> {
    let (var, list) = v
        .first(&NODE_LISTS)
        .ok_or_else(|| v.missing(&NODE_LISTS, HINT))?;
    let nodes = hostlist::expand(&list).map_err(|e| e.in_var(var))?;
    let count_vars: &[&'static str] = match var {
        "SLURM_STEP_NODELIST" => &["SLURM_STEP_NUM_NODES"],
        _ => &["SLURM_JOB_NUM_NODES", "SLURM_NNODES"],
    };
    if let Some(count) = v.opt_uint::<usize>(count_vars, HINT)? {
        let count_var = v.first_name(count_vars);
        check(count == nodes.len(), || {
            format!(
                "{count_var}={count} but {var}='{list}' names {} nodes",
                nodes.len()
            )
        })?;
    }
    Ok(nodes)
}

/// This node's task count from the tasks-per-node list, or an even split when SLURM gave none.
fn local_world_size<F: Fn(&str) -> Option<String>>(
    v: &Vars<F>,
    world_size: usize,
    num_nodes: usize,
    node_rank: usize,
) -> Result<usize> {
    let Some((var, list)) = v.first(&TASK_LISTS) else {
        check(world_size.is_multiple_of(num_nodes), || {
            format!(
                "{}={world_size} tasks do not divide over {num_nodes} nodes and {} is unset",
                v.first_name(&WORLD_VARS),
                TASK_LISTS.join(" / ")
            )
        })?;
        return Ok(world_size / num_nodes);
    };
    let counts = parse_tasks_per_node(&list).map_err(|e| e.in_var(var))?;
    let sum = counts.iter().fold(0usize, |s, &c| s.saturating_add(c));
    check(counts.len() != num_nodes || sum == world_size, || {
        let world_var = v.first_name(&WORLD_VARS);
        format!("{var}='{list}' sums to {sum} tasks but {world_var}={world_size}")
    })?;
    check(node_rank < counts.len(), || {
        format!("{var}='{list}' has no entry for SLURM_NODEID={node_rank}")
    })?;
    Ok(counts[node_rank])
}
