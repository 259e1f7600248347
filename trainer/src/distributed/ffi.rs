//! Raw bindings to the C++ shim in `trainer/csrc` (libtorch's c10d behind a C ABI).
//! Every function returns 0 on success, or non-zero with a malloc'd message in `err`.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int};
use torch_sys::C_tensor;

#[repr(C)]
pub struct nls_store {
    _private: [u8; 0],
}

#[repr(C)]
pub struct nls_group {
    _private: [u8; 0],
}

#[repr(C)]
pub struct nls_grad_sync {
    _private: [u8; 0],
}

pub const NLS_SUM: c_int = 0;
pub const NLS_MAX: c_int = 1;
pub const NLS_MIN: c_int = 2;

extern "C" {
    pub fn nls_free_string(s: *mut c_char);

    pub fn nls_grad_sync_new(
        group: *mut nls_group,
        params: *const *mut C_tensor,
        n: usize,
        bucket: *const i64,
        buckets: usize,
        out: *mut *mut nls_grad_sync,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_grad_sync_arm(sync: *mut nls_grad_sync, err: *mut *mut c_char) -> c_int;
    pub fn nls_grad_sync_finish(
        sync: *mut nls_grad_sync,
        issued_in_backward: *mut usize,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_grad_sync_free(sync: *mut nls_grad_sync);

    pub fn nls_store_new(
        host: *const c_char,
        port: u16,
        is_server: c_int,
        world: c_int,
        timeout_ms: i64,
        out: *mut *mut nls_store,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_store_wait_workers(store: *mut nls_store, err: *mut *mut c_char) -> c_int;
    pub fn nls_store_clone(
        store: *mut nls_store,
        out: *mut *mut nls_store,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_store_free(store: *mut nls_store);
    pub fn nls_store_set(
        store: *mut nls_store,
        key: *const c_char,
        value: *const c_char,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_store_compare_set(
        store: *mut nls_store,
        key: *const c_char,
        expected: *const c_char,
        desired: *const c_char,
        current: *mut *mut c_char,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_store_add(
        store: *mut nls_store,
        key: *const c_char,
        delta: i64,
        value: *mut i64,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_store_check(
        store: *mut nls_store,
        key: *const c_char,
        exists: *mut c_int,
        err: *mut *mut c_char,
    ) -> c_int;

    pub fn nls_group_new_gloo(
        store: *mut nls_store,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        out: *mut *mut nls_group,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_nccl_compiled() -> c_int;
    pub fn nls_group_new_nccl(
        store: *mut nls_store,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        device: c_int,
        out: *mut *mut nls_group,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_group_free(group: *mut nls_group);

    pub fn nls_allreduce(
        group: *mut nls_group,
        tensor: *mut C_tensor,
        op: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_broadcast(
        group: *mut nls_group,
        tensor: *mut C_tensor,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_allgather(
        group: *mut nls_group,
        input: *mut C_tensor,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_barrier(group: *mut nls_group, err: *mut *mut c_char) -> c_int;
    pub fn nls_allgather_with_grad(
        group: *mut nls_group,
        input: *mut C_tensor,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn nls_allreduce_sum_with_grad(
        group: *mut nls_group,
        input: *mut C_tensor,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// Calls a shim function with an error slot; turns a failure into its message.
pub fn call(f: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<(), String> {
    let mut err: *mut c_char = std::ptr::null_mut();
    if f(&mut err) == 0 {
        return Ok(());
    }
    Err(unsafe { take_string(err) }.unwrap_or_else(|| "unknown error in the c10d shim".into()))
}

/// Copies and frees a string the shim allocated.
///
/// # Safety
/// `s` must be null or a string returned by the shim and not yet freed.
pub unsafe fn take_string(s: *mut c_char) -> Option<String> {
    if s.is_null() {
        return None;
    }
    let out = std::ffi::CStr::from_ptr(s).to_string_lossy().into_owned();
    nls_free_string(s);
    Some(out)
}
