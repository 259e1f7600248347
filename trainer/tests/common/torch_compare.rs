//! Comparing our networks with PyTorch references: tensors through .npz files, BN statistics
//! moved off their init, and the relative closeness check.

use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub fn cpu() -> (Kind, Device) {
    (Kind::Float, Device::Cpu)
}

pub fn write_npz(path: &Path, tensors: &[(String, Tensor)]) {
    Tensor::write_npz(tensors, path).unwrap();
}

pub fn read_npz(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_npz(path).unwrap().into_iter().collect()
}

/// max |a − b| / max |b|: relative to the output's scale, so near-zero entries of a deep
/// network's output do not demand more than float32 round-off can give.
pub fn relative_diff(ours: &Tensor, theirs: &Tensor) -> f64 {
    let ours = ours.to_kind(Kind::Double);
    let theirs = theirs.to_kind(Kind::Double);
    let diff = (&ours - &theirs).abs().max().double_value(&[]);
    diff / theirs.abs().max().double_value(&[]).max(1e-12)
}

/// [`relative_diff`] ≤ `rtol`, shapes equal.
pub fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor, rtol: f64) {
    assert_eq!(ours.size(), theirs.size(), "{what}: shapes differ");
    let rel = relative_diff(ours, theirs);
    if std::env::var_os("NLS_SHOW_DIFFS").is_some() {
        eprintln!("{what}: relative difference {rel:e}");
    }
    assert!(
        rel <= rtol,
        "{what}: max |diff| / max |ref| = {rel:e} > {rtol:e}"
    );
}

/// BN affine parameters and running statistics away from their (1, 0, 0, 1) init, so the test
/// sees whether each is applied where torch applies it.
pub fn randomize_batch_norms(vs: &VarStore) {
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            let n = t.size();
            let value = if name.ends_with("running_var") {
                Tensor::rand(&n, cpu()) + 0.5
            } else if name.ends_with("running_mean") || (t.dim() == 1 && name.ends_with("bias")) {
                Tensor::randn(&n, cpu()) * 0.1
            } else if t.dim() == 1 && name.ends_with("weight") {
                Tensor::rand(&n, cpu()) + 0.5
            } else {
                continue;
            };
            t.copy_(&value);
        }
    });
}
