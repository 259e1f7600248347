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

use common::torch_compare::{assert_close, randomize_batch_norms, read_npz, write_npz};
use common::whole::{
    assert_resumes_bit_exactly, loss_gap, noisy_train, run_ok, run_on_one_and_two_ranks,
    SCRATCH_RESNET32,
};
use common::{metrics, metrics_without_time, run_python, with_flags as with};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use trainer::distributed::ProcessGroup;
use trainer::method::eval::backbone::SavedProjector;
use trainer::method::eval::config::HeadKind;
use trainer::method::eval::head::Head;
use trainer::method::eval::methods::network::rkd::NetworkRepresentationRegularizer;
use trainer::method::eval::methods::network::NetSetup;
use trainer::method::eval::methods::MethodParams;
use trainer::method::eval::{LossKind, LossParams, RobustLoss};
use trainer::model::{Arch, NetSpec, Projector};

const REFERENCE: &str = include_str!("../../tests/python/rkd_reference.py");

/// The method on CPU for `labels` of `classes` classes and features of width `emb`, plain SGD.
fn regularizer(
    params: MethodParams,
    loss: LossKind,
    projector: Option<&SavedProjector>,
    labels: &[usize],
    emb: i64,
    classes: i64,
) -> NetworkRepresentationRegularizer {
    let spec = NetSpec::new(Arch::Resnet32, None, Some(4), None).unwrap();
    let no_images = Tensor::zeros([0, 3, 32, 32], (Kind::Uint8, Device::Cpu));
    NetworkRepresentationRegularizer::new(NetSetup {
        params,
        seed: 5,
        noisy: labels,
        clean: labels,
        projector,
        loss: RobustLoss::new(
            loss,
            LossParams::default(),
            labels.len(),
            classes,
            Device::Cpu,
        ),
        ..NetSetup::new(&spec, classes, emb, &no_images)
    })
    .unwrap()
}

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
    let labels_vec: Vec<usize> = (0..b as usize)
        .map(|i| (i * 7) % classes as usize)
        .collect();
    let mut method = regularizer(params, loss, None, &labels_vec, emb, classes);
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

/// A backbone with its pretraining projector: the method trains that projector (its widths
/// and weights), not a fresh one.
#[test]
fn the_pretraining_projector_is_the_one_trained() {
    let emb = 12;
    let (vs, mlp) = (VarStore::new(Device::Cpu), "16-8");
    common::seeded(3, || Projector::from_spec(&vs.root(), emb, mlp).unwrap());
    randomize_batch_norms(&vs);
    let saved = SavedProjector {
        mlp: mlp.to_string(),
        tensors: vs.variables().into_iter().collect(),
    };
    let method = regularizer(
        MethodParams::default(),
        LossKind::Ce,
        Some(&saved),
        &[0, 1],
        emb,
        2,
    );
    let ours = method.projector_variables();
    assert_eq!(ours.len(), saved.tensors.len());
    for (name, v) in &ours {
        assert!(v.equal(&saved.tensors[name]), "{name} is not the saved one");
    }
}

/// The regularizer on a ResNet-32 of width 4 trained from scratch on Fashion-MNIST under 60%
/// symmetric noise, the reference's constant rate 0.1 (plain SGD, no weight decay).
fn whole(exp: &Path, seed: u64, samples: usize, epochs: usize) -> Vec<String> {
    let (samples, epochs) = (samples.to_string(), epochs.to_string());
    let args = noisy_train(exp, seed, &SCRATCH_RESNET32);
    with(
        args,
        &[
            ("--method", "rkd"),
            ("--geometry", "crop"),
            ("--epochs", &epochs),
            ("--batch-size", "64"),
            ("--train-samples", &samples),
            ("--test-samples", "500"),
            ("--optimizer", "sgd"),
            ("--momentum", "0"),
            ("--wd", "0"),
            ("--schedule", "constant"),
            ("--lr-head", "0.1"),
            ("--lr-backbone", "0.1"),
        ],
    )
}

/// Stopped during the second of two epochs: the projector, its optimizer state and the
/// epoch's tally of the terms come back, and the run ends as an uninterrupted one.
#[test]
fn resumes_bit_exactly_after_sigusr1() {
    let dir = tempfile::tempdir().unwrap();
    let args = |exp: &Path| whole(exp, 3, 256, 2);
    let names = assert_resumes_bit_exactly(dir.path(), args);
    for part in ["projector.3.weight", "projector_optim."] {
        assert!(
            names.iter().any(|k| k.contains(part)),
            "no {part} in {names:?}"
        );
    }
}

/// Two Gloo ranks, each half of every global batch, InfoNCE and RKD over the gathered global
/// batch, BN statistics synchronized: the same training as one process, up to the reduction
/// order. Two steps, so the second sees the first's projector update (averaged gradients).
/// Measured (seed 4): relative loss gap 3.9e-5 (default) and 3.6e-6 (avx2), the terms within
/// 9e-4 relative (the RKD distance, ≈ 0.08, the most sensitive); bounds 5e-4 and 5e-3.
#[test]
fn two_ranks_train_like_one() {
    let dir = tempfile::tempdir().unwrap();
    let args = |exp: &Path| whole(exp, 4, 128, 1);
    let (one, two) = run_on_one_and_two_ranks(dir.path(), args);
    let (m1, m2) = (metrics_without_time(&one), metrics_without_time(&two));
    let gap = loss_gap(&m1, &m2);
    let term_gap = ["rkd_base", "rkd_infonce", "rkd_distance"].map(|k| {
        let (a, b) = (m1[0][k].as_f64().unwrap(), m2[0][k].as_f64().unwrap());
        (a - b).abs() / a.abs()
    });
    eprintln!("1 vs 2 ranks: loss {gap:.2e} relative, terms {term_gap:?}");
    assert!(gap < 5e-4, "loss gap {gap}");
    assert!(term_gap.iter().all(|&d| d < 5e-3), "{term_gap:?}");
}

/// `--loss gce` is the paper's GCE_Reg: allowed with `--method rkd` on the whole network only;
/// other losses, and gce on cached features or with another method, are refused before any
/// data is read (exit 2, naming the flag).
#[test]
fn the_base_loss_is_ce_or_gce_on_the_whole_network() {
    let dir = tempfile::tempdir().unwrap();
    let check = |extra: &[(&str, &str)]| {
        let args = with(whole(&dir.path().join("exp"), 0, 256, 1), extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
            .arg("check-args")
            .args(&args)
            .output()
            .unwrap()
    };
    let ok = check(&[("--loss", "gce")]);
    assert!(ok.status.success(), "{}", common::stderr(&ok));
    for extra in [
        vec![("--loss", "sce")],
        vec![("--loss", "gce"), ("--method", "ssr")],
        vec![
            ("--loss", "gce"),
            ("--weights", "freeze"),
            ("--head", "mlp"),
            ("--lr-backbone", "0"),
            ("--geometry", "resized-crop"),
        ],
    ] {
        let out = check(&extra);
        let said = common::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {said}");
        assert!(
            said.contains("--loss") && said.contains("rkd"),
            "{extra:?}: {said}"
        );
    }
}

const SEEDS: [u64; 3] = [0, 1, 2];

/// How much lower, on the mean over [`SEEDS`], the RKD distance between the classifier's
/// probabilities and the projection ends with the regularizer than under CE trained the same
/// way (the same network, epochs, views and forward passes, the two terms weighted 0: the
/// network's weights then follow plain CE exactly). Measured after 2 epochs of 500 images
/// (seeds 0–2 under ATEN_CPU_CAPABILITY default, avx2 and avx512): regularizer 0.050–0.071,
/// CE 0.141–0.199; per-seed differences 0.072–0.143 (nine values, mean 0.115, sd 0.024), the
/// three-seed means of each kernel 0.103–0.134. The margin is the mean less three standard
/// errors of a three-seed mean (3·0.024/√3 ≈ 0.042).
const DISTANCE_MARGIN: f64 = 0.06;

/// The paper's claim at CI scale. Its headline (the regularizer beats CE in test accuracy
/// under heavy noise) needs training long enough for CE to memorize the noisy labels (the
/// reference: 150 epochs of CIFAR-10); at what CI allows both stay near chance (final test
/// accuracy after 4 epochs of 500 images, seeds 0–2: CE 18.8, 10.8, 14.6%; regularizer 20.6,
/// 21.8, 14.6%; no margin the spread supports), so this asserts what does hold: the
/// regularizer pulls the classifier's output geometry onto the representation's, the
/// mechanism the paper credits for resisting memorization.
#[test]
fn the_regularizer_aligns_the_classifier_with_the_representation() {
    let dir = tempfile::tempdir().unwrap();
    let final_distance = |name: &str, seed: u64, extra: &[(&str, &str)]| {
        let exp = dir.path().join(format!("{name}-{seed}"));
        run_ok(&with(whole(&exp, seed, 500, 2), extra));
        let last = metrics(&exp).pop().unwrap();
        let acc = last["acc1"].as_f64().unwrap();
        let distance = last["rkd_distance"].as_f64().unwrap();
        eprintln!("{name} seed {seed}: test acc1 {acc}, RKD distance {distance:.4}");
        distance
    };
    let mean = |name: &str, extra: &[(&str, &str)]| {
        SEEDS
            .iter()
            .map(|&s| final_distance(name, s, extra))
            .sum::<f64>()
            / SEEDS.len() as f64
    };
    let regularized = mean("rkd", &[]);
    let ce = mean("ce", &[("--rkd-weight", "0"), ("--rkd-infonce", "0")]);
    assert!(
        regularized < ce - DISTANCE_MARGIN,
        "RKD distance with the regularizer {regularized:.4} vs CE {ce:.4} (margin {DISTANCE_MARGIN})"
    );
}
