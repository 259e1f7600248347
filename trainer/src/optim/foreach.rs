//! ATen's multi-tensor (`_foreach_*`) ops over lists of tensors, which tch does not bind
//! (`csrc/foreach.cpp`). On CUDA each call is one fused kernel for the whole list instead of one
//! per variable, which is what keeps a ResNet's ~60 variables from costing ~60 launches per
//! formula term; on CPU ATen runs the same per-tensor ops, so results are unchanged bit for bit.
//!
//! The ops cannot fail on well-formed lists (same length, one device and kind), so a failure is
//! a bug and panics with ATen's message, as tch's own non-`f_` methods do. Empty lists are
//! allowed (ATen refuses them), except by [`norms`].

use crate::distributed::ffi::call;
use std::ffi::{c_char, c_int};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn nls_foreach_norm(
        xs: *const *mut C_tensor,
        n: usize,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
    fn nls_foreach_scalar(
        op: c_int,
        xs: *const *mut C_tensor,
        n: usize,
        s: f64,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
    fn nls_foreach_sqrt(
        xs: *const *mut C_tensor,
        n: usize,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
    fn nls_foreach_binary(
        op: c_int,
        xs: *const *mut C_tensor,
        ys: *const *mut C_tensor,
        n: usize,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
    fn nls_foreach_pointwise_(
        op: c_int,
        xs: *const *mut C_tensor,
        ys: *const *mut C_tensor,
        zs: *const *mut C_tensor,
        n: usize,
        s: f64,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// The elementwise ops of [`binary`] and [`scalar`], numbered as in `csrc/foreach.cpp`.
#[derive(Clone, Copy, Debug)]
enum Op {
    Add = 0,
    Sub = 1,
    Mul = 2,
    Div = 3,
}

/// The in-place ops of [`pointwise_`], numbered as in `csrc/foreach.cpp`.
#[derive(Clone, Copy, Debug)]
enum Pointwise {
    Lerp = 0,
    Addcmul = 1,
    Addcdiv = 2,
}

/// The C++ side only reads through these pointers (in-place ops change the tensors' data, not
/// the handles), so casting away `const` is sound.
fn pointers(xs: &[Tensor]) -> Vec<*mut C_tensor> {
    xs.iter().map(|x| x.as_ptr() as *mut C_tensor).collect()
}

fn run(what: &str, f: impl FnOnce(*mut *mut c_char) -> c_int) {
    if let Err(e) = call(f) {
        panic!("_foreach_{what} failed: {e}");
    }
}

/// Runs `f(out, err)` with room for `n` new tensors in `out`, or a null `out` when `in_place`,
/// and wraps what the shim allocated.
fn with_outputs(
    what: &str,
    n: usize,
    in_place: bool,
    f: impl FnOnce(*mut *mut C_tensor, *mut *mut c_char) -> c_int,
) -> Vec<Tensor> {
    let mut out = vec![std::ptr::null_mut(); if in_place { 0 } else { n }];
    let out_ptr = if in_place {
        std::ptr::null_mut()
    } else {
        out.as_mut_ptr()
    };
    run(what, |err| f(out_ptr, err));
    out.into_iter()
        .map(|p| unsafe { Tensor::from_ptr(p) })
        .collect()
}

fn same_lengths(what: &str, a: &[Tensor], b: &[Tensor]) {
    assert_eq!(
        a.len(),
        b.len(),
        "_foreach_{what}: lists of different lengths"
    );
}

/// The 2-norm of each tensor, as one 1-D tensor on their device (no host round trip);
/// `xs` must not be empty (ATen's rule; the other ops accept an empty list and do nothing).
pub fn norms(xs: &[Tensor]) -> Tensor {
    let ps = pointers(xs);
    let mut out: *mut C_tensor = std::ptr::null_mut();
    run("norm", |err| unsafe {
        nls_foreach_norm(ps.as_ptr(), ps.len(), &mut out, err)
    });
    unsafe { Tensor::from_ptr(out) }
}

/// `xs[i] (op) s` into new tensors, or in place when `in_place`.
fn scalar(op: Op, xs: &[Tensor], s: f64, in_place: bool) -> Vec<Tensor> {
    if xs.is_empty() {
        return Vec::new();
    }
    let ps = pointers(xs);
    with_outputs(&format!("{op:?}"), ps.len(), in_place, |out, err| unsafe {
        nls_foreach_scalar(op as c_int, ps.as_ptr(), ps.len(), s, out, err)
    })
}

/// `xs[i] * s`, new tensors.
pub fn mul_scalar(xs: &[Tensor], s: f64) -> Vec<Tensor> {
    scalar(Op::Mul, xs, s, false)
}

/// `xs[i] *= s`.
pub fn mul_scalar_(xs: &[Tensor], s: f64) {
    scalar(Op::Mul, xs, s, true);
}

/// `xs[i] /= s`.
pub fn div_scalar_(xs: &[Tensor], s: f64) {
    scalar(Op::Div, xs, s, true);
}

/// `xs[i] += s`.
pub fn add_scalar_(xs: &[Tensor], s: f64) {
    scalar(Op::Add, xs, s, true);
}

/// `√xs[i]`, new tensors.
pub fn sqrt(xs: &[Tensor]) -> Vec<Tensor> {
    if xs.is_empty() {
        return Vec::new();
    }
    let ps = pointers(xs);
    with_outputs("sqrt", ps.len(), false, |out, err| unsafe {
        nls_foreach_sqrt(ps.as_ptr(), ps.len(), out, err)
    })
}

/// `xs[i] (op) ys[i]` into new tensors, or in place when `in_place`.
fn binary(op: Op, xs: &[Tensor], ys: &[Tensor], in_place: bool) -> Vec<Tensor> {
    same_lengths(&format!("{op:?}"), xs, ys);
    if xs.is_empty() {
        return Vec::new();
    }
    let (px, py) = (pointers(xs), pointers(ys));
    with_outputs(&format!("{op:?}"), px.len(), in_place, |out, err| unsafe {
        nls_foreach_binary(op as c_int, px.as_ptr(), py.as_ptr(), px.len(), out, err)
    })
}

/// `xs[i] + ys[i]`, new tensors.
pub fn add(xs: &[Tensor], ys: &[Tensor]) -> Vec<Tensor> {
    binary(Op::Add, xs, ys, false)
}

/// `xs[i] += ys[i]`.
pub fn add_(xs: &[Tensor], ys: &[Tensor]) {
    binary(Op::Add, xs, ys, true);
}

/// `xs[i] -= ys[i]`.
pub fn sub_(xs: &[Tensor], ys: &[Tensor]) {
    binary(Op::Sub, xs, ys, true);
}

/// `xs[i] *= ys[i]`; `ys[i]` may broadcast (a 0-d scale per tensor, say).
pub fn mul_(xs: &[Tensor], ys: &[Tensor]) {
    binary(Op::Mul, xs, ys, true);
}

/// `op` in place on `xs` with `ys`, `zs` (lerp reads no `zs`) and the scalar `s`.
fn pointwise_(op: Pointwise, xs: &[Tensor], ys: &[Tensor], zs: &[Tensor], s: f64) {
    let what = format!("{op:?}");
    same_lengths(&what, xs, ys);
    same_lengths(&what, xs, zs);
    if xs.is_empty() {
        return;
    }
    let (px, py, pz) = (pointers(xs), pointers(ys), pointers(zs));
    run(&what, |err| unsafe {
        nls_foreach_pointwise_(
            op as c_int,
            px.as_ptr(),
            py.as_ptr(),
            pz.as_ptr(),
            px.len(),
            s,
            err,
        )
    });
}

/// `xs[i] += w·(ys[i] − xs[i])`, as `Tensor::lerp_` with a scalar weight.
pub fn lerp_(xs: &[Tensor], ys: &[Tensor], w: f64) {
    pointwise_(Pointwise::Lerp, xs, ys, ys, w);
}

/// `xs[i] += v·ys[i]·zs[i]`.
pub fn addcmul_(xs: &[Tensor], ys: &[Tensor], zs: &[Tensor], v: f64) {
    pointwise_(Pointwise::Addcmul, xs, ys, zs, v);
}

/// `xs[i] += v·ys[i]/zs[i]`.
pub fn addcdiv_(xs: &[Tensor], ys: &[Tensor], zs: &[Tensor], v: f64) {
    pointwise_(Pointwise::Addcdiv, xs, ys, zs, v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn list() -> Vec<Tensor> {
        tch::manual_seed(7);
        [vec![3, 4], vec![5], vec![2, 3, 2, 2]]
            .into_iter()
            .map(|s| Tensor::randn(s, (Kind::Float, Device::Cpu)))
            .collect()
    }

    fn same(a: &[Tensor], b: &[Tensor]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!(x.equal(y), "{x:?} != {y:?}");
        }
    }

    /// Each op equals the per-tensor op it stands for, bit for bit, on CPU.
    #[test]
    fn ops_equal_their_per_tensor_forms() {
        let (xs, ys) = (
            list(),
            list().iter().map(|t| t * 0.5 - 1.0).collect::<Vec<_>>(),
        );
        let want: Vec<f64> = xs.iter().map(|t| t.norm().double_value(&[])).collect();
        assert_eq!(Vec::<f64>::try_from(norms(&xs)).unwrap(), want);
        let each = |f: &dyn Fn(&Tensor, &Tensor) -> Tensor| -> Vec<Tensor> {
            xs.iter().zip(&ys).map(|(x, y)| f(x, y)).collect()
        };
        same(&mul_scalar(&xs, 0.3), &each(&|x, _| x * 0.3));
        same(&add(&xs, &ys), &each(&|x, y| x + y));
        let copies = || xs.iter().map(|t| t.copy()).collect::<Vec<_>>();
        let (a, s, m, k) = (copies(), copies(), copies(), copies());
        add_(&a, &ys);
        sub_(&s, &ys);
        mul_(&m, &ys);
        mul_scalar_(&k, -2.0);
        same(&a, &each(&|x, y| x + y));
        same(&s, &each(&|x, y| x - y));
        same(&m, &each(&|x, y| x * y));
        same(&k, &each(&|x, _| x * -2.0));
        let positive: Vec<Tensor> = ys.iter().map(|y| y.abs() + 0.25).collect();
        same(
            &sqrt(&positive),
            &positive.iter().map(Tensor::sqrt).collect::<Vec<_>>(),
        );
        let (d, p, l) = (copies(), copies(), copies());
        div_scalar_(&d, 3.0);
        add_scalar_(&p, 1e-8);
        lerp_(&l, &ys, 0.1);
        same(&d, &each(&|x, _| x / 3.0));
        same(&p, &each(&|x, _| x + 1e-8));
        same(&l, &each(&|x, y| x.lerp(y, 0.1)));
        let zs = &positive;
        let each3 = |f: &dyn Fn(&Tensor, &Tensor, &Tensor) -> Tensor| -> Vec<Tensor> {
            (0..xs.len()).map(|i| f(&xs[i], &ys[i], &zs[i])).collect()
        };
        let (c, q) = (copies(), copies());
        addcmul_(&c, &ys, zs, 1.0);
        addcdiv_(&q, &ys, zs, 1.0);
        same(&c, &each3(&|x, y, z| x.addcmul(y, z)));
        same(&q, &each3(&|x, y, z| x.addcdiv(y, z)));
        // Another value (tch binds none for the per-tensor forms): the same up to rounding.
        let (c, q) = (copies(), copies());
        addcmul_(&c, &ys, zs, -0.5);
        addcdiv_(&q, &ys, zs, 0.7);
        let close = |got: &[Tensor], want: Vec<Tensor>| {
            for (g, w) in got.iter().zip(&want) {
                assert!(g.allclose(w, 1e-6, 1e-6, false), "{g:?} != {w:?}");
            }
        };
        close(&c, each3(&|x, y, z| x + y * z * -0.5));
        close(&q, each3(&|x, y, z| x + y / z * 0.7));
    }

    /// A 0-d scale per tensor broadcasts (LARS's trust ratios).
    #[test]
    fn mul_broadcasts_a_scale_per_tensor() {
        let xs = list();
        let scales = Tensor::from_slice(&[2.0f32, -1.0, 0.5]);
        let m: Vec<Tensor> = xs.iter().map(|t| t.copy()).collect();
        mul_(&m, &scales.unbind(0));
        for (i, (got, x)) in m.iter().zip(&xs).enumerate() {
            assert!(got.equal(&(x * [2.0, -1.0, 0.5][i])), "tensor {i}");
        }
    }

    #[test]
    fn empty_lists_do_nothing() {
        assert!(mul_scalar(&[], 2.0).is_empty());
        assert!(add(&[], &[]).is_empty());
        mul_scalar_(&[], 2.0);
        sub_(&[], &[]);
    }

    #[test]
    #[should_panic(expected = "lists of different lengths")]
    fn lists_must_match() {
        let xs = list();
        add_(&xs, &xs[..2]);
    }
}
