//! The EMA of weights and BN statistics against timm's ModelEmaV2 update computed in Python
//! (tests/python/ema_reference.py) over a real training run, evaluation with the average
//! (swap and copy), and a checkpointed run that continues bit-exactly.

mod common;

use std::collections::BTreeMap;
use tch::nn::{self, Module, ModuleT, VarStore};
use tch::{Device, Kind, Tensor};
use trainer::optim::{Ema, OptimSettings, Optimizer, OptimizerKind};

const REFERENCE: &str = include_str!("../../tests/python/ema_reference.py");
const DECAYS: [f64; 5] = [0.9, 0.5, 0.99, 0.0, 0.75];

/// conv → BatchNorm → ReLU → spatial mean → linear: BN's running statistics move in training.
struct Net {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    fc: nn::Linear,
}

impl Net {
    fn new(vs: &VarStore) -> Net {
        let root = vs.root();
        Net {
            conv: nn::conv2d(&root / "conv", 2, 3, 2, Default::default()),
            bn: nn::batch_norm2d(&root / "bn", 3, Default::default()),
            fc: nn::linear(&root / "fc", 3, 2, Default::default()),
        }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.bn.forward_t(&self.conv.forward(x), train).relu();
        self.fc
            .forward(&h.mean_dim([2, 3].as_slice(), false, Kind::Float))
    }
}

/// A model, its optimizer, the batches of every step and the model's average.
struct Run {
    vs: VarStore,
    net: Net,
    opt: Box<dyn Optimizer>,
    ema: Ema,
    batches: Vec<(Tensor, Tensor)>,
}

fn optimizer(vs: &VarStore) -> Box<dyn Optimizer> {
    let settings = OptimSettings {
        nesterov: true,
        ..OptimSettings::new(1e-2)
    };
    OptimizerKind::Sgd.build_with(vs, &settings).unwrap()
}

fn run() -> Run {
    common::seeded(11, || {
        let vs = VarStore::new(Device::Cpu);
        let net = Net::new(&vs);
        let batches = (0..8)
            .map(|_| {
                (
                    Tensor::randn([6, 2, 5, 5], (Kind::Float, Device::Cpu)),
                    Tensor::randn([6, 2], (Kind::Float, Device::Cpu)),
                )
            })
            .collect();
        let opt = optimizer(&vs);
        let ema = Ema::new(&vs);
        Run {
            vs,
            net,
            opt,
            ema,
            batches,
        }
    })
}

impl Run {
    /// One training step on batch `step` (BN statistics move), then the EMA update.
    fn step(&mut self, step: usize, decay: f64) {
        let (x, y) = &self.batches[step];
        self.opt.zero_grad();
        let loss = (self.net.forward(x, true) - y).square().mean(Kind::Float);
        loss.backward();
        self.opt.step(0.1);
        self.ema.update(decay);
    }
}

fn snapshot(vs: &VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

fn bits(state: &[(String, Tensor)]) -> BTreeMap<String, Vec<u32>> {
    state
        .iter()
        .map(|(n, t)| {
            let v = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
            (n.clone(), v.iter().map(|x| x.to_bits()).collect())
        })
        .collect()
}

/// The average after every step equals timm's `ema * decay + (1 - decay) * w` over the model's
/// states, bit for bit (the same float operations), running statistics included.
#[test]
fn ema_matches_timm_update() {
    let mut run = run();
    let mut states = vec![snapshot(&run.vs)];
    let mut averages = Vec::new();
    for (step, decay) in DECAYS.iter().enumerate() {
        run.step(step, *decay);
        states.push(snapshot(&run.vs));
        averages.push(run.ema.state());
    }
    let running = &states[0]
        .iter()
        .find(|(n, _)| n == "bn.running_mean")
        .unwrap()
        .1;
    let moved = &states[1]
        .iter()
        .find(|(n, _)| n == "bn.running_mean")
        .unwrap()
        .1;
    assert!(
        !running.equal(moved),
        "BN statistics should move in training"
    );

    let dir = tempfile::tempdir().unwrap();
    let named: Vec<(String, Tensor)> = states
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            s.iter()
                .map(move |(n, t)| (format!("s{k}.{n}"), t.shallow_clone()))
        })
        .collect();
    let path = dir.path().join("STATES.npz");
    Tensor::write_npz(&named, &path).unwrap();
    let decays: Vec<String> = DECAYS.iter().map(|d| d.to_string()).collect();
    common::run_python(REFERENCE, &[path.to_str().unwrap(), &decays.join(",")]);
    let want: BTreeMap<String, Tensor> = Tensor::read_npz(dir.path().join("EMA.npz"))
        .unwrap()
        .into_iter()
        .collect();
    for (k, ours) in averages.iter().enumerate() {
        assert_eq!(ours.len(), states[0].len(), "every variable is averaged");
        let theirs: Vec<(String, Tensor)> = ours
            .iter()
            .map(|(n, _)| (n.clone(), want[&format!("e{}.{n}", k + 1)].shallow_clone()))
            .collect();
        assert_eq!(bits(ours), bits(&theirs), "after step {k}");
    }
}

/// Swapping puts the average into the model (and gives the same outputs as a second model
/// holding a copy of it); swapping back restores the training weights and the average exactly.
#[test]
fn swap_and_copy_evaluate_with_the_average() {
    let mut run = run();
    for step in 0..3 {
        run.step(step, 0.8);
    }
    let (trained, average) = (snapshot(&run.vs), run.ema.state());
    assert_ne!(bits(&trained), bits(&average));
    let x = &run.batches[7].0;
    let trained_out = run.net.forward(x, false);

    run.ema.swap();
    assert_eq!(bits(&snapshot(&run.vs)), bits(&average));
    let ema_out = run.net.forward(x, false);
    let copy_vs = VarStore::new(Device::Cpu);
    let copy_net = Net::new(&copy_vs);
    run.ema.swap();
    run.ema.copy_to(&copy_vs).unwrap();
    assert!(copy_net.forward(x, false).equal(&ema_out));
    assert!(!ema_out.equal(&trained_out));

    assert_eq!(bits(&snapshot(&run.vs)), bits(&trained));
    assert_eq!(bits(&run.ema.state()), bits(&average));
    assert!(run.net.forward(x, false).equal(&trained_out));
}

/// Three steps, a checkpoint (model, optimizer and EMA through a file), three more: the
/// restored run ends with the same weights and average, bit for bit.
#[test]
fn interrupted_run_continues_bit_exactly() {
    let mut whole = run();
    for (step, decay) in DECAYS.iter().enumerate().take(3) {
        whole.step(step, *decay);
    }
    let dir = tempfile::tempdir().unwrap();
    let save = |name: &str, state: Vec<(String, Tensor)>| {
        let path = dir.path().join(name);
        Tensor::write_npz(&state, &path).unwrap();
        Tensor::read_npz(&path).unwrap()
    };
    let model = save("model.npz", snapshot(&whole.vs));
    let opt_state = save("opt.npz", whole.opt.state());
    let ema_state = save("ema.npz", whole.ema.state());

    let mut resumed = run();
    let mut vars = resumed.vs.variables();
    for (name, value) in model {
        tch::no_grad(|| vars.get_mut(&name).unwrap().copy_(&value));
    }
    resumed.opt.load_state(opt_state).unwrap();
    resumed.ema.load_state(ema_state).unwrap();
    for (step, decay) in (3..6).zip(&DECAYS[2..]) {
        whole.step(step, *decay);
        resumed.step(step, *decay);
    }
    assert_eq!(bits(&snapshot(&resumed.vs)), bits(&snapshot(&whole.vs)));
    assert_eq!(bits(&resumed.ema.state()), bits(&whole.ema.state()));
}

#[test]
fn load_state_rejects_foreign_averages() {
    let mut run = run();
    let kept = run.ema.state();
    let mut state = run.ema.state();
    state.retain(|(n, _)| n != "fc.bias");
    let err = run.ema.load_state(state).unwrap_err().to_string();
    assert!(err.contains("no average for \"fc.bias\""), "{err}");
    let mut extra = run.ema.state();
    extra.push((
        "head.weight".into(),
        Tensor::zeros([1], (Kind::Float, Device::Cpu)),
    ));
    let err = run.ema.load_state(extra).unwrap_err().to_string();
    assert!(err.contains("unknown variable \"head.weight\""), "{err}");
    let reshaped: Vec<_> = kept
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                if n == "fc.bias" {
                    t.reshape([1, 2])
                } else {
                    t.copy()
                },
            )
        })
        .collect();
    let err = run.ema.load_state(reshaped).unwrap_err().to_string();
    assert!(err.contains("EMA of fc.bias: shape [1, 2]"), "{err}");
    assert_eq!(
        bits(&run.ema.state()),
        bits(&kept),
        "a rejected state changes nothing"
    );
}
