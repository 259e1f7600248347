//! Checkpoint files, the checkpoint directory and the export, on real files in a tempdir.
//!
//! Besides round trips through our own reader, the files are read by an independent Python
//! reader that parses the safetensors layout by hand (8-byte little-endian header length, JSON
//! header, raw little-endian data) and recomputes the documented SHA-256, and the exported
//! backbone is loaded into a torchvision ResNet-18 and run against our forward pass.

mod common;

use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use trainer::checkpoint::{self, Checkpoint, CheckpointDir};
use trainer::distributed::ProcessGroup;
use trainer::model::{torchvision_state_dict, Arch, ResNet, Stem};

fn cpu(kind: Kind) -> (Kind, Device) {
    (kind, Device::Cpu)
}

/// Mixed dtypes and shapes, including a 0-dim scalar and an empty tensor.
fn sample_tensors() -> Vec<(String, Tensor)> {
    let f32s = Tensor::arange(6, cpu(Kind::Float)).reshape([2, 3]) * 0.25 - 0.5;
    vec![
        ("weights.f32".into(), f32s),
        (
            "counts.i64".into(),
            Tensor::from_slice(&[-3i64, 0, 1 << 40]),
        ),
        (
            "mask.bool".into(),
            Tensor::from_slice(&[true, false, true, true]).reshape([2, 2]),
        ),
        ("scalar.f64".into(), Tensor::from(std::f64::consts::PI)),
        ("empty.f32".into(), Tensor::zeros([0, 4], cpu(Kind::Float))),
        ("bytes.u8".into(), Tensor::from_slice(&[0u8, 7, 255])),
        ("ints.i32".into(), Tensor::from_slice(&[i32::MIN, 5])),
        (
            "half.bf16".into(),
            Tensor::from_slice(&[1.5f32, -2.0]).to_kind(Kind::BFloat16),
        ),
        (
            "half.f16".into(),
            Tensor::from_slice(&[0.125f32, 3.0]).to_kind(Kind::Half),
        ),
    ]
}

fn sample_state() -> Value {
    json!({"step": 1234, "epoch": 3, "rng": [1, 2, 3], "method": "vicreg", "lr": 0.0125})
}

fn sample() -> Checkpoint {
    Checkpoint {
        state: sample_state(),
        tensors: sample_tensors(),
    }
}

fn assert_same_tensors(ours: &[(String, Tensor)], back: &[(String, Tensor)]) {
    let mut expected: Vec<_> = ours.iter().collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let names = |v: &[&(String, Tensor)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let back_refs: Vec<_> = back.iter().collect();
    assert_eq!(names(&expected), names(&back_refs), "names (sorted)");
    for ((name, a), (_, b)) in expected.iter().zip(back) {
        assert_eq!(a.kind(), b.kind(), "{name}: kind");
        assert_eq!(a.size(), b.size(), "{name}: shape");
        assert_eq!(b.device(), Device::Cpu, "{name}: device");
        assert!(a.equal(b), "{name}: values differ: {a:?} vs {b:?}");
    }
}

/// Flips every bit of the byte `from_end` bytes before the end of the file.
fn flip_byte(path: &Path, from_end: usize) {
    let mut bytes = fs::read(path).unwrap();
    let i = bytes.len() - from_end;
    bytes[i] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

fn err_text(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn round_trip_mixed_dtypes_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.safetensors");
    let ckpt = sample();
    checkpoint::write(&path, &ckpt).unwrap();
    let back = checkpoint::read(&path).unwrap();
    assert_eq!(back.state, ckpt.state);
    assert_same_tensors(&ckpt.tensors, &back.tensors);
    // Only the target: the temp file was renamed into place.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["one.safetensors"]);
}

/// Non-contiguous (transposed) and gradient-tracking tensors are stored by value.
#[test]
fn round_trip_strided_and_grad_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("strided.safetensors");
    let t = Tensor::arange(12, cpu(Kind::Float))
        .reshape([3, 4])
        .transpose(0, 1);
    let g = Tensor::ones([2], cpu(Kind::Float)).set_requires_grad(true);
    let ckpt = Checkpoint {
        state: json!(null),
        tensors: vec![("t".into(), t.shallow_clone()), ("g".into(), g.detach())],
    };
    checkpoint::write(&path, &ckpt).unwrap();
    let back = checkpoint::read(&path).unwrap();
    assert_same_tensors(&ckpt.tensors, &back.tensors);
}

#[test]
fn duplicate_tensor_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.safetensors");
    let t = Tensor::zeros([1], cpu(Kind::Float));
    let ckpt = Checkpoint {
        state: json!({}),
        tensors: vec![("a".into(), t.shallow_clone()), ("a".into(), t)],
    };
    let err = err_text(checkpoint::write(&path, &ckpt));
    assert!(err.contains("\"a\" appears twice"), "{err}");
    assert!(!path.exists());
}

#[test]
fn flipped_data_byte_fails_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flip.safetensors");
    checkpoint::write(&path, &sample()).unwrap();
    flip_byte(&path, 1);
    let err = err_text(checkpoint::read(&path));
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
}

#[test]
fn truncated_file_is_reported_as_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.safetensors");
    checkpoint::write(&path, &sample()).unwrap();
    let bytes = fs::read(&path).unwrap();
    // Cut in the data region, in the header, and inside the length prefix.
    for keep in [bytes.len() - 3, 40, 5] {
        fs::write(&path, &bytes[..keep]).unwrap();
        let err = err_text(checkpoint::read(&path));
        assert!(err.contains("truncated"), "cut to {keep}: {err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn other_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "notes.safetensors",
            b"these are my notes, not a checkpoint at all\n",
            "not a safetensors file",
        ),
        ("empty.safetensors", b"", "not a safetensors file"),
        ("extra.safetensors", b"", "unexpected bytes"),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        if name == "extra.safetensors" {
            checkpoint::write(&path, &sample()).unwrap();
            let mut b = fs::read(&path).unwrap();
            b.extend_from_slice(b"junk");
            fs::write(&path, b).unwrap();
        } else {
            fs::write(&path, bytes).unwrap();
        }
        let err = err_text(checkpoint::read(&path));
        assert!(err.contains(expected), "{name}: {err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
    let missing = dir.path().join("missing.safetensors");
    let err = err_text(checkpoint::read(&missing));
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

/// A valid safetensors file without our metadata (and an export) is an unknown format.
#[test]
fn plain_safetensors_is_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.safetensors");
    Tensor::write_safetensors(&[("x", Tensor::ones([2], cpu(Kind::Float)))], &plain).unwrap();
    let err = err_text(checkpoint::read(&plain));
    assert!(err.contains("unknown format"), "{err}");
    assert!(err.contains(&plain.display().to_string()), "{err}");

    let exported = dir.path().join("backbone.safetensors");
    checkpoint::export(&exported, &sample_tensors(), &json!({})).unwrap();
    let err = err_text(checkpoint::read(&exported));
    assert!(err.contains("unknown format"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// CheckpointDir

/// A checkpoint whose state records its step, to see which one came back.
fn at_step(step: u64) -> Checkpoint {
    Checkpoint {
        state: json!({ "step": step }),
        tensors: vec![("w".into(), Tensor::full([3], step as f64, cpu(Kind::Float)))],
    }
}

fn steps(d: &CheckpointDir) -> Vec<u64> {
    d.list().unwrap().into_iter().map(|(s, _)| s).collect()
}

fn loaded_step(d: &CheckpointDir) -> u64 {
    let (step, path, ckpt) = d.load_latest().unwrap().expect("a checkpoint");
    assert_eq!(ckpt.state["step"], step, "{}", path.display());
    assert_eq!(path, d.path_for(step));
    step
}

#[test]
fn dir_keeps_the_newest_and_names_files_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    let d = CheckpointDir::new(tmp.path().join("ckpts"), 2);
    assert_eq!(d.dir(), tmp.path().join("ckpts"));
    for step in 1..=5 {
        let path = d.save(step, &at_step(step)).unwrap();
        assert_eq!(
            path.file_name().unwrap(),
            format!("ckpt-{step:010}.safetensors").as_str()
        );
    }
    assert_eq!(steps(&d), [4, 5]);
    assert_eq!(loaded_step(&d), 5);
    let (_, _, ckpt) = d.load_latest().unwrap().unwrap();
    assert_eq!(ckpt.tensors[0].1, Tensor::full([3], 5.0, cpu(Kind::Float)));
}

#[test]
fn dir_falls_back_past_a_damaged_newest() {
    let tmp = tempfile::tempdir().unwrap();
    let d = CheckpointDir::new(tmp.path(), 2);
    for step in 1..=5 {
        d.save(step, &at_step(step)).unwrap();
    }
    flip_byte(&d.path_for(5), 1);
    assert_eq!(loaded_step(&d), 4);
    assert!(
        d.path_for(5).exists(),
        "the damaged file must be left for the user"
    );
    assert_eq!(steps(&d), [4, 5]);
}

#[test]
fn dir_with_only_damaged_files_is_an_error_naming_each() {
    let tmp = tempfile::tempdir().unwrap();
    let d = CheckpointDir::new(tmp.path(), 2);
    for step in 1..=5 {
        d.save(step, &at_step(step)).unwrap();
    }
    flip_byte(&d.path_for(5), 1);
    let four = d.path_for(4);
    let bytes = fs::read(&four).unwrap();
    fs::write(&four, &bytes[..bytes.len() / 2]).unwrap();
    let err = err_text(d.load_latest());
    for (step, problem) in [(5, "checksum mismatch"), (4, "truncated")] {
        let line = err
            .lines()
            .find(|l| l.contains(&d.path_for(step).display().to_string()))
            .unwrap_or_else(|| panic!("step {step} not named: {err}"));
        assert!(line.contains(problem), "{line}");
    }
    assert!(err.contains("move these files"), "{err}");
    assert!(d.path_for(4).exists() && d.path_for(5).exists());
}

#[test]
fn empty_or_missing_dir_has_no_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = CheckpointDir::new(tmp.path(), 3);
    assert!(empty.load_latest().unwrap().is_none());
    assert!(empty.list().unwrap().is_empty());
    let missing = CheckpointDir::new(tmp.path().join("not/there"), 3);
    assert!(missing.load_latest().unwrap().is_none());
    assert!(missing.list().unwrap().is_empty());
}

#[test]
fn stale_temp_files_are_ignored_then_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = CheckpointDir::new(tmp.path(), 2);
    d.save(5, &at_step(5)).unwrap();
    let stale = tmp.path().join(".ckpt-0000000009.safetensors.tmp-123");
    fs::write(&stale, b"half a checkpoint").unwrap();
    // Names that are not ours stay untouched.
    let others = ["notes.txt", "ckpt-abc.safetensors", "ckpt-0000000007.json"];
    for name in others {
        fs::write(tmp.path().join(name), b"x").unwrap();
    }
    assert_eq!(steps(&d), [5]);
    assert_eq!(loaded_step(&d), 5);
    assert!(stale.exists());
    d.save(6, &at_step(6)).unwrap();
    assert!(!stale.exists(), "stale temp file survived a save");
    for name in others {
        assert!(tmp.path().join(name).exists(), "{name} was removed");
    }
    assert_eq!(steps(&d), [5, 6]);
}

/// After resuming from an older checkpoint, its next save is never pruned, even when newer
/// (damaged) files outnumber `keep`; and keep = 0 behaves as 1.
#[test]
fn save_never_deletes_the_file_just_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = CheckpointDir::new(tmp.path(), 0);
    d.save(10, &at_step(10)).unwrap();
    d.save(3, &at_step(3)).unwrap();
    assert_eq!(steps(&d), [3, 10]);
    d.save(11, &at_step(11)).unwrap();
    assert_eq!(steps(&d), [11]);
}

// ---------------------------------------------------------------------------------------------
// Export

#[test]
fn export_writes_the_card_beside_the_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out/backbone.safetensors");
    let card = json!({"arch": "resnet18", "stem": "cifar", "method": "vicreg", "epochs": 100,
                      "embedding_dim": 512});
    checkpoint::export(&path, &sample_tensors(), &card).unwrap();
    let text = fs::read_to_string(tmp.path().join("out/backbone.json")).unwrap();
    assert!(text.contains("\n  \"arch\""), "not pretty-printed: {text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), card);
    // Floats as float32, integers and bools as int64, values kept (all exact in float32).
    let mut back = Tensor::read_safetensors(&path).unwrap();
    back.sort_by(|a, b| a.0.cmp(&b.0));
    assert_same_tensors(&as_exported(&sample_tensors()), &back);
}

// ---------------------------------------------------------------------------------------------
// Independent reader

/// Parses safetensors files by hand and checks them against what Rust wrote (argv[1]: JSON
/// with the expected values per file). Prints "ok" when everything matched.
const READER: &str = r#"
import hashlib, json, struct, sys
from safetensors_by_hand import load, array

def field(h, b):
    h.update(struct.pack("<Q", len(b)))
    h.update(b)

def documented_sha(meta, header, data):
    h = hashlib.sha256()
    field(h, meta["nls_state"].encode())
    for name in sorted(header):
        info = header[name]
        s, e = info["data_offsets"]
        field(h, name.encode())
        field(h, info["dtype"].encode())
        field(h, b"".join(struct.pack("<Q", d) for d in info["shape"]))
        field(h, data[s:e])
    return h.hexdigest()

expected = json.load(open(sys.argv[1]))
for path, want in expected["files"].items():
    meta, header, data = load(path)
    if "metadata" in want:
        assert meta == want["metadata"], (path, meta)
    if "state" in want:
        assert meta["nls_format"] == "nls-checkpoint-1", meta
        assert json.loads(meta["nls_state"]) == want["state"], meta["nls_state"]
        assert meta["nls_sha256"] == documented_sha(meta, header, data), "sha differs"
    assert sorted(header) == sorted(want["tensors"]), (sorted(header), sorted(want["tensors"]))
    for name, t in want["tensors"].items():
        a = array(header[name], data)
        assert header[name]["dtype"] == t["dtype"], (name, header[name]["dtype"], t["dtype"])
        assert list(a.shape) == t["shape"], (name, a.shape, t["shape"])
        assert a.flatten().tolist() == t["values"], (name, a.flatten().tolist(), t["values"])
print("ok")
"#;

/// dtype name and values as the Python reader sees them, for the numpy-readable tensors.
fn describe(tensors: &[(String, Tensor)], dtype_of: impl Fn(Kind) -> &'static str) -> Value {
    let mut out = serde_json::Map::new();
    for (name, t) in tensors {
        let flat = t.flatten(0, -1);
        let values: Vec<Value> = match t.kind() {
            Kind::Float | Kind::Double => Vec::<f64>::try_from(flat.to_kind(Kind::Double))
                .unwrap()
                .into_iter()
                .map(Value::from)
                .collect(),
            Kind::Bool => Vec::<bool>::try_from(flat)
                .unwrap()
                .into_iter()
                .map(Value::from)
                .collect(),
            _ => Vec::<i64>::try_from(flat.to_kind(Kind::Int64))
                .unwrap()
                .into_iter()
                .map(Value::from)
                .collect(),
        };
        out.insert(
            name.clone(),
            json!({"dtype": dtype_of(t.kind()), "shape": t.size(), "values": values}),
        );
    }
    Value::Object(out)
}

fn checkpoint_dtype(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "F32",
        Kind::Double => "F64",
        Kind::Int64 => "I64",
        Kind::Int => "I32",
        Kind::Uint8 => "U8",
        Kind::Bool => "BOOL",
        other => panic!("no numpy dtype for {other:?}"),
    }
}

/// What `export` promises: float32 for floats, int64 for the rest.
fn as_exported(tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    let kind = |t: &Tensor| {
        if t.is_floating_point() {
            Kind::Float
        } else {
            Kind::Int64
        }
    };
    tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.to_kind(kind(t))))
        .collect()
}

#[test]
fn python_reads_checkpoint_and_export_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    // numpy has no bfloat16: the Python side sees the rest.
    let tensors: Vec<_> = sample_tensors()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("half."))
        .collect();
    let ckpt = Checkpoint {
        state: sample_state(),
        tensors,
    };
    let ckpt_path = tmp.path().join("ckpt.safetensors");
    let export_path = tmp.path().join("backbone.safetensors");
    checkpoint::write(&ckpt_path, &ckpt).unwrap();
    checkpoint::export(&export_path, &ckpt.tensors, &json!({"arch": "none"})).unwrap();

    let expected = json!({"files": {
        ckpt_path.display().to_string(): {
            "state": ckpt.state,
            "tensors": describe(&ckpt.tensors, checkpoint_dtype),
        },
        export_path.display().to_string(): {
            "metadata": {"format": "pt"},
            "tensors": describe(&as_exported(&ckpt.tensors), checkpoint_dtype),
        },
    }});
    let expected_path = tmp.path().join("expected.json");
    fs::write(&expected_path, expected.to_string()).unwrap();
    let out = common::run_python(READER, &[expected_path.to_str().unwrap()]);
    assert_eq!(out.trim(), "ok");
}

/// Loads the hand-parsed export into torchvision's resnet18 (CIFAR stem as the SSL references
/// build it, no fc) with strict=True, runs argv[2] (raw float32 N×3×32×32) in eval mode and
/// prints the max |difference| from argv[3] (our output) and the output's scale, as JSON.
const TORCHVISION: &str = r#"
import json, sys
import numpy as np, torch, torch.nn as nn, torchvision
from safetensors_by_hand import state_dict

state, meta = state_dict(sys.argv[1])
assert meta == {"format": "pt"}, meta
model = torchvision.models.resnet18()
model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
model.maxpool = nn.Identity()
model.fc = nn.Identity()
model.load_state_dict(state, strict=True)
model.eval()
x = torch.from_numpy(np.fromfile(sys.argv[2], dtype="<f4").reshape(2, 3, 32, 32))
ours = torch.from_numpy(np.fromfile(sys.argv[3], dtype="<f4").reshape(2, 512))
with torch.no_grad():
    theirs = model(x)
print(json.dumps({"diff": (theirs - ours).abs().max().item(), "scale": theirs.abs().max().item()}))
"#;

/// BN affine parameters and running statistics away from (1, 0, 0, 1), so that loading them
/// into the wrong place would change the eval output.
fn perturb_batch_norms(vs: &VarStore) {
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if t.dim() != 1 {
                continue;
            }
            let n = t.size();
            let value = if name.ends_with("running_var") || name.ends_with("weight") {
                Tensor::rand(&n, cpu(Kind::Float)) + 0.5
            } else {
                Tensor::randn(&n, cpu(Kind::Float)) * 0.1
            };
            t.copy_(&value);
        }
    });
}

fn write_f32(path: &Path, t: &Tensor) {
    let t = t.to_kind(Kind::Float).contiguous();
    let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(path, bytes).unwrap();
}

#[test]
fn exported_resnet18_loads_into_torchvision() {
    let tmp = tempfile::tempdir().unwrap();
    let vs = VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), Arch::Resnet18, Stem::Cifar);
    perturb_batch_norms(&vs);
    let path = tmp.path().join("resnet18.safetensors");
    let card = json!({"arch": "resnet18", "stem": "cifar"});
    checkpoint::export(&path, &torchvision_state_dict(&vs, 0), &card).unwrap();

    let x = Tensor::linspace(-1.0, 1.0, 2 * 3 * 32 * 32, cpu(Kind::Float)).reshape([2, 3, 32, 32]);
    let g = ProcessGroup::single(Device::Cpu);
    let ours = tch::no_grad(|| net.forward(&x, false, &g).unwrap());
    assert_eq!(ours.size(), [2, 512]);
    let (x_path, out_path) = (tmp.path().join("x.f32"), tmp.path().join("out.f32"));
    write_f32(&x_path, &x);
    write_f32(&out_path, &ours);

    let args = [&path, &x_path, &out_path].map(|p| p.to_str().unwrap().to_string());
    let out = common::run_python(TORCHVISION, &args.each_ref().map(String::as_str));
    let v: Value = serde_json::from_str(out.trim()).expect("JSON from python");
    let (diff, scale) = (v["diff"].as_f64().unwrap(), v["scale"].as_f64().unwrap());
    assert!(scale > 0.0, "{v}");
    assert!(
        diff <= 1e-4 * scale,
        "max |diff| {diff:e} > 1e-4 × {scale:e}"
    );
}
