//! `conn_rec`: one client connection.

use super::ffi;
use super::table::Table;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A borrowed connection.
#[derive(Clone, Copy)]
pub struct Conn<'a> {
    raw: NonNull<ffi::conn_rec>,
    _life: PhantomData<&'a ffi::conn_rec>,
}

impl<'a> Conn<'a> {
    /// # Safety
    /// `c` must be NULL or a connection valid for `'a`.
    pub unsafe fn from_raw(c: *mut ffi::conn_rec) -> Option<Conn<'a>> {
        NonNull::new(c).map(|raw| Conn { raw, _life: PhantomData })
    }

    /// The raw pointer, for calls into httpd.
    pub fn as_ptr(&self) -> *mut ffi::conn_rec {
        self.raw.as_ptr()
    }

    fn rec(&self) -> &'a ffi::conn_rec {
        // SAFETY: valid for 'a per from_raw.
        unsafe { &*self.raw.as_ptr() }
    }

    /// httpd's connection id.
    pub fn id(&self) -> i64 {
        self.rec().id as i64
    }

    /// The client's address.
    pub fn client_ip(&self) -> &'a str {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().client_ip) }.unwrap_or("")
    }

    /// The local port the client connected to.
    pub fn local_port(&self) -> u16 {
        let a = self.rec().local_addr;
        if a.is_null() {
            return 0;
        }
        // SAFETY: local_addr is the listener's sockaddr for this connection.
        unsafe { (*a).port }
    }

    /// The local address (IP) the client connected to.
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().local_ip) }.and_then(|s| s.parse().ok())
    }

    /// Whether this is a secondary connection (an HTTP/2 stream), with its master.
    pub fn master(&self) -> Option<Conn<'a>> {
        // SAFETY: NULL or the master connection, which outlives its secondaries.
        unsafe { Conn::from_raw(self.rec().master) }
    }

    /// The server chosen by address (before any name-based selection).
    pub fn base_server(&self) -> super::Server<'a> {
        // SAFETY: base_server is set before any hook sees the connection.
        unsafe { super::Server::from_raw(self.rec().base_server) }.expect("base server")
    }

    /// Connection notes (read by mod_proxy, mod_http2, ...).
    pub fn notes(&self) -> Table<'a> {
        // SAFETY: live table of this connection.
        unsafe { Table::from_raw(self.rec().notes) }
    }

    /// The connection pool.
    pub fn pool(&self) -> super::Pool<'a> {
        // SAFETY: c->pool lives as long as the connection.
        unsafe { super::Pool::from_raw(self.rec().pool) }.expect("connection pool")
    }

    /// Whether the connection was aborted.
    pub fn aborted(&self) -> bool {
        self.rec().aborted != 0
    }

    /// Marks the connection aborted (no more writes will be tried).
    pub fn set_aborted(&self) {
        // SAFETY: only this thread works on the connection.
        unsafe { (*self.raw.as_ptr()).aborted = 1 }
    }

    /// Stores per-connection state of this module, dropped with the connection pool.
    pub fn set_state<T: Send + 'static>(&self, value: T) -> &'a mut T {
        let p = super::config::attach_tagged(&self.pool(), value);
        let idx = super::module::module_index();
        // SAFETY: conn_config is a vector with one slot per module; ours is at module_index.
        unsafe {
            let cv = self.rec().conn_config as *mut *mut std::ffi::c_void;
            *cv.add(idx as usize) = p;
            super::config::get::<T>(p).expect("just stored")
        }
    }

    /// This module's per-connection state, if [`Conn::set_state`] stored one. A lookup with
    /// another type than the one stored panics (caught by the entry point's guard).
    pub fn state<T: Send + 'static>(&self) -> Option<&'a mut T> {
        // SAFETY: conn_config is the connection's live config vector; our slot holds NULL or
        // a tagged pointer from set_state.
        unsafe { super::config::from_vector::<T>(self.rec().conn_config) }
    }

    /// The log target for this connection.
    pub fn log_target(&self) -> super::log::Target {
        super::log::Target::Conn(self.raw.as_ptr())
    }
}
