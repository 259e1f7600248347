//! The backbones and the projector against torchvision / torch.nn, not against themselves.
//!
//! Rust exports its weights (`model::torchvision_state_dict`) and inputs to .npz files;
//! `tests/python/model_torchvision.py` loads them with `load_state_dict(strict=True)` into an
//! unmodified torchvision ResNet (CIFAR stem swapped in as the SSL references do) or the
//! reference VICReg projector, runs the same inputs and writes its outputs back. BN weights and
//! running statistics are randomized first so that every layer (also the zero-initialized ones)
//! shapes the output.

mod common;

use common::torch_compare::{assert_close, cpu, randomize_batch_norms, read_npz, write_npz};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tch::nn::VarStore;
use tch::{Device, Tensor};
use trainer::distributed::ProcessGroup;
use trainer::model::{
    count_parameters, parse_mlp, to_rgb, torchvision_state_dict, Arch, Projector, ResNet, Stem,
};

const RTOL: f64 = 1e-4;
const SCRIPT: &str = "tests/python/model_torchvision.py";

fn single() -> ProcessGroup {
    ProcessGroup::single(Device::Cpu)
}

/// Runs the reference script on `dir`; returns its JSON summary of a fresh torch model and the
/// tensors it wrote.
fn reference(args: &[&str], dir: &Path) -> (Value, BTreeMap<String, Tensor>) {
    let out = Command::new(common::python())
        .arg(common::workspace_root().join(SCRIPT))
        .arg(args[0])
        .arg(dir)
        .args(&args[1..])
        .output()
        .expect("starting python");
    assert!(
        out.status.success(),
        "{SCRIPT} {args:?} failed:\n{}",
        common::stderr(&out)
    );
    let summary = serde_json::from_slice(&out.stdout).expect("JSON summary");
    (summary, read_npz(&dir.join("torch.npz")))
}

fn sorted_names(state: &[(String, Tensor)]) -> Vec<String> {
    state.iter().map(|(n, _)| n.clone()).collect()
}

fn json_names(v: &Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap()
}

/// Same memory, channels-last strides (NHWC in memory, NCHW logically).
fn channels_last(x: &Tensor) -> Tensor {
    let y = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
    assert_eq!(y.stride()[1], 1, "channels-last strides");
    y
}

/// Our outputs and state after one train-mode and one eval-mode pass.
struct Run {
    train_out: Tensor,
    eval_out: Tensor,
    after: Vec<(String, Tensor)>,
}

/// Exports the state, runs train then eval like the Python side, returns what to compare.
fn run_ours(
    vs: &VarStore,
    dir: &Path,
    x_train: &Tensor,
    x_eval: &Tensor,
    forward: impl Fn(&Tensor, bool) -> Tensor,
) -> Run {
    write_npz(&dir.join("state.npz"), &torchvision_state_dict(vs, 0));
    let io = [
        ("x_train".to_string(), x_train.shallow_clone()),
        ("x_eval".to_string(), x_eval.shallow_clone()),
    ];
    write_npz(&dir.join("io.npz"), &io);
    tch::no_grad(|| {
        let train_out = forward(x_train, true);
        let after = torchvision_state_dict(vs, 1);
        let eval_out = forward(x_eval, false);
        Run {
            train_out,
            eval_out,
            after,
        }
    })
}

/// Outputs and every variable after the train pass (running stats, counters) equal torch's.
fn compare_run(what: &str, ours: &Run, theirs: &BTreeMap<String, Tensor>) {
    assert_close(
        &format!("{what} train"),
        &ours.train_out,
        &theirs["train_out"],
        RTOL,
    );
    assert_close(
        &format!("{what} eval"),
        &ours.eval_out,
        &theirs["eval_out"],
        RTOL,
    );
    for (name, t) in &ours.after {
        let reference = &theirs[&format!("state.{name}")];
        assert_close(&format!("{what} {name} after train"), t, reference, RTOL);
    }
}

fn check_resnet(arch: Arch, stem: Stem, size: i64) {
    let dir = tempfile::tempdir().unwrap();
    let vs = VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), arch, stem);
    randomize_batch_norms(&vs);
    let x_train = Tensor::randn([2, 3, size, size], cpu());
    let x_eval = Tensor::randn([2, 3, size, size], cpu());
    let g = single();
    let ours = run_ours(&vs, dir.path(), &x_train, &x_eval, |x, train| {
        net.forward(x, train, &g).unwrap()
    });
    let what = format!("{arch} {stem}");
    let (summary, theirs) = reference(
        &["resnet", &arch.to_string(), &stem.to_string()],
        dir.path(),
    );

    assert_eq!(
        sorted_names(&ours.after),
        json_names(&summary["names"]),
        "{what}: names"
    );
    for (name, t) in &ours.after {
        let shape: Vec<i64> = serde_json::from_value(summary["shapes"][name].clone()).unwrap();
        assert_eq!(t.size(), shape, "{what}: shape of {name}");
    }
    assert_eq!(
        count_parameters(&vs),
        summary["parameters"].as_i64().unwrap(),
        "{what}: parameter count"
    );
    assert_eq!(ours.eval_out.size(), [2, arch.embedding_dim()]);
    compare_run(&what, &ours, &theirs);

    let cl = tch::no_grad(|| net.forward(&channels_last(&x_eval), false, &g).unwrap());
    assert_close(
        &format!("{what} channels-last eval"),
        &cl,
        &ours.eval_out,
        1e-5,
    );
}

#[test]
fn resnet18_cifar_matches_torchvision() {
    check_resnet(Arch::Resnet18, Stem::Cifar, 16);
}

#[test]
fn resnet34_cifar_matches_torchvision() {
    check_resnet(Arch::Resnet34, Stem::Cifar, 16);
}

#[test]
fn resnet50_cifar_matches_torchvision() {
    check_resnet(Arch::Resnet50, Stem::Cifar, 16);
}

/// 32×32 leaves 1×1 at layer4 behind the stride-2 conv and max-pool: still 2 values per BN.
#[test]
fn resnet18_imagenet_matches_torchvision() {
    check_resnet(Arch::Resnet18, Stem::Imagenet, 32);
}

#[test]
fn resnet50_imagenet_matches_torchvision() {
    check_resnet(Arch::Resnet50, Stem::Imagenet, 32);
}

/// Names of 1-D weights that are all zero: the BNs `zero_init_residual` zeroed.
fn zero_bn_weights(vs: &VarStore) -> Vec<String> {
    let mut names: Vec<String> = vs
        .variables()
        .into_iter()
        .filter(|(n, t)| {
            n.ends_with(".weight") && t.dim() == 1 && t.abs().max().double_value(&[]) == 0.0
        })
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names
}

/// At init every block is relu(shortcut(x)), here and in torchvision, and the zeroed BNs are
/// exactly the ones torchvision's `zero_init_residual=True` zeroes (bn2 / bn3 of every block).
fn check_zero_init(arch: Arch) {
    let dir = tempfile::tempdir().unwrap();
    let vs = VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), arch, Stem::Cifar);
    let g = single();
    let last_bn = if arch == Arch::Resnet50 { "bn3" } else { "bn2" };
    let zeroed = zero_bn_weights(&vs);
    assert_eq!(zeroed.len(), net.blocks().count());
    assert!(
        zeroed
            .iter()
            .all(|n| n.ends_with(&format!("{last_bn}.weight"))),
        "{zeroed:?}"
    );

    let inputs: Vec<(String, Tensor)> = net
        .blocks()
        .map(|(name, b)| (name, Tensor::randn([2, b.in_channels(), 4, 4], cpu())))
        .collect();
    write_npz(
        &dir.path().join("state.npz"),
        &torchvision_state_dict(&vs, 0),
    );
    write_npz(&dir.path().join("io.npz"), &inputs);
    let (summary, theirs) = reference(&["blocks", &arch.to_string(), "cifar"], dir.path());
    assert_eq!(
        zeroed,
        json_names(&summary["zero_bn"]),
        "{arch}: zero-initialized BNs"
    );

    tch::no_grad(|| {
        for ((name, block), (_, x)) in net.blocks().zip(&inputs) {
            let out = block.forward(x, false, &g).unwrap();
            let identity = block.shortcut(x, false, &g).unwrap().relu();
            assert_eq!(
                out, identity,
                "{arch} {name}: block ≠ relu(shortcut) at init"
            );
            assert_close(
                &format!("{arch} {name} vs torchvision"),
                &out,
                &theirs[&name],
                RTOL,
            );
        }
    });
}

#[test]
fn zero_init_residual_resnet18() {
    check_zero_init(Arch::Resnet18);
}

#[test]
fn zero_init_residual_resnet34() {
    check_zero_init(Arch::Resnet34);
}

#[test]
fn zero_init_residual_resnet50() {
    check_zero_init(Arch::Resnet50);
}

#[test]
fn projector_matches_reference_sequential() {
    let (emb, spec) = (32, "64-48-16");
    let dir = tempfile::tempdir().unwrap();
    let vs = VarStore::new(Device::Cpu);
    let proj = Projector::from_spec(&(vs.root() / "projector"), emb, spec).unwrap();
    assert_eq!(proj.out_dim(), 16);
    randomize_batch_norms(&vs);
    let x_train = Tensor::randn([8, emb], cpu());
    let x_eval = Tensor::randn([8, emb], cpu());
    let g = single();
    let ours = run_ours(&vs, dir.path(), &x_train, &x_eval, |x, train| {
        proj.forward(x, train, &g).unwrap()
    });
    let (summary, theirs) = reference(&["projector", &emb.to_string(), spec], dir.path());
    assert_eq!(sorted_names(&ours.after), json_names(&summary["names"]));
    assert_eq!(
        count_parameters(&vs),
        summary["parameters"].as_i64().unwrap()
    );
    compare_run("projector", &ours, &theirs);
}

#[test]
fn parse_mlp_accepts_widths() {
    assert_eq!(parse_mlp("8192-8192-8192").unwrap(), [8192, 8192, 8192]);
    assert_eq!(parse_mlp("128").unwrap(), [128]);
}

#[test]
fn parse_mlp_names_the_bad_part() {
    let cases = [
        ("1024-x", "--mlp '1024-x': 'x' is not a positive integer"),
        ("1024-0", "--mlp '1024-0': '0' is not a positive integer"),
        ("1024--5", "--mlp '1024--5': '' is not a positive integer"),
        ("1024-", "--mlp '1024-': '' is not a positive integer"),
        ("1.5", "--mlp '1.5': '1.5' is not a positive integer"),
        ("", "--mlp '' is empty"),
    ];
    for (spec, expected) in cases {
        let err = parse_mlp(spec).unwrap_err().to_string();
        assert!(err.starts_with(expected), "{spec:?}: {err}");
    }
}

#[test]
fn to_rgb_repeats_gray_and_keeps_rgb() {
    let gray = Tensor::randn([2, 1, 5, 5], cpu());
    let rgb = to_rgb(&gray).unwrap();
    assert_eq!(rgb.size(), [2, 3, 5, 5]);
    for c in 0..3 {
        assert_eq!(rgb.narrow(1, c, 1), gray);
    }
    let color = Tensor::randn([2, 3, 5, 5], cpu());
    assert_eq!(to_rgb(&color).unwrap(), color);
    for bad in [vec![2, 2, 5, 5], vec![3, 5, 5]] {
        let err = to_rgb(&Tensor::zeros(bad.as_slice(), cpu())).unwrap_err();
        assert!(err.to_string().contains("N×1×H×W or N×3×H×W"), "{err}");
    }
}

/// Gray data goes through the 3-channel backbone after to_rgb.
#[test]
fn gray_batch_runs_after_to_rgb() {
    let vs = VarStore::new(Device::Cpu);
    let net = ResNet::new(&vs.root(), Arch::Resnet18, Stem::Cifar);
    let gray = Tensor::randn([2, 1, 8, 8], cpu());
    let out = tch::no_grad(|| {
        net.forward(&to_rgb(&gray).unwrap(), true, &single())
            .unwrap()
    });
    assert_eq!(out.size(), [2, 512]);
}

/// `scripts/torchvision_backbone.py` turns a torchvision ResNet-18's saved state_dict (random
/// weights and BN statistics) into an export that `--backbone` loads: the trainer's features of
/// an input are torchvision's (the network without `fc`, eval mode) within `RTOL`, and a
/// checkpoint of another architecture is refused naming it.
#[test]
fn an_imported_torchvision_resnet_gives_torchvisions_features() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let code = "import sys,torch,torchvision,numpy as np\nd=sys.argv[1]\ntorch.manual_seed(0)\nm=torchvision.models.resnet18()\nfor mod in m.modules():\n  if isinstance(mod,torch.nn.BatchNorm2d):\n    for t in (mod.weight,mod.bias,mod.running_mean):\n      t.data.normal_(0,0.5)\n    mod.running_var.data.uniform_(0.5,2)\ntorch.save(m.state_dict(),d+'/r18.pth')\nm.fc=torch.nn.Identity()\nm.eval()\nx=torch.randn(2,3,64,64)\nwith torch.no_grad():\n  np.savez(d+'/io.npz',x=x.numpy(),features=m(x).numpy())";
    common::run_python(code, &[d.to_str().unwrap()]);
    let import = |arch: &str| {
        Command::new(common::python())
            .arg(common::workspace_root().join("scripts/torchvision_backbone.py"))
            .args(["--arch", arch, "--checkpoint"])
            .arg(d.join("r18.pth"))
            .arg("--out")
            .arg(d.join(arch))
            .output()
            .unwrap()
    };
    let out = import("resnet18");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = import("resnet50");
    let says = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && says.contains("not a resnet50 state_dict"),
        "{says}"
    );

    let export = d.join("resnet18/backbone.safetensors");
    let mut flags = toml::Table::new();
    for (key, value) in [
        ("data_dir", d),
        ("exp_dir", &d.join("exp")),
        ("backbone", &export),
    ] {
        flags.insert(key.into(), value.to_str().unwrap().into());
    }
    let cfg = trainer::method::eval::config::EvalConfig::resolve(None, flags).unwrap();
    let source = trainer::method::eval::backbone::BackboneSource::open(&cfg).unwrap();
    assert_eq!(
        (source.net.arch, source.net.stem),
        (Arch::Resnet18, Some(Stem::Imagenet))
    );
    let vs = VarStore::new(Device::Cpu);
    let net = source.build(&vs).unwrap();
    let io = read_npz(&d.join("io.npz"));
    let ours = tch::no_grad(|| net.forward(&io["x"], false, &single()).unwrap());
    assert_close("imported resnet18", &ours, &io["features"], RTOL);
}
