//! The representation regularizer (Cheng et al. 2023) on the whole network
//! (`methods/network/rkd.rs`):
//!
//! - the step loss (CE or GCE + InfoNCE + RKD, teacher not detached) and its gradients equal
//!   a PyTorch re-implementation of the reference's `CE_Reg.py` / `GCE_Reg.py`
//!   (tests/python/rkd_reference.py) on the same weights and view features;
//! - a run stopped by SIGUSR1 resumes bit-exactly (projector and its optimizer checkpointed);
//!   two ranks train as one;
//! - on real Fashion-MNIST at 60% symmetric noise: what the regularizer does at CI scale.

mod common;

use common::torch_compare::{assert_close, read_npz, write_npz};
use common::{
    checkpoint_tensors, interrupt_after, loss_gap, metrics, metrics_without_time, results, run_ok,
    run_python, trainer_ranks, with_flags as with, FASHION_MNIST,
};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use trainer::distributed::ProcessGroup;
use trainer::method::eval::config::HeadKind;
use trainer::method::eval::head::Head;
use trainer::method::eval::methods::network::rkd::NetworkRepresentationRegularizer;
use trainer::method::eval::methods::network::NetSetup;
use trainer::method::eval::methods::MethodParams;
use trainer::method::eval::{LossKind, LossParams, RobustLoss};
use trainer::model::{Arch, NetSpec};
use trainer::optim::{OptimSettings, OptimizerKind};

const REFERENCE: &str = include_str!("../../tests/python/rkd_reference.py");

/// The step objective on random view features `[16, 12]` of 5 classes, its value and the
/// gradients of projector, classifier and features, against the reference.
fn matches_reference(loss: LossKind) {
    let (b, emb, classes) = (16, 12, 5);
    let params = MethodParams {
        rkd_weight: 1.5,
        rkd_infonce: 0.7,
        rkd_temperature: 0.5,
        ..MethodParams::default()
    };
    let spec = NetSpec::new(Arch::Resnet32, None, Some(4), None).unwrap();
    let labels_vec: Vec<usize> = (0..b as usize)
        .map(|i| (i * 7) % classes as usize)
        .collect();
    let mut method = NetworkRepresentationRegularizer::new(NetSetup {
        params,
        seed: 5,
        classes,
        noisy: &labels_vec,
        clean: &labels_vec,
        spec: &spec,
        head: HeadKind::Linear,
        device: Device::Cpu,
        trusted: None,
        projector: None,
        embedding_dim: emb,
        loss: RobustLoss::new(
            loss,
            LossParams::default(),
            b as usize,
            classes,
            Device::Cpu,
        ),
        optimizer: OptimizerKind::Sgd,
        optim: OptimSettings::new(0.0),
    })
    .unwrap();
    let (features, head_vs, head) = common::seeded(11, || {
        let features: [Tensor; 3] = std::array::from_fn(|_| {
            Tensor::randn([b, emb], (Kind::Float, Device::Cpu)).set_requires_grad(true)
        });
        let vs = VarStore::new(Device::Cpu);
        let head = Head::new(&vs.root(), HeadKind::Linear, false, emb, classes);
        (features, vs, head)
    });
    let labels = Tensor::from_slice(&labels_vec.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let ids = Tensor::arange(b, (Kind::Int64, Device::Cpu));
    let group = ProcessGroup::single(Device::Cpu);
    let terms = method
        .terms(&head, &features, &labels, &ids, &group)
        .unwrap();
    let total = method.total(&terms);
    total.backward();

    let dir = tempfile::tempdir().unwrap();
    let (inputs, out) = (dir.path().join("in.npz"), dir.path().join("out.npz"));
    let mut tensors: Vec<(String, Tensor)> = vec![
        ("labels".into(), labels.shallow_clone()),
        ("fc.weight".into(), head_vs.root().get("weight").unwrap()),
        ("fc.bias".into(), head_vs.root().get("bias").unwrap()),
    ];
    tensors.extend(
        ["f1", "f2", "f3"]
            .iter()
            .zip(&features)
            .map(|(n, f)| (n.to_string(), f.detach())),
    );
    let projector = method.projector_variables();
    tensors.extend(projector.iter().map(|(n, v)| (n.clone(), v.detach())));
    write_npz(&inputs, &tensors);
    let kind = if loss == LossKind::Gce { "gce" } else { "ce" };
    let arg = |p: &Path| p.display().to_string();
    run_python(
        REFERENCE,
        &[&arg(&inputs), &arg(&out), kind, "0.5", "0.7", "1.5", "0.7"],
    );
    let want = read_npz(&out);
    for (name, ours) in [
        ("loss", &total),
        ("base", &terms.base),
        ("infonce", &terms.infonce),
        ("rkd", &terms.rkd),
    ] {
        assert_close(&format!("{kind} {name}"), &ours.detach(), &want[name], 1e-5);
    }
    // The projector's gradients include the RKD term's through the (undetached) teacher.
    // Compared all together, relative to their largest entry: the first Linear's bias has a
    // zero gradient (BatchNorm cancels it), round-off on either side.
    let trained: Vec<_> = projector
        .iter()
        .filter(|(_, v)| v.requires_grad())
        .collect();
    let flat = |grads: Vec<Tensor>| {
        Tensor::cat(
            &grads.iter().map(|g| g.flatten(0, -1)).collect::<Vec<_>>(),
            0,
        )
    };
    let ours = flat(trained.iter().map(|(_, v)| v.grad()).collect());
    let theirs = flat(
        trained
            .iter()
            .map(|(n, _)| want[&format!("grad.{n}")].shallow_clone())
            .collect(),
    );
    assert_close(&format!("{kind} projector gradients"), &ours, &theirs, 1e-4);
    for (name, v) in head_vs.variables() {
        assert_close(
            &format!("{kind} fc {name}"),
            &v.grad(),
            &want[&format!("grad.fc.{name}")],
            1e-4,
        );
    }
    for (name, f) in ["f1", "f2", "f3"].iter().zip(&features) {
        assert_close(
            &format!("{kind} {name}"),
            &f.grad(),
            &want[&format!("grad.{name}")],
            1e-4,
        );
    }
}

#[test]
fn ce_step_loss_and_gradients_match_the_pytorch_reference() {
    matches_reference(LossKind::Ce);
}

#[test]
fn gce_step_loss_and_gradients_match_the_pytorch_reference() {
    matches_reference(LossKind::Gce);
}
