//! The rendezvous store: libtorch's TCPStore, the same server Python's `env://` starts on rank 0.

use super::ffi;
use std::ffi::{c_int, CString};
use std::time::Duration;

/// One connection to a TCPStore. Each thread that talks to the store should own its own clone.
pub struct Store {
    raw: *mut ffi::nls_store,
    pub addr: String,
}

// A store connection is used by one thread at a time; moving it between threads is safe.
unsafe impl Send for Store {}

impl Store {
    /// Rank 0 (`is_server`) listens on `port`; the others connect (retrying until `timeout`).
    /// Call [`Store::wait_workers`] next, as Python's TCPStore does with `wait_for_workers=True`.
    pub fn connect(
        host: &str,
        port: u16,
        is_server: bool,
        world: usize,
        timeout: Duration,
    ) -> Result<Store, String> {
        let c_host = cstring(host)?;
        let mut raw = std::ptr::null_mut();
        ffi::call(|err| unsafe {
            ffi::nls_store_new(
                c_host.as_ptr(),
                port,
                is_server as c_int,
                world as c_int,
                timeout.as_millis() as i64,
                &mut raw,
                err,
            )
        })?;
        Ok(Store {
            raw,
            addr: format!("{host}:{port}"),
        })
    }

    /// Counts this rank in; rank 0 then waits until all `world` ranks have been counted.
    pub fn wait_workers(&self) -> Result<(), String> {
        ffi::call(|err| unsafe { ffi::nls_store_wait_workers(self.raw, err) })
    }

    /// A second connection to the same server.
    pub fn try_clone(&self) -> Result<Store, String> {
        let mut raw = std::ptr::null_mut();
        ffi::call(|err| unsafe { ffi::nls_store_clone(self.raw, &mut raw, err) })?;
        Ok(Store {
            raw,
            addr: self.addr.clone(),
        })
    }

    pub fn set(&self, key: &str, value: &str) -> Result<(), String> {
        let (k, v) = (cstring(key)?, cstring(value)?);
        ffi::call(|err| unsafe { ffi::nls_store_set(self.raw, k.as_ptr(), v.as_ptr(), err) })
    }

    /// Sets `key` to `desired` if it holds `expected` (an absent key counts as ""); returns the
    /// value it holds afterwards.
    pub fn compare_set(&self, key: &str, expected: &str, desired: &str) -> Result<String, String> {
        let (k, e, d) = (cstring(key)?, cstring(expected)?, cstring(desired)?);
        let mut current = std::ptr::null_mut();
        ffi::call(|err| unsafe {
            ffi::nls_store_compare_set(
                self.raw,
                k.as_ptr(),
                e.as_ptr(),
                d.as_ptr(),
                &mut current,
                err,
            )
        })?;
        Ok(unsafe { ffi::take_string(current) }.unwrap_or_default())
    }

    /// Adds `delta` to an integer key (created at 0) and returns the new value.
    pub fn add(&self, key: &str, delta: i64) -> Result<i64, String> {
        let k = cstring(key)?;
        let mut value = 0;
        ffi::call(|err| unsafe {
            ffi::nls_store_add(self.raw, k.as_ptr(), delta, &mut value, err)
        })?;
        Ok(value)
    }

    /// Whether `key` exists, without waiting for it.
    pub fn check(&self, key: &str) -> Result<bool, String> {
        let k = cstring(key)?;
        let mut exists = 0;
        ffi::call(|err| unsafe { ffi::nls_store_check(self.raw, k.as_ptr(), &mut exists, err) })?;
        Ok(exists != 0)
    }

    pub(super) fn raw(&self) -> *mut ffi::nls_store {
        self.raw
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        unsafe { ffi::nls_store_free(self.raw) }
    }
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}
