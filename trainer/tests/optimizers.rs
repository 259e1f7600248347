//! Our optimizers against hand-worked LARS steps and torch.optim (tests/python/optim_reference.py):
//! SGD (Nesterov too), Adam, AdamW, with and without the no-decay group of biases and norms,
//! and LARS against the VICReg reference's class, its multi-tensor update against its
//! one-variable formula;
//! their state round trip, settings checks, and the learning-rate schedule against
//! hand-computed values.

mod common;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::f64::consts::PI;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use trainer::model::{MemoryFormat, Precision};
use trainer::optim::ema::Ema;
use trainer::optim::{
    is_bias_or_norm, Adam, AdamW, Lars, LrSchedule, OptimSettings, Optimizer, OptimizerKind, Param,
    PerVariable, Sgd, UpdateRule,
};

const REFERENCE: &str = include_str!("../../tests/python/optim_reference.py");

/// Creates variable `name` ("a.b.c" = path a / b, variable c) holding a copy of `value`.
fn add_var(vs: &VarStore, name: &str, value: &Tensor) {
    let (dirs, leaf) = name.rsplit_once('.').unwrap_or(("", name));
    let path = dirs
        .split('.')
        .filter(|d| !d.is_empty())
        .fold(vs.root(), |p, d| p / d);
    let _ = path.var_copy(leaf, value);
}

/// A VarStore holding `vars` (name, values, shape) in f64 or f32.
fn store(vars: &[(&str, &[f64], &[i64])], kind: Kind) -> VarStore {
    let mut vs = VarStore::new(Device::Cpu);
    for (name, values, shape) in vars {
        add_var(&vs, name, &Tensor::from_slice(values).reshape(*shape));
    }
    vs.set_kind(kind);
    vs
}

/// Gives each variable the gradient `grads[name]`, through autograd as training would:
/// d/dp Σ p·g = g.
fn set_grads(vs: &VarStore, opt: &mut dyn Optimizer, grads: &BTreeMap<String, Tensor>) {
    opt.zero_grad();
    let vars = vs.variables();
    let loss = grads
        .iter()
        .map(|(name, g)| (&vars[name] * g).sum(Kind::Double))
        .fold(Tensor::from(0.0), |a, b| a + b);
    loss.backward();
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w}");
    }
}

fn grads_of(pairs: &[(&str, &[f64], &[i64])]) -> BTreeMap<String, Tensor> {
    pairs
        .iter()
        .map(|(n, g, shape)| (n.to_string(), Tensor::from_slice(g).reshape(*shape)))
        .collect()
}

/// Hand case, wd 0.1, lr 0.5, eta 0.001, momentum 0.9, the same gradients on both steps.
///
/// `w` (2-D, [1, 2]) = [3, 4], ‖w‖ = 5, g = [0.3, 0.4]:
/// - step 1: g' = g + 0.1·w = [0.6, 0.8], ‖g'‖ = 1, q = 0.001·5/1 = 0.005, mu = [0.003, 0.004],
///   w = [3, 4] − 0.5·mu = [2.9985, 3.998] (= 0.9995·[3, 4], ‖w‖ = 4.9975);
/// - step 2: g' = [0.3, 0.4] + 0.1·w = 0.99975·[0.6, 0.8], so q·g' = 0.001·‖w‖·[0.6, 0.8]
///   = [0.0029985, 0.003998]; mu = 0.9·[0.003, 0.004] + that = [0.0056985, 0.007598];
///   w = [2.9985 − 0.00284925, 3.998 − 0.003799] = [2.99565075, 3.994201].
///
/// `b` (1-D, excluded from decay and scaling) = [1, 2], g = [0.5, −0.5]:
/// - step 1: mu = g, b = [1 − 0.25, 2 + 0.25] = [0.75, 2.25];
/// - step 2: mu = 0.9·g + g = [0.95, −0.95], b = [0.75 − 0.475, 2.25 + 0.475] = [0.275, 2.725].
///
/// `z` (2-D) = [0, 0], g = [1, 1]: ‖z‖ = 0 so q = 1: z = −0.5·[1, 1] after step 1; step 2 has
/// ‖z‖ > 0: g' = [1, 1] + 0.1·z = [0.95, 0.95], q·g' = 0.001·‖z‖·[1, 1]/√2 = [0.0005, 0.0005],
/// mu = 0.9·[1, 1] + that = [0.9005, 0.9005], z = −0.5 − 0.45025 = −0.95025.
#[test]
fn lars_hand_case() {
    let vs = store(
        &[
            ("w", &[3.0, 4.0], &[1, 2]),
            ("b", &[1.0, 2.0], &[2]),
            ("z", &[0.0, 0.0], &[1, 2]),
        ],
        Kind::Double,
    );
    let grads = grads_of(&[
        ("w", &[0.3, 0.4], &[1, 2]),
        ("b", &[0.5, -0.5], &[2]),
        ("z", &[1.0, 1.0], &[1, 2]),
    ]);
    let mut opt = PerVariable::new(
        &vs,
        Lars {
            weight_decay: 0.1,
            ..Default::default()
        },
    );
    let want = [
        [[2.9985, 3.998], [0.75, 2.25], [-0.5, -0.5]],
        [[2.99565075, 3.994201], [0.275, 2.725], [-0.95025, -0.95025]],
    ];
    for want in want {
        set_grads(&vs, &mut opt, &grads);
        opt.step(0.5);
        let vars = vs.variables();
        for (name, w) in ["w", "b", "z"].iter().zip(want) {
            assert_close(name, &values(&vars[*name]), &w, 1e-12);
        }
    }
}

/// Initial variables and three steps of gradients, in f32 as in training.
fn random_problem() -> (VarStore, Vec<BTreeMap<String, Tensor>>) {
    common::seeded(3, || {
        let shapes: [(&str, &[i64]); 3] = [
            ("head.weight", &[3, 4]),
            ("head.bias", &[4]),
            ("emb", &[2, 3]),
        ];
        let vs = VarStore::new(Device::Cpu);
        for (name, shape) in shapes {
            add_var(&vs, name, &Tensor::randn(shape, (Kind::Float, Device::Cpu)));
        }
        let grads = (0..3)
            .map(|_| {
                shapes
                    .iter()
                    .map(|(n, s)| (n.to_string(), Tensor::randn(*s, (Kind::Float, Device::Cpu))))
                    .collect()
            })
            .collect();
        (vs, grads)
    })
}

#[derive(Deserialize)]
struct TorchRun {
    after: Vec<BTreeMap<String, Vec<f64>>>,
    state: BTreeMap<String, Vec<f64>>,
}

fn torch_run(
    vs: &VarStore,
    grads: &[BTreeMap<String, Tensor>],
    (kind, wd, flags): (&str, f64, &[&str]),
    lrs: &[f64],
) -> TorchRun {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("problem.npz");
    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(n, t)| (format!("p.{n}"), t.detach()))
        .collect();
    for (k, step) in grads.iter().enumerate() {
        named.extend(
            step.iter()
                .map(|(n, g)| (format!("g{k}.{n}"), g.shallow_clone())),
        );
    }
    Tensor::write_npz(&named, &path).unwrap();
    let lrs = lrs
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let wd = wd.to_string();
    let mut args = vec![path.to_str().unwrap(), kind, &wd, &lrs];
    args.extend(flags);
    serde_json::from_str(&common::run_python(REFERENCE, &args)).unwrap()
}

/// Runs `opt` over `grads` with rate `lrs[k]` on step k and compares every trainable
/// variable after every step, and the final buffers, with torch.optim's run of `torch`.
fn check_against_torch(
    what: &str,
    (vs, grads): &(VarStore, Vec<BTreeMap<String, Tensor>>),
    opt: &mut dyn Optimizer,
    torch: (&str, f64, &[&str]),
    lrs: &[f64],
) {
    let want = torch_run(vs, grads, torch, lrs);
    for (step, lr) in lrs.iter().enumerate() {
        set_grads(vs, opt, &grads[step % grads.len()]);
        opt.step(*lr);
        for (var, t) in vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
        {
            assert_close(
                &format!("{what} step {step} {var}"),
                &values(&t),
                &want.after[step][&var],
                1e-6,
            );
        }
    }
    let state: BTreeMap<String, Tensor> = opt
        .state()
        .into_iter()
        .filter(|(k, _)| !k.ends_with(":step"))
        .collect();
    assert_eq!(
        state.keys().collect::<Vec<_>>(),
        want.state.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (key, t) in &state {
        assert_close(&format!("{what} {key}"), &values(t), &want.state[key], 1e-6);
    }
}

/// Our SGD and AdamW take the same three steps as torch.optim on the same numbers, with a
/// different learning rate on each step, and end with the same buffers.
#[test]
fn sgd_and_adamw_match_torch() {
    let lrs = [0.1, 0.05, 0.02];
    for (kind, name, wd) in [
        (OptimizerKind::Sgd, "sgd", 1e-2),
        (OptimizerKind::Adamw, "adamw", 5e-2),
    ] {
        let problem = random_problem();
        let mut opt = kind.build(&problem.0, wd);
        check_against_torch(name, &problem, opt.as_mut(), (name, wd, &[]), &lrs);
    }
}

/// A small model with BatchNorm (conv → BN → linear, tch's layers, so BN's running statistics
/// sit in the VarStore untrained) and four steps of random gradients of its trainable variables.
fn bn_problem() -> (VarStore, Vec<BTreeMap<String, Tensor>>) {
    common::seeded(5, || {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = tch::nn::conv2d(&root / "conv", 2, 3, 2, Default::default());
        let _ = tch::nn::batch_norm2d(&root / "bn", 3, Default::default());
        let _ = tch::nn::linear(&root / "fc", 3, 2, Default::default());
        // Sorted: the VarStore is a HashMap, and each call must draw the same gradient per name.
        let trainable: BTreeMap<String, Vec<i64>> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, t)| (n, t.size()))
            .collect();
        let grads = (0..4)
            .map(|_| {
                trainable
                    .iter()
                    .map(|(n, s)| (n.clone(), Tensor::randn(s, (Kind::Float, Device::Cpu))))
                    .collect()
            })
            .collect();
        (vs, grads)
    })
}

/// Adam (L2 decay), Nesterov SGD and the no-decay group of biases and norms against
/// torch.optim with timm's parameter groups, over four steps with varying rates. The decay is
/// large enough (0.1 at rate 0.1) that decaying the exempt group would be off by ~1e-2.
#[test]
fn adam_nesterov_and_groups_match_torch() {
    let lrs = [0.1, 0.05, 0.2, 0.02];
    let wd = 0.1;
    let nesterov = OptimSettings {
        momentum: Some(0.8),
        nesterov: true,
        ..OptimSettings::new(wd)
    };
    let cases: [(OptimizerKind, &str, OptimSettings, &[&str]); 5] = [
        (OptimizerKind::Adam, "adam", OptimSettings::new(wd), &[]),
        (
            OptimizerKind::Sgd,
            "sgd",
            nesterov,
            &["--momentum", "0.8", "--nesterov"],
        ),
        (
            OptimizerKind::Sgd,
            "sgd",
            OptimSettings {
                no_decay_bn_bias: true,
                ..nesterov
            },
            &["--momentum", "0.8", "--nesterov", "--no-decay-bn-bias"],
        ),
        (
            OptimizerKind::Adam,
            "adam",
            OptimSettings {
                no_decay_bn_bias: true,
                ..OptimSettings::new(wd)
            },
            &["--no-decay-bn-bias"],
        ),
        (
            OptimizerKind::Adamw,
            "adamw",
            OptimSettings {
                no_decay_bn_bias: true,
                ..OptimSettings::new(wd)
            },
            &["--no-decay-bn-bias"],
        ),
    ];
    for (kind, name, settings, flags) in cases {
        let problem = bn_problem();
        let mut opt = kind.build_with(&problem.0, &settings).unwrap();
        let what = format!("{name} {flags:?}");
        check_against_torch(&what, &problem, opt.as_mut(), (name, wd, flags), &lrs);
    }
}

/// [`bn_problem`] plus a variable that starts at zero with a zero first gradient, so that LARS
/// meets both of its special cases: ‖p‖ = ‖g + wd·p‖ = 0 on step 1, ‖p‖ = 0 alone on step 2.
fn lars_problem() -> (VarStore, Vec<BTreeMap<String, Tensor>>) {
    let (vs, mut grads) = bn_problem();
    let zeros = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
    add_var(&vs, "zero.weight", &zeros);
    for (k, step) in grads.iter_mut().enumerate() {
        step.insert("zero.weight".into(), &zeros + k as f64);
    }
    (vs, grads)
}

/// LARS (one group; 1-D variables undecayed and unscaled by the filter) against the VICReg
/// reference's `LARS` class over four steps with varying rates, wd 0.1 so that decay shows.
#[test]
fn lars_matches_the_vicreg_reference() {
    let lrs = [0.3, 0.1, 0.2, 0.05];
    let problem = lars_problem();
    let mut opt = OptimizerKind::Lars.build(&problem.0, 0.1);
    check_against_torch("lars", &problem, opt.as_mut(), ("lars", 0.1, &[]), &lrs);
}

/// A rule applied one variable at a time: the default [`UpdateRule::update_group`] over the
/// rule's own [`UpdateRule::update`].
#[derive(Clone)]
struct OneByOne<R>(R);

impl<R: UpdateRule> UpdateRule for OneByOne<R> {
    const SLOTS: &'static [&'static str] = R::SLOTS;
    fn update(&self, p: &mut Param, grad: &Tensor, lr: f64) {
        self.0.update(p, grad, lr)
    }
    fn without_weight_decay(&self) -> Self {
        OneByOne(self.0.without_weight_decay())
    }
}

type Outcome = (BTreeMap<String, Vec<u32>>, Vec<(String, Vec<f64>)>);

/// The variables' bits and the state after four steps of `rule` on [`lars_problem`], with or
/// without the no-decay group.
fn four_steps<R: UpdateRule + 'static>(rule: R, groups: bool) -> Outcome {
    four_steps_on(rule, groups, lars_problem())
}

fn four_steps_on<R: UpdateRule + 'static>(
    rule: R,
    groups: bool,
    (vs, grads): (VarStore, Vec<BTreeMap<String, Tensor>>),
) -> Outcome {
    let mut opt: Box<dyn Optimizer> = if groups {
        Box::new(PerVariable::no_decay_on_bias_and_norm(&vs, rule))
    } else {
        Box::new(PerVariable::new(&vs, rule))
    };
    for (step, g) in grads.iter().enumerate() {
        set_grads(&vs, opt.as_mut(), g);
        opt.step(0.1 * (step + 1) as f64);
    }
    let state = opt
        .state()
        .iter()
        .map(|(k, t)| (k.clone(), values(t)))
        .collect();
    (bits(&vs), state)
}

/// The multi-tensor LARS, SGD, Adam and AdamW (what a GPU runs fused) take bit-identical steps
/// to their formulas applied one variable at a time, with and without the no-decay group.
#[test]
fn multi_tensor_steps_equal_one_variable_at_a_time() {
    let lars = Lars {
        weight_decay: 0.1,
        ..Default::default()
    };
    for groups in [false, true] {
        let what = format!("{lars:?} no_decay_bn_bias {groups}");
        assert!(
            four_steps(lars, groups) == four_steps(OneByOne(lars), groups),
            "{what}"
        );
        for (momentum, nesterov) in [(0.0, false), (0.9, false), (0.8, true)] {
            let sgd = Sgd {
                momentum,
                weight_decay: 0.1,
                nesterov,
            };
            let what = format!("{sgd:?} no_decay_bn_bias {groups}");
            assert!(
                four_steps(sgd, groups) == four_steps(OneByOne(sgd), groups),
                "{what}"
            );
        }
        let adam = Adam {
            weight_decay: 0.1,
            ..Default::default()
        };
        let what = format!("{adam:?} no_decay_bn_bias {groups}");
        assert!(
            four_steps(adam, groups) == four_steps(OneByOne(adam), groups),
            "{what}"
        );
        let adamw = AdamW::default();
        let what = format!("{adamw:?} no_decay_bn_bias {groups}");
        assert!(
            four_steps(adamw, groups) == four_steps(OneByOne(adamw), groups),
            "{what}"
        );
        // One variable without a gradient at the first step has taken one step fewer from
        // then on, so its bias corrections differ from the rest of its group's.
        let late = || {
            let (vs, mut grads) = lars_problem();
            grads[0].remove("zero.weight");
            (vs, grads)
        };
        assert!(
            four_steps_on(adam, groups, late()) == four_steps_on(OneByOne(adam), groups, late()),
            "{adam:?} no_decay_bn_bias {groups}, a variable late"
        );
    }
}

/// timm's rule: at most one dimension (BN scale and shift, biases) or a name ending in `.bias`.
#[test]
fn bias_and_norm_variables() {
    let (vs, _) = bn_problem();
    let mut exempt: Vec<String> = vs
        .variables()
        .into_iter()
        .filter(|(n, t)| t.requires_grad() && is_bias_or_norm(n, t))
        .map(|(n, _)| n)
        .collect();
    exempt.sort();
    assert_eq!(exempt, ["bn.bias", "bn.weight", "conv.bias", "fc.bias"]);
    let matrix = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
    assert!(is_bias_or_norm("head.bias", &matrix));
    assert!(!is_bias_or_norm("head.weight", &matrix));
}

#[test]
fn build_with_rejects_bad_settings() {
    let (vs, _) = bn_problem();
    let err = |kind: OptimizerKind, s: OptimSettings| {
        format!("{:#}", kind.build_with(&vs, &s).err().expect("an error"))
    };
    let base = OptimSettings::new(1e-4);
    let nesterov = OptimSettings {
        nesterov: true,
        ..base
    };
    assert!(err(OptimizerKind::Adam, nesterov).contains("Nesterov momentum is for sgd only"));
    let no_momentum = OptimSettings {
        momentum: Some(0.0),
        ..nesterov
    };
    assert!(err(OptimizerKind::Sgd, no_momentum).contains("needs a momentum > 0"));
    let momentum = OptimSettings {
        momentum: Some(0.9),
        ..base
    };
    assert!(err(OptimizerKind::Adamw, momentum).contains("adamw has no momentum setting"));
    let too_much = OptimSettings {
        momentum: Some(1.0),
        ..base
    };
    assert!(err(OptimizerKind::Lars, too_much).contains("momentum must be in [0, 1)"));
    let negative = OptimSettings::new(-1e-4);
    assert!(err(OptimizerKind::Sgd, negative).contains("weight decay must be"));
}

fn bits(vs: &VarStore) -> BTreeMap<String, Vec<u32>> {
    vs.variables()
        .into_iter()
        .map(|(n, t)| {
            (
                n,
                Vec::<f32>::try_from(t.flatten(0, -1))
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            )
        })
        .collect()
}

/// Two steps, then the state through a file (as a checkpoint would), into a new optimizer over a
/// copy of the variables: both continue bit-identically.
#[test]
fn state_round_trip_continues_bit_identically() {
    let dir = tempfile::tempdir().unwrap();
    let groups = OptimSettings {
        no_decay_bn_bias: true,
        ..OptimSettings::new(1e-3)
    };
    let nesterov = OptimSettings {
        nesterov: true,
        ..groups
    };
    for (kind, settings) in [
        (OptimizerKind::Lars, OptimSettings::new(1e-3)),
        (OptimizerKind::Sgd, OptimSettings::new(1e-3)),
        (OptimizerKind::Adamw, OptimSettings::new(1e-3)),
        (OptimizerKind::Adam, groups),
        (OptimizerKind::Sgd, nesterov),
    ] {
        let (vs, grads) = random_problem();
        let build = |vs: &VarStore| kind.build_with(vs, &settings).unwrap();
        let mut opt = build(&vs);
        let run = |vs: &VarStore, opt: &mut dyn Optimizer, steps: std::ops::Range<usize>| {
            for step in steps {
                set_grads(vs, opt, &grads[step % grads.len()]);
                opt.step(0.1 * (step + 1) as f64);
            }
        };
        run(&vs, opt.as_mut(), 0..2);
        let path = dir.path().join(format!("{kind}.npz"));
        Tensor::write_npz(&opt.state(), &path).unwrap();
        let resumed_vs = VarStore::new(Device::Cpu);
        for (name, t) in vs.variables() {
            add_var(&resumed_vs, &name, &t);
        }
        let mut resumed = build(&resumed_vs);
        resumed
            .load_state(Tensor::read_npz(&path).unwrap())
            .unwrap();
        assert_eq!(bits(&resumed_vs), bits(&vs));
        run(&vs, opt.as_mut(), 2..5);
        run(&resumed_vs, resumed.as_mut(), 2..5);
        assert_eq!(bits(&resumed_vs), bits(&vs), "{kind} {settings:?}");
        let fresh = build(&resumed_vs);
        assert!(fresh.state().is_empty(), "{kind}: state before any step");
    }
}

/// A conv weight made channels-last (as on a GPU), a bias, and two steps of gradients.
fn channels_last_problem() -> (VarStore, Vec<BTreeMap<String, Tensor>>) {
    let shapes: [(&str, &[i64]); 2] = [("conv.weight", &[4, 3, 3, 3]), ("conv.bias", &[4])];
    common::seeded(5, || {
        let vs = VarStore::new(Device::Cpu);
        for (name, shape) in shapes {
            add_var(&vs, name, &Tensor::randn(shape, (Kind::Float, Device::Cpu)));
        }
        Precision::new(Device::Cpu, MemoryFormat::ChannelsLast, false).convert(&vs);
        let grads = (0..2)
            .map(|_| {
                let each = shapes.iter();
                each.map(|(n, s)| (n.to_string(), Tensor::randn(*s, (Kind::Float, Device::Cpu))))
                    .collect()
            })
            .collect();
        (vs, grads)
    })
}

/// Asserts that every tensor of `state` ("variable[:slot]") has its variable's strides.
fn assert_laid_out_like(what: &str, vs: &VarStore, state: &[(String, Tensor)]) {
    let vars = vs.variables();
    for (key, t) in state {
        let var = &vars[key.split(':').next().unwrap()];
        if t.size() == var.size() {
            assert_eq!(t.stride(), var.stride(), "{what}: {key}");
        }
    }
}

/// A checkpoint's tensors are contiguous, a GPU's conv weights channels-last: restored optimizer
/// state and weight averages must take their variable's layout (ATen's multi-tensor ops fuse
/// only lists of equal strides; otherwise every step after a resume runs a kernel per tensor on
/// a GPU) and go on bit-identically. Fails with state restored as the file holds it.
#[test]
fn restored_state_takes_each_variables_layout() {
    let dir = tempfile::tempdir().unwrap();
    for kind in [
        OptimizerKind::Lars,
        OptimizerKind::Sgd,
        OptimizerKind::Adam,
        OptimizerKind::Adamw,
    ] {
        let (vs, grads) = channels_last_problem();
        let build = |vs: &VarStore| kind.build_with(vs, &OptimSettings::new(1e-3)).unwrap();
        let run = |vs: &VarStore, opt: &mut dyn Optimizer, ema: &mut Ema, step: usize| {
            set_grads(vs, opt, &grads[step % grads.len()]);
            opt.step(0.1);
            ema.update(0.9);
        };
        let (mut opt, mut ema) = (build(&vs), Ema::new(&vs));
        run(&vs, opt.as_mut(), &mut ema, 0);
        let path = dir.path().join(format!("{kind}.npz"));
        Tensor::write_npz(&opt.state(), &path).unwrap();
        let ema_path = dir.path().join(format!("{kind}-ema.npz"));
        Tensor::write_npz(&ema.state(), &ema_path).unwrap();

        let (resumed_vs, _) = channels_last_problem();
        tch::no_grad(|| {
            for (name, mut t) in resumed_vs.variables() {
                t.copy_(&vs.variables()[&name]);
            }
        });
        let (mut resumed, mut resumed_ema) = (build(&resumed_vs), Ema::new(&resumed_vs));
        resumed
            .load_state(Tensor::read_npz(&path).unwrap())
            .unwrap();
        resumed_ema
            .load_state(Tensor::read_npz(&ema_path).unwrap())
            .unwrap();
        assert_laid_out_like(&format!("{kind}"), &resumed_vs, &resumed.state());
        assert_laid_out_like("EMA", &resumed_vs, &resumed_ema.state());

        run(&vs, opt.as_mut(), &mut ema, 1);
        run(&resumed_vs, resumed.as_mut(), &mut resumed_ema, 1);
        assert_eq!(bits(&resumed_vs), bits(&vs), "{kind}");
    }
}

#[test]
fn load_state_rejects_foreign_states() {
    let (vs, grads) = random_problem();
    let mut adamw = OptimizerKind::Adamw.build(&vs, 0.0);
    set_grads(&vs, adamw.as_mut(), &grads[0]);
    adamw.step(0.1);
    let mut lars = OptimizerKind::Lars.build(&vs, 0.0);
    let err = lars.load_state(adamw.state()).unwrap_err().to_string();
    assert!(err.contains("exp_avg"), "{err}");
    let renamed = vec![(
        "nope.weight:mu".to_string(),
        Tensor::zeros([3, 4], (Kind::Float, Device::Cpu)),
    )];
    let err = lars.load_state(renamed).unwrap_err().to_string();
    assert!(err.contains("unknown variable"), "{err}");
    let reshaped = vec![
        ("emb:step".to_string(), Tensor::from(1i64)),
        (
            "emb:mu".to_string(),
            Tensor::zeros([3, 2], (Kind::Float, Device::Cpu)),
        ),
    ];
    let err = lars.load_state(reshaped).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
}

/// The VarStore is a HashMap; the optimizer must not depend on its order.
#[test]
fn variables_in_name_order() {
    let vs = store(
        &[
            ("m", &[1.0], &[1]),
            ("a.z", &[1.0], &[1]),
            ("a.b", &[1.0], &[1]),
            ("z", &[1.0], &[1]),
        ],
        Kind::Float,
    );
    let opt = PerVariable::new(&vs, Sgd::default());
    assert_eq!(opt.names().collect::<Vec<_>>(), ["a.b", "a.z", "m", "z"]);
    let _ = PerVariable::new(&vs, AdamW::default());
}

#[test]
fn optimizer_kind_names() {
    for (kind, name) in [
        (OptimizerKind::Lars, "lars"),
        (OptimizerKind::Sgd, "sgd"),
        (OptimizerKind::Adamw, "adamw"),
        (OptimizerKind::Adam, "adam"),
    ] {
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<OptimizerKind>().unwrap(), kind);
    }
}

/// base 0.2 at global batch 512 → peak 0.4; 100 epochs × 10 steps, warm-up 10 epochs = 100 steps.
#[test]
fn schedule_values() {
    let s = LrSchedule::new(0.2, 512, 100, 10);
    assert_eq!(s.peak(), 0.4);
    let end = 0.4 * 0.001;
    let cases = [
        (0, 0.0),               // warm-up starts from 0
        (1, 0.004),             // 0.4 · 1/100
        (50, 0.2),              // half-way through warm-up
        (99, 0.396),            // last warm-up step
        (100, 0.4),             // cosine starts at the peak (q = 1)
        (550, 0.2 + end / 2.0), // cosine half-way: q = 1/2 → (0.4 + 0.0004)/2
        // last step: progress 899/900, q = (1 + cos(π·899/900))/2 = sin²(π/1800)
        (999, end + (0.4 - end) * (PI / 1800.0).sin().powi(2)),
        (1000, end), // the end of the run (q = 0)
        (5000, end), // past the end: stays at the end, no cosine climb
    ];
    for (step, want) in cases {
        let got = s.lr(step);
        assert!(
            (got - want).abs() < 1e-15,
            "step {step}: got {got}, want {want}"
        );
    }
    assert!((s.lr(999) - 0.000_401_217_25).abs() < 1e-11);
}
