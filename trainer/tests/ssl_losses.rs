//! The SSL losses against independent computations: a PyTorch reference written from the
//! reference code's conventions (tests/python/ssl_reference.py), cases worked out by hand, and
//! two Gloo ranks (this binary re-executed, test `ssl_rank_worker`) against one process.

mod common;

use common::ranks::{run_test_workers, worker_output};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tch::{Device, Kind, Tensor};
use trainer::cluster::ClusterEnv;
use trainer::distributed::{BackendKind, GroupOptions, ProcessGroup};
use trainer::method::ssl::{Method, SslLoss, VicregWeights};

const BATCH: i64 = 8;
const DIM: i64 = 6;
const TEMPERATURE: f64 = 0.5;
const REFERENCE: &str = include_str!("../../tests/python/ssl_reference.py");

/// Two views of a global batch, in f64 so that comparisons can be tight. Feature scales range
/// from 0.3 to 1.5, so some features have std below 1 (the hinge is active) and some above.
fn views() -> (Tensor, Tensor) {
    common::seeded(7, || {
        let opts = (Kind::Double, Device::Cpu);
        let scale = Tensor::linspace(0.3, 1.5, DIM, opts);
        let x = Tensor::randn([BATCH, DIM], opts) * &scale;
        let y = &x * 0.8 + Tensor::randn([BATCH, DIM], opts) * 0.4;
        (x, y)
    })
}

/// Loss values and input gradients of both losses; the same shape as the Python reference's
/// output, so either side deserializes into it.
#[derive(Debug, Serialize, Deserialize)]
struct Outputs {
    vicreg: BTreeMap<String, f64>,
    vicreg_grads: [Vec<f64>; 2],
    simclr: f64,
    simclr_grads: [Vec<f64>; 2],
}

fn flat(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.flatten(0, -1)).unwrap()
}

/// Runs `loss` on fresh leaves holding x and y; returns its parts by name and the gradients.
fn evaluate(
    loss: SslLoss,
    x: &Tensor,
    y: &Tensor,
    group: &ProcessGroup,
) -> (BTreeMap<String, f64>, [Vec<f64>; 2]) {
    let (x, y) = (
        x.detach().set_requires_grad(true),
        y.detach().set_requires_grad(true),
    );
    let out = loss.compute(&x, &y, group).unwrap();
    let mut parts: BTreeMap<String, f64> = out
        .values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    parts.insert("total".into(), out.total.double_value(&[]));
    out.total.backward();
    (parts, [flat(&x.grad()), flat(&y.grad())])
}

fn outputs(x: &Tensor, y: &Tensor, group: &ProcessGroup) -> Outputs {
    let (vicreg, vicreg_grads) = evaluate(SslLoss::Vicreg(VicregWeights::default()), x, y, group);
    let simclr_loss = SslLoss::Simclr {
        temperature: TEMPERATURE,
    };
    let (simclr, simclr_grads) = evaluate(simclr_loss, x, y, group);
    Outputs {
        vicreg,
        vicreg_grads,
        simclr: simclr["total"],
        simclr_grads,
    }
}

fn single(x: &Tensor, y: &Tensor) -> Outputs {
    outputs(x, y, &ProcessGroup::single(Device::Cpu))
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn matches_pytorch_reference() {
    let (x, y) = views();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("views.npz");
    Tensor::write_npz(&[("x", &x), ("y", &y)], &path).unwrap();
    let w = VicregWeights::default();
    let args = [path.to_str().unwrap(), "0.5", "25", "25", "1"];
    assert_eq!((w.sim, w.std, w.cov, TEMPERATURE), (25.0, 25.0, 1.0, 0.5));
    let want: Outputs = serde_json::from_str(&common::run_python(REFERENCE, &args)).unwrap();
    let got = single(&x, &y);
    for key in ["total", "repr", "std", "cov"] {
        assert_close(key, &[got.vicreg[key]], &[want.vicreg[key]], 1e-12);
    }
    // The data must exercise every term, or a missing one would go unnoticed.
    assert!(["repr", "std", "cov"]
        .iter()
        .all(|k| want.vicreg[*k] > 1e-3));
    assert_close("simclr", &[got.simclr], &[want.simclr], 1e-12);
    for v in 0..2 {
        let (g, w) = (&got.vicreg_grads[v], &want.vicreg_grads[v]);
        assert_close(&format!("vicreg grad {v}"), g, w, 1e-12);
        let (g, w) = (&got.simclr_grads[v], &want.simclr_grads[v]);
        assert_close(&format!("simclr grad {v}"), g, w, 1e-12);
    }
}

fn rows(data: &[[f64; 2]]) -> Tensor {
    Tensor::from_slice2(data).to_kind(Kind::Double)
}

#[test]
fn nt_xent_hand_cases() {
    let simclr = SslLoss::Simclr { temperature: 0.5 };
    let group = ProcessGroup::single(Device::Cpu);
    // N = 2, views e1, e2 and (scaled) 2·e1, 3·e2: after normalization row 0 (e1) sees the
    // negative e2 twice (similarity 0) and its positive e1 (similarity 1); over T = 0.5 the
    // logits are 0, 2, 0, so its loss is −log(e²/(e² + 2)) = ln(1 + 2e⁻²), and by symmetry
    // every row's is the same.
    let z1 = rows(&[[1.0, 0.0], [0.0, 1.0]]);
    let z2 = rows(&[[2.0, 0.0], [0.0, 3.0]]);
    let value = simclr.compute(&z1, &z2, &group).unwrap().total;
    let want = (1.0 + 2.0 * (-2.0f64).exp()).ln();
    assert_close("N=2", &[value.double_value(&[])], &[want], 1e-14);
    // N = 1: the positive is the only other row, so the loss is −log 1 = 0 whatever the views,
    // and so is the gradient.
    let (parts, grads) = evaluate(simclr, &rows(&[[1.0, 0.0]]), &rows(&[[0.0, 1.0]]), &group);
    assert_eq!(parts["total"], 0.0);
    assert!(grads.iter().flatten().all(|g| g.abs() < 1e-15), "{grads:?}");
}

#[test]
fn vicreg_hand_cases() {
    let vicreg = SslLoss::Vicreg(VicregWeights::default());
    let group = ProcessGroup::single(Device::Cpu);
    let parts = |x: &Tensor| evaluate(vicreg, x, x, &group).0;
    // x = y = [[1, 1], [−1, −1]]: already centred; var = 2 per feature (÷ N−1 = 1), std > 1 so
    // no hinge; cov = xᵀx = [[2, 2], [2, 2]], off-diagonal 2² + 2² = 8, ÷ D = 4 per view: 8.
    let p = parts(&rows(&[[1.0, 1.0], [-1.0, -1.0]]));
    assert_close(
        "cov",
        &[p["repr"], p["std"], p["cov"]],
        &[0.0, 0.0, 8.0],
        1e-14,
    );
    assert_close("total", &[p["total"]], &[8.0], 1e-14);
    // x = y = [[0.5, 0], [−0.5, 0]]: var = (0.5, 0), std = (√0.5001, √0.0001 = 0.01); the hinge
    // gives mean(1 − √0.5001, 0.99) for each view; cov is diagonal, so no covariance term.
    let p = parts(&rows(&[[0.5, 0.0], [-0.5, 0.0]]));
    let std = (1.0 - 0.5001f64.sqrt() + 0.99) / 2.0;
    assert_close(
        "std",
        &[p["repr"], p["std"], p["cov"]],
        &[0.0, std, 0.0],
        1e-14,
    );
    assert_close("total", &[p["total"]], &[25.0 * std], 1e-14);
}

#[test]
fn method_names() {
    for (m, name) in [(Method::Simclr, "simclr"), (Method::Vicreg, "vicreg")] {
        assert_eq!(m.to_string(), name);
        assert_eq!(name.parse::<Method>().unwrap(), m);
        let loss = SslLoss::new(m, 0.5, VicregWeights::default());
        assert_eq!(loss.method(), m);
    }
    assert!("byol".parse::<Method>().is_err());
}

const WORLD: i64 = 2;

/// One rank of the two-rank run: its half of the batch, losses over the gathered global batch.
#[test]
fn ssl_rank_worker() {
    let Some(out) = worker_output() else {
        return; // only active when re-executed by `two_ranks_equal_one_process`
    };
    let env = ClusterEnv::from_env().unwrap();
    let opts = GroupOptions {
        backend: BackendKind::Gloo,
        timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let group = ProcessGroup::init(&env, &opts).unwrap();
    let local = BATCH / group.world_size() as i64;
    let start = group.rank() as i64 * local;
    let (x, y) = views();
    let o = outputs(
        &x.narrow(0, start, local),
        &y.narrow(0, start, local),
        &group,
    );
    std::fs::write(out, serde_json::to_string(&o).unwrap()).unwrap();
}

fn run_ranks() -> Vec<Outputs> {
    run_test_workers("ssl_rank_worker", WORLD as usize, Duration::from_secs(120))
}

/// What must match, with the global batch split in equal halves over W ranks:
/// - global terms (VICReg std and cov, NT-Xent) are the same on every rank and equal one process;
/// - repr is each rank's local MSE, so the ranks' *mean* equals the whole-batch MSE (and so does
///   the mean of the totals);
/// - gradients: every rank back-propagates the same global loss through the gather, whose
///   backward sums over ranks, so rank r's input gradient is W × the one-process gradient of
///   its rows; the local repr term is W × too (its mean runs over N/W rows, not N). Hence the
///   ranks' gradients concatenated and divided by W equal one process's: exactly what DDP's
///   averaging of parameter gradients over ranks turns into the one-process parameter gradient.
#[test]
fn two_ranks_equal_one_process() {
    let (x, y) = views();
    let want = single(&x, &y);
    let got = run_ranks();
    let mean = |key: &str| got.iter().map(|o| o.vicreg[key]).sum::<f64>() / WORLD as f64;
    for o in &got {
        assert_close("std", &[o.vicreg["std"]], &[want.vicreg["std"]], 1e-12);
        assert_close("cov", &[o.vicreg["cov"]], &[want.vicreg["cov"]], 1e-12);
        assert_close("simclr", &[o.simclr], &[want.simclr], 1e-12);
    }
    for key in ["repr", "total"] {
        assert_close(key, &[mean(key)], &[want.vicreg[key]], 1e-12);
    }
    assert!(
        (got[0].vicreg["repr"] - got[1].vicreg["repr"]).abs() > 1e-6,
        "the halves should differ, or the mean check proves nothing"
    );
    let rescaled = |grads: fn(&Outputs) -> &[Vec<f64>; 2], view: usize| -> Vec<f64> {
        got.iter()
            .flat_map(|o| grads(o)[view].iter().map(|g| g / WORLD as f64))
            .collect()
    };
    for view in 0..2 {
        let got = rescaled(|o| &o.vicreg_grads, view);
        assert_close("vicreg grad", &got, &want.vicreg_grads[view], 1e-12);
        let got = rescaled(|o| &o.simclr_grads, view);
        assert_close("simclr grad", &got, &want.simclr_grads[view], 1e-12);
    }
}
