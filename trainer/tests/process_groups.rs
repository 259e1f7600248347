//! Real process groups on loopback: Rust ranks among themselves and beside Python
//! `torch.distributed` ranks, failures that name the rank, and two jobs that derive one port.

mod common;

use common::ranks::{as_rank, assert_succeeded, describe, free_port, wait_all};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn rust_rank(rank: usize, world: usize, port: u16, extra: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(["dist-check", "--backend", "gloo", "--dist-timeout-s", "30"])
        .args(extra);
    as_rank(cmd, rank, world, port).spawn().unwrap()
}

fn python_rank(rank: usize, world: usize, port: u16) -> Child {
    let mut cmd = Command::new(common::python());
    cmd.arg(common::workspace_root().join("tests/python/dist_peer.py"))
        .env("NLS_DIST_TIMEOUT_S", "30");
    as_rank(cmd, rank, world, port).spawn().unwrap()
}

fn all_ok(outputs: &[Output]) {
    assert_succeeded(outputs);
    for o in outputs {
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("dist-check ok"),
            "{}",
            describe(outputs)
        );
    }
}

#[test]
fn rust_ranks_agree_on_every_collective() {
    for world in [2, 4] {
        let port = free_port();
        let children = (0..world)
            .map(|r| rust_rank(r, world, port, &["--rounds", "3"]))
            .collect();
        all_ok(&wait_all(children, LIMIT));
    }
}

/// A lone `dist-check` builds a real store and backend (on one GPU that is NCCL itself), where
/// training alone needs neither: it passes on a free port and fails on a port another process
/// holds, which a world of one without a group would never touch.
#[test]
fn a_lone_dist_check_builds_a_real_group() {
    all_ok(&wait_all(vec![rust_rank(0, 1, free_port(), &[])], LIMIT));
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let out = wait_all(vec![rust_rank(0, 1, port, &[])], LIMIT);
    let err = String::from_utf8_lossy(&out[0].stderr);
    assert!(!out[0].status.success(), "{}", describe(&out));
    assert!(
        err.contains(&format!("port {port} on 127.0.0.1 is busy")),
        "{err}"
    );
}

#[test]
fn rust_and_python_ranks_share_a_group_in_both_orders() {
    for python_is_rank0 in [false, true] {
        let port = free_port();
        let children = if python_is_rank0 {
            vec![python_rank(0, 2, port), rust_rank(1, 2, port, &[])]
        } else {
            vec![rust_rank(0, 2, port, &[]), python_rank(1, 2, port)]
        };
        all_ok(&wait_all(children, LIMIT));
    }
}

#[test]
fn three_way_mixed_group() {
    let port = free_port();
    let children = vec![
        rust_rank(0, 3, port, &[]),
        python_rank(1, 3, port),
        rust_rank(2, 3, port, &[]),
    ];
    all_ok(&wait_all(children, LIMIT));
}

/// Kills `victim` mid-run; the survivors must exit non-zero well within the timeout, naming the
/// operation, their rank and what the store knows about the victim.
fn kill_one(world: usize, victim: usize, expected: &str) {
    let port = free_port();
    let mut children: Vec<Child> = (0..world)
        .map(|r| rust_rank(r, world, port, &["--rounds", "100000", "--pause-ms", "5"]))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    children[victim].kill().unwrap(); // SIGKILL
    let killed_at = Instant::now();
    let outputs = wait_all(children, Duration::from_secs(60));
    let elapsed = killed_at.elapsed();
    assert!(
        elapsed < Duration::from_secs(30),
        "survivors took {elapsed:?} (timeout is 30 s)"
    );
    for (r, o) in outputs.iter().enumerate().filter(|(r, _)| *r != victim) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(2),
            "rank {r}:\n{}",
            describe(&outputs)
        );
        assert!(
            err.contains(&format!("failed on rank {r} of {world}")),
            "rank {r}: {err}"
        );
        assert!(
            err.contains(expected),
            "rank {r} should say {expected:?}: {err}"
        );
    }
}

#[test]
fn killing_a_rank_fails_the_others_with_a_diagnosis() {
    kill_one(3, 1, "no heartbeat from rank(s) [1]");
    kill_one(2, 0, "rank 0, which hosts it, has exited");
}

#[test]
fn a_hung_rank_times_out_the_others() {
    let port = free_port();
    let mut children: Vec<Child> = (0..2)
        .map(|r| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
            cmd.args(["dist-check", "--backend", "gloo", "--dist-timeout-s", "4"])
                .args(["--rounds", "100000", "--pause-ms", "5"]);
            as_rank(cmd, r, 2, port).spawn().unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let victim = children[1].id() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::SIGSTOP,
    )
    .unwrap();
    let stopped_at = Instant::now();
    let first = wait_all(children.drain(..1).collect(), Duration::from_secs(60));
    let elapsed = stopped_at.elapsed();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let _ = wait_all(children, Duration::from_secs(5));
    let err = String::from_utf8_lossy(&first[0].stderr);
    assert_eq!(first[0].status.code(), Some(2), "{err}");
    assert!(err.contains("failed on rank 0 of 2"), "{err}");
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(25),
        "{elapsed:?}: {err}"
    );
}

#[test]
fn a_busy_port_is_reported() {
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = wait_all(vec![rust_rank(0, 2, port, &[])], LIMIT);
    let err = String::from_utf8_lossy(&out[0].stderr);
    assert_eq!(out[0].status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("port {port} on 127.0.0.1 is busy")),
        "{err}"
    );
    assert!(err.contains("MASTER_PORT"), "{err}");
}

fn slurm_rank(job: u64, rank: usize, world: usize) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
    cmd.args(["dist-check", "--backend", "gloo", "--dist-timeout-s", "10"])
        .args(["--rounds", "300", "--pause-ms", "10"]);
    for var in [
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "TORCHELASTIC_RUN_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("SLURM_JOB_ID", job.to_string())
        .env("SLURM_PROCID", rank.to_string())
        .env("SLURM_LOCALID", rank.to_string())
        .env("SLURM_NTASKS", world.to_string())
        .env("SLURM_NODEID", "0")
        .env("SLURM_JOB_NODELIST", "localhost")
        .env("SLURM_TASKS_PER_NODE", world.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().unwrap()
}

/// Two job ids with the same derived port, that port currently free.
fn colliding_jobs() -> (u64, u64) {
    use trainer::cluster::derive_port;
    let first = (700_000..800_000)
        .find(|&j| std::net::TcpListener::bind(("0.0.0.0", derive_port(j, None))).is_ok())
        .unwrap();
    let port = derive_port(first, None);
    let second = (first + 1..first + 10_000_000)
        .find(|&j| derive_port(j, None) == port)
        .expect("derive_port maps some other job id to the same port");
    (first, second)
}

/// Waits until something accepts connections on `port` (a bare connection, closed at once, is
/// harmless to a TCPStore server).
fn wait_listening(port: u16) {
    let deadline = std::time::Instant::now() + LIMIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Job `a` is already serving when job `b`, whose id derives the same port, starts on the node.
/// (Two rank 0s starting within the same instant may both get the port, the kernel letting a
/// second bind through before the first listens; then both jobs fail, neither joins the other.)
#[test]
fn two_jobs_deriving_one_port_never_join_each_other() {
    let (a, b) = colliding_jobs();
    let first = slurm_rank(a, 0, 2);
    wait_listening(trainer::cluster::derive_port(a, None));
    let children = vec![
        first,
        slurm_rank(b, 0, 2),
        slurm_rank(a, 1, 2),
        slurm_rank(b, 1, 2),
    ];
    let out = wait_all(children, LIMIT);
    let said = |i: usize| String::from_utf8_lossy(&out[i].stderr).into_owned();
    assert!(
        out[0].status.success() && out[2].status.success(),
        "{}",
        describe(&out)
    );
    assert!(
        [1, 3].iter().all(|&i| out[i].status.code() == Some(2)),
        "{}",
        describe(&out)
    );
    assert!(said(1).contains("is busy"), "{}", said(1));
    assert!(said(3).contains("belongs to another group"), "{}", said(3));
}

/// `torchrun --nproc-per-node <nproc> --no-python <command...>` on a free port; fails the test
/// unless it succeeds, and returns its stdout.
fn torchrun(nproc: usize, command: &[&str]) -> String {
    let port = free_port().to_string();
    let nproc = nproc.to_string();
    let out = Command::new(common::python())
        .args(["-m", "torch.distributed.run", "--nproc-per-node", &nproc])
        .args(["--master-port", &port, "--no-python"])
        .args(command)
        .env_remove("SLURM_PROCID")
        .env("NLS_DIST_TIMEOUT_S", "30")
        .env("NLS_ROUNDS", "2")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

const DIST_CHECK: [&str; 7] = [
    "dist-check",
    "--backend",
    "gloo",
    "--dist-timeout-s",
    "30",
    "--rounds",
    "2",
];

#[test]
fn torchrun_launches_rust_ranks() {
    let mut command = vec![env!("CARGO_BIN_EXE_trainer")];
    command.extend(DIST_CHECK);
    let stdout = torchrun(2, &command);
    for r in 0..2 {
        assert!(
            stdout.contains(&format!("dist-check ok: rank {r} of 2")),
            "{stdout}"
        );
    }
}

/// torchrun's workers join the agent's store (`TORCHELASTIC_USE_AGENT_STORE=True`) with the keys
/// Python uses: a Python rank and Rust ranks in one job, Python first at rank 0, then at rank 1.
#[test]
fn torchrun_mixes_python_and_rust_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let peer = common::workspace_root().join("tests/python/dist_peer.py");
    for python_parity in [0, 1] {
        let wrapper = dir.path().join(format!("rank{python_parity}.sh"));
        let script = format!(
            "#!/bin/sh\nif [ $((LOCAL_RANK % 2)) -eq {python_parity} ]; then exec {} {}; \
             else exec {} {}; fi\n",
            common::python().display(),
            peer.display(),
            env!("CARGO_BIN_EXE_trainer"),
            DIST_CHECK.join(" ")
        );
        std::fs::write(&wrapper, script).unwrap();
        std::fs::set_permissions(
            &wrapper,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let stdout = torchrun(3, &[wrapper.to_str().unwrap()]);
        // The ranks share torchrun's stdout and Python may write a line and its newline apart,
        // so lines can run together: count the reports instead of reading lines.
        for r in 0..3 {
            let python = stdout
                .matches(&format!("python dist-check ok: rank {r} of 3"))
                .count();
            let any = stdout
                .matches(&format!("dist-check ok: rank {r} of 3"))
                .count();
            let want = match r % 2 == python_parity {
                true => (1, 0),
                false => (0, 1),
            };
            assert_eq!(
                (python, any - python),
                want,
                "rank {r}: (Python, Rust) reports in\n{stdout}"
            );
        }
    }
}

/// scripts/setup.sh installs the CUDA headers, so every build (CPU machines too) compiles the
/// NCCL backend; without CUDA at run time, asking for it (or for CUDA tensors under Gloo) is a
/// clear error.
#[test]
fn the_nccl_backend_is_compiled_and_refuses_without_cuda() {
    assert!(
        trainer::distributed::nccl_compiled(),
        "build.rs did not find the CUDA headers"
    );
    if tch::Cuda::is_available() {
        return;
    }
    for (flags, expected) in [
        (&["--backend", "nccl"][..], "--backend nccl needs CUDA"),
        (
            &["--backend", "gloo", "--device", "cuda"][..],
            "no CUDA device is visible",
        ),
        (
            &["--backend", "nccl", "--device", "cpu"][..],
            "nccl needs --device cuda",
        ),
    ] {
        let port = free_port();
        let children = (0..2)
            .map(|r| {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_trainer"));
                cmd.args(["dist-check", "--dist-timeout-s", "20"])
                    .args(flags);
                as_rank(cmd, r, 2, port).spawn().unwrap()
            })
            .collect();
        let out = wait_all(children, LIMIT);
        for o in &out {
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{flags:?}: {err}");
            assert!(err.contains(expected), "{flags:?}: {err}");
        }
    }
}
