//! Helpers for the tests that run the real trainer through `nls-launch`: the binaries, tiny
//! runs on the real Fashion-MNIST, and comparisons of what the runs wrote.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// `nls-launch` with the trainer set, run in `dir`, one thread per rank.
pub fn nls(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nls-launch"));
    cmd.current_dir(dir).env("OMP_NUM_THREADS", "1");
    cmd
}

/// A tiny VICReg pretraining: `samples` images, global batch 32, 3 epochs, a checkpoint at
/// each epoch's end.
pub fn tiny_pretrain(samples: usize) -> Vec<String> {
    let args = format!(
        "pretrain --data-dir {FASHION_MNIST} --method vicreg --arch resnet18 --width 8 \
         --mlp 64-64 --epochs 3 --warmup-epochs 1 --batch-size 32 --train-samples {samples} \
         --optimizer sgd --base-lr 0.5 --seed 7 --log-every 1 --knn-every 0 --backend gloo"
    );
    args.split_whitespace().map(str::to_string).collect()
}

pub fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Waits until `ready` holds; panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tensors of a safetensors file by name: (dtype, shape, bytes). Read by hand from the
/// format (8-byte header length, JSON header, data), independently of the trainer's reader.
pub fn tensors(path: &Path) -> BTreeMap<String, (String, Value, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(k, v)| {
            let off: Vec<usize> = v["data_offsets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_u64().unwrap() as usize)
                .collect();
            let dtype = v["dtype"].as_str().unwrap().to_string();
            (
                k,
                (dtype, v["shape"].clone(), data[off[0]..off[1]].to_vec()),
            )
        })
        .collect()
}

/// Lines of `<exp>/metrics.jsonl`.
pub fn metrics(exp: &Path) -> Vec<Value> {
    std::fs::read_to_string(exp.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
