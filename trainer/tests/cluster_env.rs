//! Launcher detection and environment parsing, driven through `ClusterEnv::from_vars` with
//! explicit maps so the tests never touch (or race on) the process environment.

use std::collections::HashMap;
use trainer::cluster::{derive_port, ClusterEnv, ClusterError, Launcher, DEFAULT_PORT};

fn read(vars: &[(&str, &str)]) -> Result<ClusterEnv, ClusterError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ClusterEnv::from_vars(|k| map.get(k).cloned())
}

/// Rank 5 of a two-node, eight-task SLURM step: the base that the cases below vary.
const SLURM: &[(&str, &str)] = &[
    ("SLURM_PROCID", "5"),
    ("SLURM_NTASKS", "8"),
    ("SLURM_LOCALID", "1"),
    ("SLURM_NODEID", "1"),
    ("SLURM_JOB_ID", "4242"),
    ("SLURM_JOB_NODELIST", "gpu-[01-02]"),
    ("SLURM_JOB_NUM_NODES", "2"),
    ("SLURM_TASKS_PER_NODE", "4(x2)"),
];

type Vars = Vec<(&'static str, &'static str)>;
/// A named variation of the environment and a check of what it should read as.
type VariantCase = (&'static str, Vars, fn(&ClusterEnv));

/// `base` with `changes` applied; an empty value in `changes` removes the variable.
fn with(base: &[(&'static str, &'static str)], changes: &[(&'static str, &'static str)]) -> Vars {
    let mut vars: Vars = base
        .iter()
        .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
        .copied()
        .collect();
    vars.extend(changes.iter().filter(|(_, v)| !v.is_empty()).copied());
    vars
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn slurm_multi_node() {
    let env = read(SLURM).unwrap();
    let want = ClusterEnv {
        launcher: Launcher::Slurm,
        rank: 5,
        world_size: 8,
        local_rank: 1,
        local_world_size: 4,
        node_rank: 1,
        num_nodes: 2,
        master_addr: "gpu-01".into(),
        master_port: derive_port(4242, None),
        nodes: strings(&["gpu-01", "gpu-02"]),
        job_id: Some("4242".into()),
        step_id: None,
        array_job_id: None,
        array_task_id: None,
        restart_count: 0,
        agent_store: false,
    };
    assert_eq!(env, want);
    assert!(!env.is_main());
    assert_eq!(env.group_id(), "slurm:4242");
}

#[test]
fn slurm_variants() {
    let cases: Vec<VariantCase> = vec![
        (
            "array job",
            with(
                SLURM,
                &[
                    ("SLURM_JOB_ID", "1003"),
                    ("SLURM_ARRAY_JOB_ID", "1000"),
                    ("SLURM_ARRAY_TASK_ID", "3"),
                ],
            ),
            |e| {
                assert_eq!((e.array_job_id, e.array_task_id), (Some(1000), Some(3)));
                assert_eq!(e.master_port, derive_port(1003, Some(3)));
                assert_ne!(e.master_port, derive_port(1003, None));
            },
        ),
        (
            "step nodelist and tasks preferred over the job's",
            with(
                SLURM,
                &[
                    ("SLURM_JOB_NODELIST", "n[1-4]"),
                    ("SLURM_JOB_NUM_NODES", "4"),
                    ("SLURM_TASKS_PER_NODE", "1(x4)"),
                    ("SLURM_STEP_NODELIST", "n[2-3]"),
                    ("SLURM_STEP_NUM_NODES", "2"),
                    ("SLURM_STEP_TASKS_PER_NODE", "4(x2)"),
                ],
            ),
            |e| {
                assert_eq!(e.nodes, strings(&["n2", "n3"]));
                assert_eq!((e.num_nodes, e.local_world_size), (2, 4));
                assert_eq!(e.master_addr, "n2");
            },
        ),
        (
            "srun --preserve-env: step counts win over the job's",
            with(
                SLURM,
                &[
                    ("SLURM_NTASKS", "16"),
                    ("SLURM_NNODES", "4"),
                    ("SLURM_JOB_NODELIST", "gpu-[01-04]"),
                    ("SLURM_JOB_NUM_NODES", "4"),
                    ("SLURM_TASKS_PER_NODE", "4(x4)"),
                    ("SLURM_STEP_NUM_TASKS", "8"),
                    ("SLURM_STEP_NODELIST", "gpu-[01-02]"),
                    ("SLURM_STEP_NUM_NODES", "2"),
                    ("SLURM_STEP_TASKS_PER_NODE", "4(x2)"),
                ],
            ),
            |e| {
                assert_eq!((e.world_size, e.num_nodes, e.local_world_size), (8, 2, 4));
                assert_eq!(e.nodes, strings(&["gpu-01", "gpu-02"]));
            },
        ),
        (
            "uneven tasks per node",
            with(
                SLURM,
                &[
                    ("SLURM_PROCID", "9"),
                    ("SLURM_NTASKS", "11"),
                    ("SLURM_NODEID", "2"),
                    ("SLURM_LOCALID", "1"),
                    ("SLURM_JOB_NODELIST", "rack[1-2]-n[1-2]"),
                    ("SLURM_JOB_NUM_NODES", ""),
                    ("SLURM_TASKS_PER_NODE", "4(x2),2,1"),
                ],
            ),
            |e| {
                assert_eq!((e.num_nodes, e.local_world_size), (4, 2));
                assert_eq!(e.nodes[2], "rack2-n1");
            },
        ),
        (
            "no tasks-per-node: even split",
            with(SLURM, &[("SLURM_TASKS_PER_NODE", "")]),
            |e| assert_eq!(e.local_world_size, 4),
        ),
        (
            "explicit MASTER_ADDR and MASTER_PORT win",
            with(
                SLURM,
                &[("MASTER_ADDR", "10.1.2.3"), ("MASTER_PORT", "6000")],
            ),
            |e| assert_eq!((e.master_addr.as_str(), e.master_port), ("10.1.2.3", 6000)),
        ),
        (
            "old alias names, SLURM_NNODES",
            with(
                SLURM,
                &[
                    ("SLURM_NTASKS", ""),
                    ("SLURM_NPROCS", "8"),
                    ("SLURM_JOB_ID", ""),
                    ("SLURM_JOBID", "77"),
                    ("SLURM_JOB_NODELIST", ""),
                    ("SLURM_NODELIST", "a,b"),
                    ("SLURM_JOB_NUM_NODES", ""),
                    ("SLURM_NNODES", "2"),
                ],
            ),
            |e| {
                assert_eq!((e.world_size, e.job_id.as_deref()), (8, Some("77")));
                assert_eq!(e.nodes, strings(&["a", "b"]));
            },
        ),
        (
            "step id and requeue count",
            with(
                SLURM,
                &[("SLURM_STEP_ID", "0"), ("SLURM_RESTART_COUNT", "2")],
            ),
            |e| {
                assert_eq!(e.restart_count, 2);
                assert_eq!(e.group_id(), "slurm:4242.0");
            },
        ),
        (
            "rank 0 is main",
            with(
                SLURM,
                &[
                    ("SLURM_PROCID", "0"),
                    ("SLURM_NODEID", "0"),
                    ("SLURM_LOCALID", "0"),
                ],
            ),
            |e| assert!(e.is_main()),
        ),
        (
            "torchrun inside a SLURM allocation: torchrun wins",
            with(
                SLURM,
                &[
                    ("TORCHELASTIC_RUN_ID", "r1"),
                    ("RANK", "3"),
                    ("WORLD_SIZE", "16"),
                ],
            ),
            |e| {
                assert_eq!(e.launcher, Launcher::Torchrun);
                assert_eq!((e.rank, e.world_size), (3, 16));
                assert_eq!(e.group_id(), "torchrun:r1");
            },
        ),
    ];
    for (name, vars, check) in cases {
        let env = read(&vars).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            env.launcher == Launcher::Slurm,
            !name.starts_with("torchrun"),
            "{name}"
        );
        check(&env);
    }
}

#[test]
fn torchrun_full() {
    let env = read(&[
        ("RANK", "5"),
        ("WORLD_SIZE", "8"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "4"),
        ("GROUP_RANK", "1"),
        ("MASTER_ADDR", "10.0.0.1"),
        ("MASTER_PORT", "29400"),
        ("TORCHELASTIC_RUN_ID", "job7"),
        ("TORCHELASTIC_RESTART_COUNT", "2"),
        ("TORCHELASTIC_USE_AGENT_STORE", "True"),
    ])
    .unwrap();
    let want = ClusterEnv {
        launcher: Launcher::Torchrun,
        rank: 5,
        world_size: 8,
        local_rank: 1,
        local_world_size: 4,
        node_rank: 1,
        num_nodes: 2,
        master_addr: "10.0.0.1".into(),
        master_port: 29400,
        nodes: strings(&["10.0.0.1"]),
        job_id: Some("job7".into()),
        step_id: None,
        array_job_id: None,
        array_task_id: None,
        restart_count: 2,
        agent_store: true,
    };
    assert_eq!(env, want);
}

#[test]
fn torchrun_defaults() {
    let env = read(&[("RANK", "3"), ("WORLD_SIZE", "4")]).unwrap();
    assert_eq!(env.launcher, Launcher::Torchrun);
    assert_eq!((env.local_rank, env.local_world_size), (0, 4));
    assert_eq!((env.node_rank, env.num_nodes), (0, 1));
    assert_eq!(
        (env.master_addr.as_str(), env.master_port),
        ("127.0.0.1", DEFAULT_PORT)
    );
    assert_eq!(env.job_id, None);
    assert_eq!(env.group_id(), "torchrun:127.0.0.1:29500");

    let env = read(&[
        ("RANK", "5"),
        ("WORLD_SIZE", "6"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "4"),
    ])
    .unwrap();
    assert_eq!(
        (env.node_rank, env.num_nodes),
        (1, 2),
        "GROUP_RANK = rank / local, nodes rounded up"
    );

    let env = read(&[
        ("RANK", "0"),
        ("WORLD_SIZE", "1"),
        ("TORCHELASTIC_RUN_ID", "none"),
    ])
    .unwrap();
    assert_eq!(
        env.job_id, None,
        "torchrun's default run id 'none' is no id"
    );
}

#[test]
fn single_process() {
    let env = read(&[]).unwrap();
    assert_eq!(env, ClusterEnv::single());
    assert!(env.is_main());
    assert_eq!((env.rank, env.world_size, env.num_nodes), (0, 1, 1));
    assert_eq!(env.nodes, strings(&["localhost"]));
    assert_eq!(env.group_id(), format!("single:{}", std::process::id()));

    let env = read(&[("MASTER_ADDR", "myhost"), ("MASTER_PORT", "12345")]).unwrap();
    assert_eq!(env.launcher, Launcher::Single);
    assert_eq!(
        (env.master_addr.as_str(), env.master_port),
        ("myhost", 12345)
    );
}

#[test]
fn from_env_reads_the_process_environment() {
    let direct = ClusterEnv::from_vars(|k| std::env::var(k).ok());
    match (ClusterEnv::from_env(), direct) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("from_env {a:?} disagrees with from_vars {b:?}"),
    }
}

#[test]
fn malformed_values_are_clear_errors() {
    let hint = "(set by srun; are you running inside a SLURM step?)";
    let port = "is not a TCP port (an integer in 1..=65535)";
    let cases: Vec<(Vars, String)> = vec![
        (
            with(SLURM, &[("SLURM_PROCID", "abc")]),
            format!("SLURM_PROCID='abc' is not a non-negative integer {hint}"),
        ),
        (
            with(SLURM, &[("SLURM_PROCID", "-1")]),
            "SLURM_PROCID='-1' is not a non-negative integer".into(),
        ),
        (
            with(SLURM, &[("SLURM_PROCID", "+1")]),
            "SLURM_PROCID='+1' is not a non-negative integer".into(),
        ),
        (
            vec![("SLURM_PROCID", "")],
            "SLURM_PROCID='' is not a non-negative integer".into(),
        ),
        (
            with(SLURM, &[("SLURM_LOCALID", " 1")]),
            "SLURM_LOCALID=' 1' is not".into(),
        ),
        (
            with(SLURM, &[("SLURM_STEP_NUM_TASKS", "6")]),
            "SLURM_TASKS_PER_NODE='4(x2)' sums to 8 tasks but SLURM_STEP_NUM_TASKS=6".into(),
        ),
        (
            with(SLURM, &[("SLURM_NTASKS", "0")]),
            "SLURM_NTASKS='0' is not a positive integer".into(),
        ),
        (
            with(SLURM, &[("SLURM_NTASKS", "")]),
            format!("SLURM_STEP_NUM_TASKS (or SLURM_NTASKS, SLURM_NPROCS) is not set {hint}"),
        ),
        (
            with(SLURM, &[("SLURM_NODEID", "")]),
            "SLURM_NODEID is not set".into(),
        ),
        (
            with(SLURM, &[("SLURM_JOB_ID", "")]),
            "SLURM_JOB_ID (or SLURM_JOBID) is not set".into(),
        ),
        (
            with(SLURM, &[("SLURM_JOB_ID", "12_3")]),
            "SLURM_JOB_ID='12_3' is not a non-negative integer".into(),
        ),
        (
            with(SLURM, &[("SLURM_ARRAY_TASK_ID", "x")]),
            "SLURM_ARRAY_TASK_ID='x' is not".into(),
        ),
        (
            with(SLURM, &[("SLURM_RESTART_COUNT", "many")]),
            "SLURM_RESTART_COUNT='many' is not".into(),
        ),
        (
            with(SLURM, &[("SLURM_JOB_NODELIST", "")]),
            "SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST, SLURM_NODELIST) is not set".into(),
        ),
        (
            with(SLURM, &[("SLURM_JOB_NODELIST", "gpu-[01-")]),
            "SLURM_JOB_NODELIST: hostlist 'gpu-[01-' is malformed: unbalanced '['".into(),
        ),
        (
            with(SLURM, &[("SLURM_TASKS_PER_NODE", "4(x0)")]),
            "SLURM_TASKS_PER_NODE: tasks-per-node '4(x0)' is malformed: repeat count '0'".into(),
        ),
        (
            with(SLURM, &[("SLURM_PROCID", "8")]),
            "inconsistent SLURM environment: SLURM_PROCID=8 is not below SLURM_NTASKS=8".into(),
        ),
        (
            with(SLURM, &[("SLURM_JOB_NUM_NODES", "3")]),
            "SLURM_JOB_NUM_NODES=3 but SLURM_JOB_NODELIST='gpu-[01-02]' names 2 nodes".into(),
        ),
        (
            with(
                SLURM,
                &[
                    ("SLURM_STEP_NODELIST", "gpu-01"),
                    ("SLURM_STEP_NUM_NODES", "2"),
                ],
            ),
            "SLURM_STEP_NUM_NODES=2 but SLURM_STEP_NODELIST='gpu-01' names 1 nodes".into(),
        ),
        (
            with(SLURM, &[("SLURM_NODEID", "2")]),
            "SLURM_NODEID=2 is not below the node count 2".into(),
        ),
        (
            with(SLURM, &[("SLURM_LOCALID", "4")]),
            "SLURM_LOCALID=4 is not below this node's task count 4".into(),
        ),
        (
            with(SLURM, &[("SLURM_TASKS_PER_NODE", "3(x2)")]),
            "SLURM_TASKS_PER_NODE='3(x2)' sums to 6 tasks but SLURM_NTASKS=8".into(),
        ),
        (
            with(SLURM, &[("SLURM_TASKS_PER_NODE", "8")]),
            "SLURM_TASKS_PER_NODE='8' has no entry for SLURM_NODEID=1".into(),
        ),
        (
            with(
                SLURM,
                &[("SLURM_NTASKS", "7"), ("SLURM_TASKS_PER_NODE", "")],
            ),
            "SLURM_NTASKS=7 tasks do not divide over 2 nodes".into(),
        ),
        (
            with(SLURM, &[("MASTER_PORT", "0")]),
            format!("MASTER_PORT='0' {port}"),
        ),
        (
            with(SLURM, &[("MASTER_PORT", "65536")]),
            format!("MASTER_PORT='65536' {port}"),
        ),
        (
            vec![("MASTER_PORT", "abc")],
            format!("MASTER_PORT='abc' {port}"),
        ),
        (vec![("MASTER_PORT", "")], format!("MASTER_PORT='' {port}")),
        (
            vec![("MASTER_ADDR", "")],
            "MASTER_ADDR='' is not a host name or IP address".into(),
        ),
        (
            vec![("RANK", "1")],
            "WORLD_SIZE is not set (set by torchrun".into(),
        ),
        (
            vec![("WORLD_SIZE", "2")],
            "RANK is not set (set by torchrun".into(),
        ),
        (
            vec![("TORCHELASTIC_RUN_ID", "r1")],
            "RANK is not set".into(),
        ),
        (
            vec![("RANK", "x"), ("WORLD_SIZE", "2")],
            "RANK='x' is not a non-negative integer".into(),
        ),
        (
            vec![("RANK", "0"), ("WORLD_SIZE", "0")],
            "WORLD_SIZE='0' is not a positive integer".into(),
        ),
        (
            vec![("RANK", "4"), ("WORLD_SIZE", "4")],
            "inconsistent torchrun environment: RANK=4 is not below WORLD_SIZE=4".into(),
        ),
        (
            vec![
                ("RANK", "0"),
                ("WORLD_SIZE", "4"),
                ("LOCAL_WORLD_SIZE", "0"),
            ],
            "LOCAL_WORLD_SIZE='0' is not a positive integer".into(),
        ),
        (
            vec![
                ("RANK", "0"),
                ("WORLD_SIZE", "4"),
                ("LOCAL_WORLD_SIZE", "8"),
            ],
            "LOCAL_WORLD_SIZE=8 exceeds WORLD_SIZE=4".into(),
        ),
        (
            vec![
                ("RANK", "0"),
                ("WORLD_SIZE", "4"),
                ("LOCAL_RANK", "2"),
                ("LOCAL_WORLD_SIZE", "2"),
            ],
            "LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2".into(),
        ),
        (
            vec![
                ("RANK", "0"),
                ("WORLD_SIZE", "4"),
                ("LOCAL_WORLD_SIZE", "2"),
                ("GROUP_RANK", "2"),
            ],
            "GROUP_RANK=2 is not below the node count 2".into(),
        ),
    ];
    for (vars, want) in cases {
        // Errors must travel through `?` into the trainer's anyhow results.
        match read(&vars).map_err(anyhow::Error::from) {
            Ok(env) => {
                panic!("{vars:?} was accepted as {env:?}; want an error mentioning {want:?}")
            }
            Err(e) => assert!(
                e.to_string().contains(&want),
                "{vars:?}: got {:?}, want {want:?}",
                e.to_string()
            ),
        }
    }
}
