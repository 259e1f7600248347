//! The seed papers' networks (PreAct ResNet-18, WRN-d-k, ResNet-32) against their PyTorch
//! sources, copied in `tests/python/model_reference.py`: not against themselves.
//!
//! Both ways, at narrow widths: our weights (backbone + a linear classifier under the
//! reference's attribute name, `Arch::classifier_prefix`) load into the Python module with
//! `strict=True` and give the same logits in train and eval mode; the Python module's own
//! initialization loads into ours and gives the same logits. Parameter counts at the published
//! widths are checked against the Python module and the published figures, and each network
//! trains (a few SGD steps lower the loss on a tiny batch).

mod common;

use common::torch_compare::{
    assert_close, cpu, randomize_batch_norms, read_npz, relative_diff, write_npz,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Tensor};
use trainer::distributed::ProcessGroup;
use trainer::method::eval::backbone::load_into;
use trainer::model::{count_parameters, torchvision_state_dict, Arch, Backbone, NetSpec};
use trainer::optim::OptimizerKind;

const SCRIPT: &str = "tests/python/model_reference.py";
const CLASSES: i64 = 10;
/// Relative to the logits' scale. Measured over these tests: at most ~1e-6 (float32 round-off
/// through ≤ 32 layers); 1e-4 leaves room for other CPUs' kernels, as model_torchvision.rs does.
const RTOL: f64 = 1e-4;

/// A backbone and its classifier in one VarStore, named as the reference's state_dict.
struct Whole {
    vs: VarStore,
    backbone: Backbone,
    classifier: nn::Linear,
}

impl Whole {
    fn new(spec: &NetSpec) -> Whole {
        let vs = VarStore::new(Device::Cpu);
        let backbone = Backbone::new(&vs.root(), spec);
        let prefix = spec.arch.classifier_prefix();
        let classifier = nn::linear(
            vs.root() / prefix,
            backbone.embedding_dim(),
            CLASSES,
            Default::default(),
        );
        Whole {
            vs,
            backbone,
            classifier,
        }
    }

    fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        let g = ProcessGroup::single(Device::Cpu);
        self.classifier
            .forward(&self.backbone.forward(x, train, &g).unwrap())
    }

    /// Train-mode logits on `x_train` (moving the running statistics), then eval on `x_eval`.
    fn train_then_eval(&self, x_train: &Tensor, x_eval: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| (self.logits(x_train, true), self.logits(x_eval, false)))
    }
}

/// Narrow shapes that still take every path: WRN-16-2 has a `convShortcut` block and
/// `equalInOut` blocks; WRN-10-1 has an `equalInOut` first block.
fn narrow(arch: Arch) -> Vec<NetSpec> {
    let spec = |width, depth| NetSpec::new(arch, None, Some(width), depth).unwrap();
    match arch {
        Arch::Preact18 => vec![spec(8, None)],
        Arch::Wrn => vec![spec(2, Some(16)), spec(1, Some(10))],
        Arch::Resnet32 => vec![spec(4, None)],
        other => panic!("{other} is tested in model_torchvision.rs"),
    }
}

/// `model_reference.py COMMAND DIR ARCH WIDTH DEPTH CLASSES`: its summary and its tensors.
fn reference(command: &str, dir: &Path, spec: &NetSpec) -> (Value, BTreeMap<String, Tensor>) {
    let depth = spec.depth.unwrap_or(0).to_string();
    let out = Command::new(common::python())
        .arg(common::workspace_root().join(SCRIPT))
        .args([command, dir.to_str().unwrap(), &spec.arch.to_string()])
        .args([spec.width.to_string(), depth, CLASSES.to_string()])
        .output()
        .expect("starting python");
    assert!(
        out.status.success(),
        "{SCRIPT} {command} {spec} failed:\n{}",
        common::stderr(&out)
    );
    let summary = serde_json::from_slice(&out.stdout).expect("JSON summary");
    (summary, read_npz(&dir.join("torch.npz")))
}

/// 32×32 inputs: the references pool with avg_pool2d(4) / (8), the whole map only at 32×32.
fn inputs(dir: &Path) -> (Tensor, Tensor) {
    let x_train = Tensor::randn([4, 3, 32, 32], cpu());
    let x_eval = Tensor::randn([4, 3, 32, 32], cpu());
    let io = [
        ("x_train".to_string(), x_train.shallow_clone()),
        ("x_eval".to_string(), x_eval.shallow_clone()),
    ];
    write_npz(&dir.join("io.npz"), &io);
    (x_train, x_eval)
}

fn check_names_and_count(what: &str, whole: &Whole, summary: &Value) {
    let ours: Vec<String> = torchvision_state_dict(&whole.vs, 0)
        .into_iter()
        .map(|(name, t)| {
            let shape: Vec<i64> = serde_json::from_value(summary["shapes"][&name].clone())
                .unwrap_or_else(|_| panic!("{what}: torch has no {name}"));
            assert_eq!(t.size(), shape, "{what}: shape of {name}");
            name
        })
        .collect();
    let theirs: Vec<String> = serde_json::from_value(summary["names"].clone()).unwrap();
    assert_eq!(ours, theirs, "{what}: state_dict names");
    assert_eq!(
        count_parameters(&whole.vs),
        summary["parameters"].as_i64().unwrap(),
        "{what}: parameter count"
    );
}

/// Ours → torch: our (BN-randomized) weights in the reference module, strict=True.
fn ours_in_torch(spec: &NetSpec) {
    let what = spec.to_string();
    let dir = tempfile::tempdir().unwrap();
    let whole = Whole::new(spec);
    randomize_batch_norms(&whole.vs);
    write_npz(
        &dir.path().join("state.npz"),
        &torchvision_state_dict(&whole.vs, 0),
    );
    let (x_train, x_eval) = inputs(dir.path());
    let (train, eval) = whole.train_then_eval(&x_train, &x_eval);
    let (summary, theirs) = reference("load", dir.path(), spec);
    check_names_and_count(&what, &whole, &summary);
    eprintln!(
        "{what}: ours in torch, relative diff train {:e}, eval {:e}",
        relative_diff(&train, &theirs["train_out"]),
        relative_diff(&eval, &theirs["eval_out"])
    );
    assert_close(&format!("{what} train"), &train, &theirs["train_out"], RTOL);
    assert_close(&format!("{what} eval"), &eval, &theirs["eval_out"], RTOL);
    for (name, t) in torchvision_state_dict(&whole.vs, 1) {
        let reference = &theirs[&format!("state.{name}")];
        assert_close(&format!("{what} {name} after train"), &t, reference, RTOL);
    }
}

/// Torch → ours: the reference module's own initialization loaded into ours.
fn torch_in_ours(spec: &NetSpec) {
    let what = spec.to_string();
    let dir = tempfile::tempdir().unwrap();
    let (x_train, x_eval) = inputs(dir.path());
    let (_, theirs) = reference("init", dir.path(), spec);
    let init: HashMap<String, Tensor> = theirs
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("init.").map(|n| (n.to_string(), v.copy())))
        .collect();
    let whole = Whole::new(spec);
    load_into(&whole.vs, &init, "the torch module").unwrap();
    let (train, eval) = whole.train_then_eval(&x_train, &x_eval);
    eprintln!(
        "{what}: torch in ours, relative diff train {:e}, eval {:e}",
        relative_diff(&train, &theirs["train_out"]),
        relative_diff(&eval, &theirs["eval_out"])
    );
    assert_close(&format!("{what} train"), &train, &theirs["train_out"], RTOL);
    assert_close(&format!("{what} eval"), &eval, &theirs["eval_out"], RTOL);
}

fn check_both_ways(arch: Arch) {
    for spec in narrow(arch) {
        tch::manual_seed(1);
        ours_in_torch(&spec);
        torch_in_ours(&spec);
    }
}

#[test]
fn preact18_matches_ssr_preresnet() {
    check_both_ways(Arch::Preact18);
}

#[test]
fn wrn_matches_xternalz_wideresnet() {
    check_both_ways(Arch::Wrn);
}

#[test]
fn resnet32_matches_meta_weight_net() {
    check_both_ways(Arch::Resnet32);
}

/// At the published widths (10 classes): ours = the Python module's count = the published
/// figure (PreAct-18 11.17M, WRN-28-10 36.5M, ResNet-32 0.46M) to its precision.
#[test]
fn parameter_counts_match_the_published_figures() {
    for (arch, published, precision) in [
        (Arch::Preact18, 11.17e6, 0.01e6),
        (Arch::Wrn, 36.5e6, 0.1e6),
        (Arch::Resnet32, 0.46e6, 0.01e6),
    ] {
        let whole = Whole::new(&NetSpec::new(arch, None, None, None).unwrap());
        let ours = count_parameters(&whole.vs);
        let out = Command::new(common::python())
            .arg(common::workspace_root().join(SCRIPT))
            .args(["count", &arch.to_string()])
            .output()
            .expect("starting python");
        assert!(out.status.success(), "{}", common::stderr(&out));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(ours, summary["parameters"].as_i64().unwrap(), "{arch}");
        let off = (ours as f64 - published).abs();
        assert!(
            off <= precision / 2.0,
            "{arch}: {ours} vs published {published}"
        );
    }
}

/// A few SGD steps on one tiny batch lower the cross-entropy of every new architecture.
#[test]
fn every_new_architecture_trains() {
    for arch in [Arch::Preact18, Arch::Wrn, Arch::Resnet32] {
        tch::manual_seed(0);
        let spec = narrow(arch).remove(0);
        let whole = Whole::new(&spec);
        let mut opt = OptimizerKind::Sgd.build(&whole.vs, 0.0);
        let x = Tensor::randn([8, 3, 32, 32], cpu());
        let y = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 7]);
        let loss = || whole.logits(&x, true).cross_entropy_for_logits(&y);
        let first = loss().double_value(&[]);
        for _ in 0..5 {
            opt.zero_grad();
            loss().backward();
            opt.step(0.05);
        }
        let last = loss().double_value(&[]);
        assert!(last < 0.8 * first, "{spec}: loss {first} → {last}");
    }
}

/// A network trained from scratch starts its linear classifier as the reference module does
/// (`Arch::classifier_init`, applied by `Head::init_as`): against each module built in Python,
/// the weights' spread, whether they are bounded by 1/√fan_in (PyTorch's uniform), and whether
/// the bias is zero. 6400 weights a side: the sample std's relative standard error is
/// 1/√12800 ≈ 0.9%, the bound 5%; the two weight inits differ by 2.5× (N(0, 2/64) against
/// U(±1/8)).
#[test]
fn a_scratch_classifier_starts_as_the_reference_module_does() {
    use trainer::method::eval::config::HeadKind;
    use trainer::method::eval::head::Head;
    const WIDE: i64 = 100;
    for (arch, width, depth) in [
        (Arch::Resnet32, 16, 0),
        (Arch::Wrn, 1, 10),
        (Arch::Preact18, 8, 0),
    ] {
        let out = Command::new(common::python())
            .arg(common::workspace_root().join(SCRIPT))
            .args(["classifier", &arch.to_string()])
            .args([width, depth, WIDE].map(|v| v.to_string()))
            .output()
            .expect("starting python");
        assert!(out.status.success(), "{}", common::stderr(&out));
        let reference: Value = serde_json::from_slice(&out.stdout).unwrap();
        let field = |name: &str| reference[name].as_f64().unwrap();
        let fan_in = field("fan_in") as i64;
        tch::manual_seed(1);
        let vs = VarStore::new(Device::Cpu);
        let head = Head::new(&vs.root(), HeadKind::Linear, false, fan_in, WIDE);
        head.init_as(arch.classifier_init());
        let vars = vs.variables();
        let (w, b) = (&vars["weight"], &vars["bias"]);
        let std = w.std(true).double_value(&[]);
        assert!(
            (std / field("weight_std") - 1.0).abs() < 0.05,
            "{arch}: weight std {std} vs the reference's {}",
            field("weight_std")
        );
        let bounded = |max: f64| max <= 1.0 / (fan_in as f64).sqrt() + 1e-6;
        let ours_max = w.abs().max().double_value(&[]);
        assert_eq!(
            bounded(ours_max),
            bounded(field("weight_max")),
            "{arch}: uniform or not"
        );
        let zero = |max: f64| max == 0.0;
        let ours_bias = b.abs().max().double_value(&[]);
        assert_eq!(
            zero(ours_bias),
            zero(field("bias_max")),
            "{arch}: bias zero or not"
        );
    }
}
