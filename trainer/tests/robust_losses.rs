//! The robust classification losses against independent computations: a PyTorch reference
//! written in this file's Python snippet from the reference code (shengliu66/ELR `elr_loss`,
//! HanxunH/SCELoss-Reproduce `SCELoss`, the GCE and MAE formulas, `F.cross_entropy`), values and
//! input gradients, in f32 and f64; cases worked out by hand; parameter validation; ELR state.

mod common;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};
use trainer::method::eval::{LossKind, LossParams, RobustLoss, ELR_TARGETS_KEY};

const K: i64 = 10;
const BATCH: i64 = 8;
const NUM_SAMPLES: usize = 16;
const ALL: [LossKind; 5] = [
    LossKind::Ce,
    LossKind::Elr,
    LossKind::Gce,
    LossKind::Mae,
    LossKind::Sce,
];

/// The reference. Reads a JSON case (see `Case`), prints one JSON object per call: loss, grad
/// (w.r.t. the logits) and, for ELR, the whole target table after the call.
const REFERENCE: &str = r#"
import json
import sys

import torch
import torch.nn.functional as F


def gce(z, y, q):
    p = F.softmax(z, dim=1)
    p_y = p[torch.arange(len(y)), y]
    return ((1 - p_y ** q) / q).mean()


def mae(z, y):
    p = F.softmax(z, dim=1)
    return (1 - p.gather(1, y[:, None]).squeeze(1)).mean()


def sce(z, y, alpha, beta, num_classes):
    # HanxunH/SCELoss-Reproduce SCELoss.forward
    ce = F.cross_entropy(z, y)
    pred = torch.clamp(F.softmax(z, dim=1), min=1e-7, max=1.0)
    one_hot = F.one_hot(y, num_classes).to(z.dtype)
    one_hot = torch.clamp(one_hot, min=1e-4, max=1.0)
    rce = -1 * torch.sum(pred * torch.log(one_hot), dim=1)
    return alpha * ce + beta * rce.mean()


class Elr:
    # shengliu66/ELR elr_loss.forward, lambda passed in instead of read from the config
    def __init__(self, num_examp, num_classes, beta, lam):
        self.target = torch.zeros(num_examp, num_classes)
        self.beta = beta
        self.lam = lam

    def __call__(self, index, output, label):
        y_pred = F.softmax(output, dim=1)
        y_pred = torch.clamp(y_pred, 1e-4, 1.0 - 1e-4)
        y_pred_ = y_pred.data.detach()
        # (the cast only matters for float64 logits: the targets stay float32, as in the
        # trainer; the reference, float32 throughout, has no cast)
        self.target[index] = (self.beta * self.target[index] + (1 - self.beta) * (
            (y_pred_) / (y_pred_).sum(dim=1, keepdim=True)
        )).to(self.target.dtype)
        ce_loss = F.cross_entropy(output, label)
        elr_reg = ((1 - (self.target[index] * y_pred).sum(dim=1)).log()).mean()
        return ce_loss + self.lam * elr_reg


case = json.load(open(sys.argv[1]))
dtype = getattr(torch, case["dtype"])
prm = case["params"]
elr = Elr(case["num_samples"], case["num_classes"], prm["elr_beta"], prm["elr_lambda"])
out = []
for call in case["calls"]:
    z = torch.tensor(call["logits"], dtype=dtype, requires_grad=True)
    y = torch.tensor(call["labels"], dtype=torch.int64)
    ids = torch.tensor(call["ids"], dtype=torch.int64)
    kind = case["kind"]
    if kind == "ce":
        loss = F.cross_entropy(z, y)
    elif kind == "gce":
        loss = gce(z, y, prm["gce_q"])
    elif kind == "mae":
        loss = mae(z, y)
    elif kind == "sce":
        loss = sce(z, y, prm["sce_alpha"], prm["sce_beta"], case["num_classes"])
    elif kind == "elr":
        loss = elr(ids, z, y)
    loss.backward()
    out.append({
        "loss": loss.item(),
        "grad": z.grad.tolist(),
        "targets": elr.target.tolist() if kind == "elr" else None,
    })
print(json.dumps(out))
"#;

#[derive(Serialize)]
struct Call {
    logits: Vec<Vec<f64>>,
    labels: Vec<i64>,
    ids: Vec<i64>,
}

#[derive(Serialize)]
struct Case<'a> {
    kind: LossKind,
    dtype: &'a str,
    params: LossParams,
    num_samples: usize,
    num_classes: i64,
    calls: &'a [Call],
}

#[derive(Debug, Deserialize)]
struct Outcome {
    loss: f64,
    grad: Vec<Vec<f64>>,
    targets: Option<Vec<Vec<f64>>>,
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    Vec::<Vec<f64>>::try_from(t.to_kind(Kind::Double)).unwrap()
}

fn ints(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(t).unwrap()
}

/// Three batches of logits with row scales from 0.5 to 8, so some rows are nearly uniform and
/// some saturate every clamp (p < 1e-7, p > 1 − 1e-4); random labels; ids overlapping from one
/// call to the next (unique within a call).
fn batches(kind: Kind) -> (Vec<Tensor>, Vec<Tensor>, Vec<Tensor>) {
    common::seeded(11, || {
        let scale = Tensor::linspace(0.5, 8.0, BATCH, (Kind::Double, Device::Cpu)).unsqueeze(1);
        let mut logits = vec![];
        let mut labels = vec![];
        for _ in 0..3 {
            let z = Tensor::randn([BATCH, K], (Kind::Double, Device::Cpu)) * &scale;
            logits.push(z.to_kind(kind));
            labels.push(Tensor::randint(K, [BATCH], (Kind::Int64, Device::Cpu)));
        }
        let ids = [
            vec![0, 1, 2, 3, 4, 5, 6, 7],
            vec![4, 5, 6, 7, 8, 9, 10, 11],
            vec![10, 11, 12, 13, 14, 15, 0, 5],
        ]
        .iter()
        .map(|v| Tensor::from_slice(v))
        .collect();
        // The clamps must be exercised, or the reference's clamp conventions go untested.
        let p = Tensor::cat(&logits, 0)
            .to_kind(Kind::Double)
            .softmax(1, None);
        assert!(p.min().double_value(&[]) < 1e-7);
        assert!(p.max().double_value(&[]) > 1.0 - 1e-4);
        (logits, labels, ids)
    })
}

/// `|g − w| ≤ rel·(|w| + 1e-2·max|w|)`: relative per element, except that elements under 1% of
/// the largest get the absolute error allowed at 1% of it.
fn assert_close(what: &str, got: &[Vec<f64>], want: &[Vec<f64>], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: rows differ");
    let max = want.iter().flatten().fold(0.0f64, |m, w| m.max(w.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}[{i}]: lengths differ");
        for (j, (g, w)) in g.iter().zip(w).enumerate() {
            assert!(
                (g - w).abs() <= rel * (w.abs() + 1e-2 * max),
                "{what}[{i}][{j}]: got {g}, want {w}"
            );
        }
    }
}

fn assert_value(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(1e-300),
        "{what}: got {got}, want {want}"
    );
}

/// Loss and gradient w.r.t. fresh leaf logits.
fn evaluate(
    loss: &mut RobustLoss,
    logits: &Tensor,
    labels: &Tensor,
    ids: &Tensor,
) -> (Tensor, Tensor) {
    let z = logits.detach().set_requires_grad(true);
    let value = loss.compute(&z, labels, ids);
    value.backward();
    (value.detach(), z.grad())
}

/// Runs `kind` (all three calls for ELR, the first for the others) here and in the reference
/// and compares the losses, gradients and ELR targets.
fn compare_with_reference(kind: LossKind, dtype: Kind, rel: f64) {
    let (logits, labels, ids) = batches(dtype);
    let calls = if kind == LossKind::Elr { 3 } else { 1 };
    let calls: Vec<Call> = (0..calls)
        .map(|c| Call {
            logits: rows(&logits[c]),
            labels: ints(&labels[c]),
            ids: ints(&ids[c]),
        })
        .collect();
    let params = LossParams::default();
    let dtype_name = if dtype == Kind::Float {
        "float32"
    } else {
        "float64"
    };
    let case = Case {
        kind,
        dtype: dtype_name,
        params,
        num_samples: NUM_SAMPLES,
        num_classes: K,
        calls: &calls,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.json");
    std::fs::write(&path, serde_json::to_string(&case).unwrap()).unwrap();
    let want: Vec<Outcome> =
        serde_json::from_str(&common::run_python(REFERENCE, &[path.to_str().unwrap()])).unwrap();
    assert_eq!(want.len(), calls.len());
    let mut loss = RobustLoss::new(kind, params, NUM_SAMPLES, K, Device::Cpu);
    for (c, want) in want.iter().enumerate() {
        let what = format!("{kind} {dtype_name} call {c}");
        let (value, grad) = evaluate(&mut loss, &logits[c], &labels[c], &ids[c]);
        assert_eq!(value.kind(), dtype, "{what}: loss kind");
        assert_value(
            &format!("{what} loss"),
            value.double_value(&[]),
            want.loss,
            rel,
        );
        assert_close(&format!("{what} grad"), &rows(&grad), &want.grad, rel);
        match (loss.state(), &want.targets) {
            (Some(t), Some(w)) => {
                assert_eq!(t.kind(), Kind::Float);
                // Stored in f32 on both sides.
                assert_close(&format!("{what} targets"), &rows(&t), w, rel.max(1e-6));
            }
            (None, None) => {}
            (got, want) => panic!("{what}: state {got:?}, reference targets {want:?}"),
        }
    }
    // ELR's regularizer must matter in the comparison: its loss differs from CE.
    if kind == LossKind::Elr {
        assert!((want[2].loss - labels_ce(&logits[2], &labels[2])).abs() > 1e-2);
    }
}

fn labels_ce(logits: &Tensor, labels: &Tensor) -> f64 {
    logits
        .to_kind(Kind::Double)
        .cross_entropy_for_logits(labels)
        .double_value(&[])
}

#[test]
fn matches_pytorch_reference_f32() {
    for kind in ALL {
        compare_with_reference(kind, Kind::Float, 1e-5);
    }
}

#[test]
fn matches_pytorch_reference_f64() {
    for kind in ALL {
        compare_with_reference(kind, Kind::Double, 1e-10);
    }
}

fn uniform(batch: i64) -> (Tensor, Tensor, Tensor) {
    let logits = Tensor::zeros([batch, K], (Kind::Double, Device::Cpu));
    let labels = Tensor::from_slice(&[3i64, 0, 9, 3][..batch as usize]);
    let ids = Tensor::arange(batch, (Kind::Int64, Device::Cpu));
    (logits, labels, ids)
}

fn value(kind: LossKind, params: LossParams, logits: &Tensor, labels: &Tensor) -> f64 {
    let mut loss = RobustLoss::new(kind, params, NUM_SAMPLES, K, Device::Cpu);
    let ids = Tensor::arange(labels.size()[0], (Kind::Int64, Device::Cpu));
    loss.compute(logits, labels, &ids).double_value(&[])
}

#[test]
fn uniform_logits_hand_cases() {
    let (logits, labels, ids) = uniform(4);
    let p = LossParams::default();
    let k = K as f64;
    let ln10 = 10f64.ln();
    // p_y = 1/K everywhere.
    let mae = value(LossKind::Mae, p, &logits, &labels);
    assert_value("mae", mae, 1.0 - 1.0 / k, 1e-14);
    let gce = value(LossKind::Gce, p, &logits, &labels);
    assert_value("gce", gce, (1.0 - k.powf(-p.gce_q)) / p.gce_q, 1e-14);
    let ce = value(LossKind::Ce, p, &logits, &labels);
    assert_value("ce", ce, k.ln(), 1e-14);
    // RCE = −Σ_{k≠y} (1/K)·log 1e-4 = (K − 1)/K · 4·ln 10.
    let sce = value(LossKind::Sce, p, &logits, &labels);
    let rce = (k - 1.0) / k * 4.0 * ln10;
    assert_value("sce", sce, p.sce_alpha * k.ln() + p.sce_beta * rce, 1e-14);
    // ELR from zero targets: t = (1 − β)/K per class, ⟨t, p⟩ = (1 − β)/K; a second call on the
    // same samples gives t = β(1 − β)/K + (1 − β)/K = (1 − β²)/K per class, ⟨t, p⟩ = (1 − β²)/K.
    let mut elr = RobustLoss::new(LossKind::Elr, p, NUM_SAMPLES, K, Device::Cpu);
    let (b, l) = (p.elr_beta, p.elr_lambda);
    let first = elr.compute(&logits, &labels, &ids).double_value(&[]);
    assert_value(
        "elr 1",
        first,
        k.ln() + l * (1.0 - (1.0 - b) / k).ln(),
        1e-6,
    );
    let t = elr.state().unwrap();
    let seen = t.narrow(0, 0, 4);
    assert!(seen.allclose(&Tensor::full_like(&seen, (1.0 - b) / k), 1e-6, 1e-9, false));
    let unseen = t.narrow(0, 4, NUM_SAMPLES as i64 - 4);
    assert_eq!(unseen.abs().sum(Kind::Double).double_value(&[]), 0.0);
    let second = elr.compute(&logits, &labels, &ids).double_value(&[]);
    assert_value(
        "elr 2",
        second,
        k.ln() + l * (1.0 - (1.0 - b * b) / k).ln(),
        1e-6,
    );
    // MAE's gradient: ∂(1 − p_y)/∂z_j = −p_y(δ_jy − p_j), over the batch mean.
    let z = logits.set_requires_grad(true);
    let mut mae = RobustLoss::new(LossKind::Mae, p, NUM_SAMPLES, K, Device::Cpu);
    mae.compute(&z, &labels, &ids).backward();
    let onehot = labels.one_hot(K).to_kind(Kind::Double);
    let want = -(onehot - 1.0 / k) / k / 4.0;
    assert!(z.grad().allclose(&want, 1e-12, 1e-15, false));
}

#[test]
fn gce_limits() {
    let (logits, labels, _) = batches(Kind::Double);
    let (z, y) = (&logits[0], &labels[0]);
    // q = 1: (1 − p_y)/1 is MAE.
    let q1 = LossParams {
        gce_q: 1.0,
        ..LossParams::default()
    };
    let gce = value(LossKind::Gce, q1, z, y);
    assert_value("gce q=1", gce, value(LossKind::Mae, q1, z, y), 1e-12);
    // q → 0: (1 − e^{q·log p_y})/q → −log p_y, CE (the error is about q·(log p_y)²/2).
    let small = LossParams {
        gce_q: 1e-7,
        ..LossParams::default()
    };
    let gce = value(LossKind::Gce, small, z, y);
    assert_value("gce q→0", gce, value(LossKind::Ce, small, z, y), 1e-4);
}

#[test]
fn ce_equals_cross_entropy() {
    let (logits, labels, ids) = batches(Kind::Float);
    for c in 0..3 {
        let mut ce = RobustLoss::new(
            LossKind::Ce,
            LossParams::default(),
            NUM_SAMPLES,
            K,
            Device::Cpu,
        );
        let got = ce.compute(&logits[c], &labels[c], &ids[c]);
        let want =
            logits[c].cross_entropy_loss::<Tensor>(&labels[c], None, Reduction::Mean, -100, 0.0);
        assert_eq!(got.double_value(&[]), want.double_value(&[]));
        let want = logits[c].cross_entropy_for_logits(&labels[c]);
        assert_value("ce", got.double_value(&[]), want.double_value(&[]), 1e-6);
    }
}

#[test]
fn half_logits_are_computed_in_f32() {
    let (logits, labels, ids) = batches(Kind::Float);
    for kind in ALL {
        for half in [Kind::Half, Kind::BFloat16] {
            let z = logits[0].to_kind(half);
            let mut a = RobustLoss::new(kind, LossParams::default(), NUM_SAMPLES, K, Device::Cpu);
            let mut b = RobustLoss::new(kind, LossParams::default(), NUM_SAMPLES, K, Device::Cpu);
            let got = a.compute(&z, &labels[0], &ids[0]);
            let want = b.compute(&z.to_kind(Kind::Float), &labels[0], &ids[0]);
            assert_eq!(got.kind(), Kind::Float, "{kind} {half:?}");
            assert_eq!(
                got.double_value(&[]),
                want.double_value(&[]),
                "{kind} {half:?}"
            );
            // The gradient reaches the half-precision leaf.
            let leaf = z.detach().set_requires_grad(true);
            a.compute(&leaf, &labels[0], &ids[0]).backward();
            assert_eq!(leaf.grad().kind(), half);
        }
    }
}

#[test]
fn labels_of_other_integer_kinds() {
    let (logits, labels, ids) = batches(Kind::Float);
    for kind in ALL {
        let mut a = RobustLoss::new(kind, LossParams::default(), NUM_SAMPLES, K, Device::Cpu);
        let mut b = RobustLoss::new(kind, LossParams::default(), NUM_SAMPLES, K, Device::Cpu);
        let got = a.compute(
            &logits[0],
            &labels[0].to_kind(Kind::Int),
            &ids[0].to_kind(Kind::Int),
        );
        let want = b.compute(&logits[0], &labels[0], &ids[0]);
        assert_eq!(got.double_value(&[]), want.double_value(&[]), "{kind}");
    }
}

#[test]
fn bad_params_name_the_flag() {
    let d = LossParams::default();
    d.validate().unwrap();
    assert_eq!(
        (d.elr_beta, d.elr_lambda, d.gce_q, d.sce_alpha, d.sce_beta),
        (0.7, 3.0, 0.7, 0.1, 1.0)
    );
    let cases: [(LossParams, &str); 12] = [
        (LossParams { gce_q: 0.0, ..d }, "--gce-q"),
        (LossParams { gce_q: 1.5, ..d }, "--gce-q"),
        (
            LossParams {
                gce_q: f64::NAN,
                ..d
            },
            "--gce-q",
        ),
        (LossParams { elr_beta: 1.0, ..d }, "--elr-beta"),
        (
            LossParams {
                elr_beta: -0.1,
                ..d
            },
            "--elr-beta",
        ),
        (
            LossParams {
                elr_beta: f64::NAN,
                ..d
            },
            "--elr-beta",
        ),
        (
            LossParams {
                elr_lambda: -1.0,
                ..d
            },
            "--elr-lambda",
        ),
        (
            LossParams {
                elr_lambda: f64::INFINITY,
                ..d
            },
            "--elr-lambda",
        ),
        (
            LossParams {
                sce_alpha: -0.1,
                ..d
            },
            "--sce-alpha",
        ),
        (
            LossParams {
                sce_alpha: f64::NAN,
                ..d
            },
            "--sce-alpha",
        ),
        (
            LossParams {
                sce_beta: -1.0,
                ..d
            },
            "--sce-beta",
        ),
        (
            LossParams {
                sce_beta: f64::INFINITY,
                ..d
            },
            "--sce-beta",
        ),
    ];
    for (params, flag) in cases {
        let err = params.validate().unwrap_err().to_string();
        assert!(err.contains(flag), "{params:?}: {err}");
    }
    // The edges that are allowed.
    for ok in [
        LossParams { gce_q: 1.0, ..d },
        LossParams { elr_beta: 0.0, ..d },
        LossParams {
            elr_lambda: 0.0,
            sce_alpha: 0.0,
            sce_beta: 0.0,
            ..d
        },
    ] {
        ok.validate().unwrap();
    }
}

#[test]
fn elr_state_round_trip() {
    let (logits, labels, ids) = batches(Kind::Float);
    let params = LossParams::default();
    let mut elr = RobustLoss::new(LossKind::Elr, params, NUM_SAMPLES, K, Device::Cpu);
    assert_eq!(elr.state().unwrap().size(), [NUM_SAMPLES as i64, K]);
    assert_eq!(
        elr.state()
            .unwrap()
            .abs()
            .sum(Kind::Double)
            .double_value(&[]),
        0.0
    );
    for c in 0..2 {
        let _ = elr.compute(&logits[c], &labels[c], &ids[c]);
    }
    let saved = elr.state().unwrap();
    // A copy: later calls do not change what was saved.
    let before = saved.copy();
    let mut resumed = RobustLoss::new(LossKind::Elr, params, NUM_SAMPLES, K, Device::Cpu);
    resumed.load_state(&saved).unwrap();
    let a = elr.compute(&logits[2], &labels[2], &ids[2]);
    let b = resumed.compute(&logits[2], &labels[2], &ids[2]);
    assert_eq!(a.double_value(&[]), b.double_value(&[]));
    assert!(elr.state().unwrap().equal(&resumed.state().unwrap()));
    assert!(saved.equal(&before));
    // Without the state the third call differs (ids 10, 11, 0, 5 were seen before).
    let mut fresh = RobustLoss::new(LossKind::Elr, params, NUM_SAMPLES, K, Device::Cpu);
    let c = fresh.compute(&logits[2], &labels[2], &ids[2]);
    assert!((a.double_value(&[]) - c.double_value(&[])).abs() > 1e-4);
    // Targets from another run's f64 copy load too.
    resumed.load_state(&saved.to_kind(Kind::Double)).unwrap();
    // Wrong shapes and kinds are refused, naming the entry and both shapes.
    let err = resumed
        .load_state(&Tensor::zeros(
            [NUM_SAMPLES as i64 + 1, K],
            (Kind::Float, Device::Cpu),
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(ELR_TARGETS_KEY) && err.contains("[16, 10]") && err.contains("[17, 10]"),
        "{err}"
    );
    let err = resumed
        .load_state(&Tensor::zeros(
            [NUM_SAMPLES as i64, K],
            (Kind::Int64, Device::Cpu),
        ))
        .unwrap_err()
        .to_string();
    assert!(err.contains(ELR_TARGETS_KEY), "{err}");
    // The stateless losses have nothing to save or restore.
    for kind in [LossKind::Ce, LossKind::Gce, LossKind::Mae, LossKind::Sce] {
        let mut loss = RobustLoss::new(kind, params, NUM_SAMPLES, K, Device::Cpu);
        assert!(loss.state().is_none(), "{kind}");
        assert!(loss.load_state(&saved).is_err(), "{kind}");
    }
}

#[test]
fn shape_errors() {
    let (logits, labels, ids) = batches(Kind::Float);
    let mut elr = RobustLoss::new(
        LossKind::Elr,
        LossParams::default(),
        NUM_SAMPLES,
        K,
        Device::Cpu,
    );
    let err = elr
        .try_compute(&logits[0].narrow(1, 0, K - 1), &labels[0], &ids[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("logits"), "{err}");
    let err = elr
        .try_compute(&logits[0], &labels[0].narrow(0, 0, 3), &ids[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("labels"), "{err}");
    let err = elr
        .try_compute(&logits[0], &labels[0], &ids[0].narrow(0, 0, 3))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ids"), "{err}");
    // A failed call leaves the targets alone.
    assert_eq!(
        elr.state()
            .unwrap()
            .abs()
            .sum(Kind::Double)
            .double_value(&[]),
        0.0
    );
    let err = elr
        .try_compute(&labels[0].unsqueeze(1).repeat([1, K]), &labels[0], &ids[0])
        .unwrap_err()
        .to_string();
    assert!(err.contains("floating point"), "{err}");
}

#[test]
fn loss_kind_names() {
    for (kind, name) in [
        (LossKind::Ce, "ce"),
        (LossKind::Elr, "elr"),
        (LossKind::Gce, "gce"),
        (LossKind::Mae, "mae"),
        (LossKind::Sce, "sce"),
    ] {
        assert_eq!(kind.to_string(), name);
        assert_eq!(name.parse::<LossKind>().unwrap(), kind);
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{name}\""));
        let loss = RobustLoss::new(kind, LossParams::default(), 4, K, Device::Cpu);
        assert_eq!(loss.kind(), kind);
    }
    assert!("focal".parse::<LossKind>().is_err());
    let json = serde_json::to_string(&LossParams::default()).unwrap();
    let back: LossParams = serde_json::from_str(&json).unwrap();
    assert_eq!(back, LossParams::default());
}
