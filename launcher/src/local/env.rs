//! The variables `srun` would export to each task, so the trainer reads a local run exactly as
//! it reads a SLURM step (its `cluster::slurm` module), plus the executor's own:
//! `NLS_RESTART_BY_EXIT_CODE` (exit with 75 instead of `scontrol requeue`) and
//! `NLS_TIME_LIMIT_S` (the limit `--time` sets, or `unlimited`; under SLURM the trainer asks
//! `scontrol`).
//!
//! Node names are `local0`, `local1`, ...: nothing resolves them, since `MASTER_ADDR` is set
//! to the loopback address.

/// Where one process sits in a local job.
#[derive(Clone, Debug, PartialEq)]
pub struct Place {
    pub job_id: u64,
    pub name: String,
    pub nodes: u32,
    pub tasks_per_node: u32,
    pub rank: u32,
    /// (array job id, task index) inside a sweep.
    pub array: Option<(u64, usize)>,
    pub cpus_per_task: Option<u32>,
    /// 0 on the first attempt; SLURM leaves the variable unset then.
    pub restarts: u32,
    pub master_port: u16,
    /// Seconds, from `--time`.
    pub time_limit_s: Option<u64>,
    /// `OMP_NUM_THREADS`, when the executor chooses it.
    pub threads: Option<u32>,
}

/// The node list as SLURM prints it: `local0`, `local[0-3]`.
pub fn node_list(nodes: u32) -> String {
    match nodes {
        1 => "local0".into(),
        n => format!("local[0-{}]", n - 1),
    }
}

/// SLURM's tasks-per-node form: `2`, `2(x4)`.
pub fn tasks_per_node(per_node: u32, nodes: u32) -> String {
    match nodes {
        1 => per_node.to_string(),
        n => format!("{per_node}(x{n})"),
    }
}

/// Every variable for this process, in a fixed order.
pub fn rank_env(p: &Place) -> Vec<(String, String)> {
    let world = p.nodes * p.tasks_per_node;
    let mut vars: Vec<(&str, String)> = vec![
        ("SLURM_JOB_ID", p.job_id.to_string()),
        ("SLURM_JOBID", p.job_id.to_string()),
        ("SLURM_JOB_NAME", p.name.clone()),
        ("SLURM_JOB_NUM_NODES", p.nodes.to_string()),
        ("SLURM_NNODES", p.nodes.to_string()),
        ("SLURM_JOB_NODELIST", node_list(p.nodes)),
        ("SLURM_NODELIST", node_list(p.nodes)),
        ("SLURM_STEP_NUM_NODES", p.nodes.to_string()),
        ("SLURM_STEP_NODELIST", node_list(p.nodes)),
        ("SLURM_NTASKS", world.to_string()),
        ("SLURM_NPROCS", world.to_string()),
        ("SLURM_STEP_NUM_TASKS", world.to_string()),
        (
            "SLURM_TASKS_PER_NODE",
            tasks_per_node(p.tasks_per_node, p.nodes),
        ),
        (
            "SLURM_STEP_TASKS_PER_NODE",
            tasks_per_node(p.tasks_per_node, p.nodes),
        ),
        ("SLURM_PROCID", p.rank.to_string()),
        ("SLURM_LOCALID", (p.rank % p.tasks_per_node).to_string()),
        ("SLURM_NODEID", (p.rank / p.tasks_per_node).to_string()),
        ("SLURM_STEP_ID", "0".into()),
        ("MASTER_ADDR", "127.0.0.1".into()),
        ("MASTER_PORT", p.master_port.to_string()),
        ("NLS_RESTART_BY_EXIT_CODE", "1".into()),
    ];
    if let Some((array_job, task)) = p.array {
        vars.push(("SLURM_ARRAY_JOB_ID", array_job.to_string()));
        vars.push(("SLURM_ARRAY_TASK_ID", task.to_string()));
    }
    if let Some(c) = p.cpus_per_task {
        vars.push(("SLURM_CPUS_PER_TASK", c.to_string()));
    }
    if let Some(t) = p.threads {
        vars.push(("OMP_NUM_THREADS", t.to_string()));
    }
    if p.restarts > 0 {
        vars.push(("SLURM_RESTART_COUNT", p.restarts.to_string()));
    }
    // Always set: without it the trainer would ask `scontrol` for the limit.
    let limit = p.time_limit_s.map_or("unlimited".into(), |t| t.to_string());
    vars.push(("NLS_TIME_LIMIT_S", limit));
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(rank: u32) -> Place {
        Place {
            job_id: 42,
            name: "nls-x".into(),
            nodes: 2,
            tasks_per_node: 3,
            rank,
            array: None,
            cpus_per_task: None,
            restarts: 0,
            master_port: 29500,
            time_limit_s: None,
            threads: None,
        }
    }

    fn get<'a>(vars: &'a [(String, String)], key: &str) -> Option<&'a str> {
        vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn ranks_are_placed_node_by_node() {
        // Rank 4 of 2 nodes × 3 tasks: node 1, local 1 (SLURM's block distribution).
        let v = rank_env(&place(4));
        assert_eq!(get(&v, "SLURM_PROCID"), Some("4"));
        assert_eq!(get(&v, "SLURM_NODEID"), Some("1"));
        assert_eq!(get(&v, "SLURM_LOCALID"), Some("1"));
        assert_eq!(get(&v, "SLURM_NTASKS"), Some("6"));
        assert_eq!(get(&v, "SLURM_STEP_NODELIST"), Some("local[0-1]"));
        assert_eq!(get(&v, "SLURM_STEP_TASKS_PER_NODE"), Some("3(x2)"));
        assert_eq!(get(&v, "SLURM_RESTART_COUNT"), None);
        assert_eq!(get(&v, "SLURM_ARRAY_TASK_ID"), None);
        assert_eq!(get(&v, "NLS_TIME_LIMIT_S"), Some("unlimited"));
    }

    #[test]
    fn restarts_arrays_and_limits_appear_when_set() {
        let mut p = place(0);
        p.nodes = 1;
        p.restarts = 2;
        p.array = Some((42, 7));
        p.time_limit_s = Some(120);
        let v = rank_env(&p);
        assert_eq!(get(&v, "SLURM_RESTART_COUNT"), Some("2"));
        assert_eq!(get(&v, "SLURM_ARRAY_TASK_ID"), Some("7"));
        assert_eq!(get(&v, "SLURM_JOB_NODELIST"), Some("local0"));
        assert_eq!(get(&v, "SLURM_TASKS_PER_NODE"), Some("3"));
        assert_eq!(get(&v, "NLS_TIME_LIMIT_S"), Some("120"));
    }
}
