//! Helpers for the tests that run the real trainer through `nls-launch` (the local executor and
//! the SLURM cluster): the binaries, tiny runs on the real Fashion-MNIST, waiting on runs, and
//! comparisons of what they wrote.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub const FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The trainer built by `cargo test --release --workspace` (or `cargo build --release`).
pub fn trainer() -> PathBuf {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(profile)
        .join("trainer");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build --release -p trainer)",
        path.display()
    );
    path
}

/// `nls-launch`, run in `dir`, one thread per rank.
pub fn nls(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nls-launch"));
    cmd.current_dir(dir).env("OMP_NUM_THREADS", "1");
    cmd
}

/// A tiny VICReg pretraining: `samples` images, global batch 32 (samples / 32 steps an
/// epoch), width 8, SGD, a checkpoint at each epoch's end.
pub fn tiny_pretrain(samples: usize, epochs: usize) -> Vec<String> {
    let args = format!(
        "pretrain --data-dir {FASHION_MNIST} --method vicreg --arch resnet18 --width 8 \
         --mlp 64-64 --epochs {epochs} --warmup-epochs 1 --batch-size 32 \
         --train-samples {samples} --optimizer sgd --base-lr 0.5 --seed 7 --log-every 1 \
         --knn-every 0 --backend gloo"
    );
    args.split_whitespace().map(str::to_string).collect()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The file's text, empty when it cannot be read (yet).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Waits until `ok` holds (checked every 100 ms); panics after `limit` with `context()`.
pub fn wait_for(
    what: &str,
    limit: Duration,
    mut ok: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The complete lines of `<exp>/metrics.jsonl` so far.
pub fn metrics(exp: &Path) -> Vec<Value> {
    read(&exp.join("metrics.jsonl"))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The highest step in `<exp>/metrics.jsonl` so far (0 before the first).
pub fn logged_step(exp: &Path) -> u64 {
    metrics(exp)
        .iter()
        .filter_map(|m| m["step"].as_u64())
        .max()
        .unwrap_or(0)
}

/// The tensors of a safetensors file by name: (dtype, shape, bytes). Read by hand from the
/// format (8-byte header length, JSON header, data), independently of the trainer's reader;
/// the header's metadata (job id, stop counters in checkpoints) is left out.
pub fn tensors(path: &Path) -> BTreeMap<String, (Value, Value, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(k, v)| {
            let off = |i: usize| v["data_offsets"][i].as_u64().unwrap() as usize;
            let slice = data[off(0)..off(1)].to_vec();
            (k, (v["dtype"].clone(), v["shape"].clone(), slice))
        })
        .collect()
}

/// Both files hold the same tensors, bit for bit.
pub fn assert_same_tensors(a: &Path, b: &Path) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "{} and {} hold different tensors",
        a.display(),
        b.display()
    );
    assert!(!ta.is_empty());
    for (name, x) in &ta {
        assert!(
            x == &tb[name],
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// The newest `checkpoints/*.safetensors` of a run.
pub fn newest_checkpoint(exp: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(exp.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    files.pop().expect("a checkpoint")
}

/// The trainer PID of `rank` of the run in `exp` (found by its exp-dir in the command line and
/// SLURM_PROCID in its environment) whose environment also holds `var`, when given.
pub fn trainer_pid(exp: &Path, rank: u32, var: Option<&str>) -> Option<i32> {
    let exp = exp.to_str().unwrap();
    let want = [
        Some(format!("SLURM_PROCID={rank}")),
        var.map(str::to_string),
    ];
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let e = e.ok()?;
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let argv: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_trainer = argv[0].ends_with(b"/trainer") || argv[0] == b"trainer";
        let ours = argv.contains(&exp.as_bytes());
        let environ = std::fs::read(e.path().join("environ")).ok()?;
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let has = want.iter().flatten().all(|w| vars.contains(&w.as_bytes()));
        (is_trainer && ours && has).then_some(pid)
    })
}
