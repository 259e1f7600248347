//! Starting groups of ranks on loopback, torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

use serde::de::DeserializeOwned;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where a re-executed worker writes its JSON result (see [`run_test_workers`]).
const WORKER_OUT: &str = "NLS_TEST_WORKER_OUT";

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sets the env:// variables for `rank` of `world` on `cmd`, with captured output.
pub fn as_rank(mut cmd: Command, rank: usize, world: usize, port: u16) -> Command {
    cmd.env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env_remove("SLURM_PROCID")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for every child, killing any that outlive `limit`; returns outputs in order.
pub fn wait_all(children: Vec<Child>, limit: Duration) -> Vec<Output> {
    let deadline = Instant::now() + limit;
    children
        .into_iter()
        .map(|mut c| {
            while c.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            c.wait_with_output().unwrap()
        })
        .collect()
}

pub fn describe(outputs: &[Output]) -> String {
    outputs
        .iter()
        .enumerate()
        .map(|(r, o)| {
            format!(
                "--- rank {r}: {}\nstdout: {}\nstderr: {}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Panics with every rank's output unless all ranks exited successfully.
pub fn assert_succeeded(outputs: &[Output]) {
    assert!(
        outputs.iter().all(|o| o.status.success()),
        "{}",
        describe(outputs)
    );
}

/// Inside a worker test: the file to write the JSON result to when this process was started by
/// [`run_test_workers`]; `None` in an ordinary test run, where the worker test does nothing.
pub fn worker_output() -> Option<PathBuf> {
    std::env::var_os(WORKER_OUT).map(PathBuf::from)
}

/// Re-executes this test binary as `world` torchrun-style ranks that run only the test `worker`,
/// and returns the JSON each rank wrote to its [`worker_output`], in rank order.
pub fn run_test_workers<T: DeserializeOwned>(
    worker: &str,
    world: usize,
    limit: Duration,
) -> Vec<T> {
    let dir = tempfile::tempdir().unwrap();
    let out = |r: usize| dir.path().join(format!("{r}.json"));
    let port = free_port();
    let children = (0..world)
        .map(|r| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", worker, "--nocapture", "--test-threads=1"])
                .env(WORKER_OUT, out(r));
            as_rank(cmd, r, world, port).spawn().unwrap()
        })
        .collect();
    assert_succeeded(&wait_all(children, limit));
    (0..world)
        .map(|r| serde_json::from_str(&std::fs::read_to_string(out(r)).unwrap()).unwrap())
        .collect()
}
