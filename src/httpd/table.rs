//! `apr_table_t`: headers, notes and environment tables.

use super::ffi;
use std::ffi::CStr;
use std::marker::PhantomData;

/// A borrowed APR table (headers_in/out, notes, subprocess_env).
pub struct Table<'a> {
    raw: *mut ffi::apr_table_t,
    _life: PhantomData<&'a mut ffi::apr_table_t>,
}

impl<'a> Table<'a> {
    /// # Safety
    /// `t` must be a live table for `'a`.
    pub(crate) unsafe fn from_raw(t: *mut ffi::apr_table_t) -> Table<'a> {
        Table {
            raw: t,
            _life: PhantomData,
        }
    }

    /// The first value under `key` (case-insensitive).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let k = super::to_cstring(key);
        // SAFETY: live table; the value lives in the table's pool.
        unsafe { super::cstr(ffi::apr_table_get(self.raw, k.as_ptr())) }
    }

    /// Sets `key` to `value` (replacing); both are copied into the table's pool.
    pub fn set(&mut self, key: &str, value: &str) {
        self.set_c(&super::to_cstring(key), &super::to_cstring(value));
    }

    /// [`Table::set`] for strings that are C strings already (no conversion).
    pub fn set_c(&mut self, key: &CStr, value: &CStr) {
        // SAFETY: apr_table_set copies both strings.
        unsafe { ffi::apr_table_set(self.raw, key.as_ptr(), value.as_ptr()) }
    }

    /// Adds another `key: value` (keeping existing ones).
    pub fn add(&mut self, key: &str, value: &str) {
        let (k, v) = (super::to_cstring(key), super::to_cstring(value));
        // SAFETY: apr_table_add copies both strings.
        unsafe { ffi::apr_table_add(self.raw, k.as_ptr(), v.as_ptr()) }
    }

    /// Removes every `key`.
    pub fn unset(&mut self, key: &str) {
        let k = super::to_cstring(key);
        // SAFETY: live table.
        unsafe { ffi::apr_table_unset(self.raw, k.as_ptr()) }
    }

    /// Every `(key, value)` entry, in table order.
    pub fn entries(&self) -> Vec<(&'a str, &'a str)> {
        unsafe extern "C" fn collect(
            rec: *mut std::ffi::c_void,
            k: *const std::os::raw::c_char,
            v: *const std::os::raw::c_char,
        ) -> std::os::raw::c_int {
            // SAFETY: rec is the Vec passed below; k and v are table strings that live in
            // the table's pool for 'a (the lifetime is restored by the caller's signature).
            unsafe {
                let out = &mut *(rec as *mut Vec<(&str, &str)>);
                if let (Some(k), Some(v)) = (super::cstr(k), super::cstr(v)) {
                    out.push((k, v));
                }
            }
            1
        }
        let mut out: Vec<(&'a str, &'a str)> = Vec::new();
        // SAFETY: live table; the callback only appends to `out`, which outlives the call;
        // a NULL-terminated empty vararg list means "all keys".
        unsafe {
            ffi::apr_table_do(
                Some(collect),
                &mut out as *mut Vec<(&str, &str)> as *mut std::ffi::c_void,
                self.raw,
                std::ptr::null::<std::os::raw::c_char>(),
            );
        }
        out
    }
}
