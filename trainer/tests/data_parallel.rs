//! Data-parallel training over real Gloo groups equals one process on the whole batch.
//!
//! Workers are this test binary re-executed (test `ddp_worker`, inert unless started by `common::ranks::run_test_workers`).
//! Each rank starts from a *different* random init (so the broadcast matters), trains a small
//! MLP with SyncBatchNorm on its slice of a global batch, adds a loss on the all-gathered hidden
//! layer (gradient through the gather), and averages gradients in several buckets, once after
//! backward and once overlapping it (armed hooks issuing buckets between SyncBatchNorm's own
//! collectives in backward). The reference is one process with libtorch's own batch_norm and no
//! collectives at all.

mod common;

use common::ranks::{run_test_workers, worker_output};
use std::collections::BTreeMap;
use std::time::Duration;
use tch::nn::{self, Module, ModuleT, OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};
use trainer::cluster::ClusterEnv;
use trainer::distributed::ddp::{broadcast_variables, GradSync};
use trainer::distributed::sync_bn::SyncBatchNorm;
use trainer::distributed::{GroupOptions, ProcessGroup};

const GLOBAL_BATCH: i64 = 16;
const STEPS: i64 = 6;
type Weights = BTreeMap<String, Vec<f32>>;

/// What one rank reports: the weights after training without and with overlap, and how many
/// buckets the armed backward had issued by itself, per step.
#[derive(serde::Serialize, serde::Deserialize)]
struct RankRun {
    after_backward: Weights,
    overlapped: Weights,
    issued_in_backward: Vec<usize>,
}

/// The global batch of step `step`, identical on every rank.
fn batch(step: i64) -> (Tensor, Tensor) {
    common::seeded(1000 + step, || {
        let x = Tensor::randn([GLOBAL_BATCH, 8], (Kind::Float, Device::Cpu)) * 2.0 + 0.5;
        let y = Tensor::randint(4, [GLOBAL_BATCH], (Kind::Int64, Device::Cpu));
        (x, y)
    })
}

/// Loss on the gathered hidden layer: the same global quantity on every rank.
fn global_loss(h_all: &Tensor) -> Tensor {
    h_all.matmul(&h_all.tr()).square().mean(Kind::Float) * 1e-3
}

fn weights(vs: &VarStore) -> Weights {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, Vec::<f32>::try_from(v.flatten(0, -1)).unwrap()))
        .collect()
}

fn sgd(vs: &VarStore) -> nn::Optimizer {
    nn::Sgd {
        momentum: 0.9,
        ..Default::default()
    }
    .build(vs, 0.05)
    .unwrap()
}

/// One process, whole batch, libtorch's batch_norm: the independent reference. Returns the weights
/// before and after training.
fn reference() -> (Weights, Weights) {
    let vs = VarStore::new(Device::Cpu);
    // PyTorch's BatchNorm init (tch's default draws the weight uniformly).
    let bn_config = nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        ..Default::default()
    };
    let (lin1, bn, lin2) = common::seeded(100, || {
        let lin1 = nn::linear(vs.root() / "lin1", 8, 16, Default::default());
        let bn = nn::batch_norm1d(vs.root() / "bn", 16, bn_config);
        let lin2 = nn::linear(vs.root() / "lin2", 16, 4, Default::default());
        (lin1, bn, lin2)
    });
    let initial = weights(&vs);
    let mut opt = sgd(&vs);
    for step in 0..STEPS {
        let (x, y) = batch(step);
        let h = bn.forward_t(&lin1.forward(&x), true).relu();
        let loss = lin2.forward(&h).cross_entropy_for_logits(&y) + global_loss(&h);
        opt.backward_step(&loss);
    }
    (initial, weights(&vs))
}

/// One rank of the data-parallel run, the gradient averaging armed before backward or not;
/// with the buckets an armed backward issued by itself, per step.
fn train_rank(group: &ProcessGroup, overlap: bool) -> (Weights, Vec<usize>) {
    let (rank, world) = (group.rank() as i64, group.world_size() as i64);
    let vs = VarStore::new(Device::Cpu);
    tch::manual_seed(100 + rank);
    let lin1 = nn::linear(vs.root() / "lin1", 8, 16, Default::default());
    let bn = SyncBatchNorm::new(vs.root() / "bn", 16);
    let lin2 = nn::linear(vs.root() / "lin2", 16, 4, Default::default());
    broadcast_variables(group, &vs).unwrap();
    let sync = GradSync::new(&vs, 0.0002); // 200-byte buckets: several collectives per step
    assert!(
        sync.num_buckets() >= 3,
        "expected several buckets, got {}",
        sync.num_buckets()
    );
    let mut opt = sgd(&vs);
    let local = GLOBAL_BATCH / world;
    let mut issued = Vec::new();
    for step in 0..STEPS {
        let (x, y) = batch(step);
        let (x, y) = (
            x.narrow(0, rank * local, local),
            y.narrow(0, rank * local, local),
        );
        let h = bn.forward(&lin1.forward(&x), true, group).unwrap().relu();
        let h_all = group.all_gather_with_grad(&h).unwrap();
        let loss = lin2.forward(&h).cross_entropy_for_logits(&y) + global_loss(&h_all);
        opt.zero_grad();
        if overlap {
            sync.arm(group).unwrap();
        }
        loss.backward();
        issued.push(sync.average(group).unwrap());
        opt.step();
    }
    (weights(&vs), issued)
}

#[test]
fn ddp_worker() {
    let Some(out) = worker_output() else {
        return; // only active when re-executed by `data_parallel_equals_single_process`
    };
    let env = ClusterEnv::from_env().unwrap();
    let opts = GroupOptions {
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let group = ProcessGroup::init(&env, &opts).unwrap();
    let (after_backward, _) = train_rank(&group, false);
    let (overlapped, issued_in_backward) = train_rank(&group, true);
    let run = RankRun {
        after_backward,
        overlapped,
        issued_in_backward,
    };
    std::fs::write(out, serde_json::to_string(&run).unwrap()).unwrap();
}

fn run_ranks(world: usize) -> Vec<RankRun> {
    run_test_workers("ddp_worker", world, Duration::from_secs(180))
}

fn max_abs_diff(a: &Weights, b: &Weights) -> f32 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .flat_map(|(k, va)| va.iter().zip(&b[k]).map(|(x, y)| (x - y).abs()))
        .fold(0.0, f32::max)
}

fn pick(w: &Weights, key: &str) -> Weights {
    w.iter()
        .filter(|(k, _)| *k == key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn data_parallel_equals_single_process() {
    let (initial, want) = reference();
    let moved = max_abs_diff(&initial, &want);
    assert!(
        moved > 1e-2,
        "training should move the weights (max |Δ| = {moved})"
    );
    for world in [2, 4] {
        let runs = run_ranks(world);
        for (rank, run) in runs.iter().enumerate() {
            assert!(
                run.overlapped == run.after_backward,
                "world {world}, rank {rank}: overlapping backward changed the weights"
            );
            // The first buckets (the output layer's) are complete long before backward ends.
            assert!(
                run.issued_in_backward.iter().all(|&n| n >= 1),
                "world {world}, rank {rank}: buckets issued during backward {:?}",
                run.issued_in_backward
            );
        }
        let got: Vec<Weights> = runs.into_iter().map(|r| r.after_backward).collect();
        for (rank, w) in got.iter().enumerate() {
            let diff = max_abs_diff(w, &want);
            let per_key: Vec<_> = w
                .keys()
                .map(|k| (k, max_abs_diff(&pick(w, k), &pick(&want, k))))
                .collect();
            assert!(
                diff < 1e-5,
                "world {world}, rank {rank}: max |Δ| = {diff:e} {per_key:?}"
            );
        }
        assert!(
            got.iter().all(|w| w == &got[0]),
            "world {world}: ranks disagree"
        );
    }
}
