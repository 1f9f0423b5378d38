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
        NonNull::new(c).map(|raw| Conn {
            raw,
            _life: PhantomData,
        })
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
        self.rec().id
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

    /// Whether this is a connection httpd opened to a backend (mod_proxy).
    pub fn is_outgoing(&self) -> bool {
        self.rec().outgoing != 0
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

    /// Closes the connection after the current response (no keep-alive).
    pub fn set_keepalive_close(&self) {
        // SAFETY: only this thread works on the connection.
        unsafe { (*self.raw.as_ptr()).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE }
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

    /// Calls `f` for each virtual host that serves this connection's address (name-based
    /// candidates, in configuration order) until it returns true. Returns whether one did.
    pub fn for_each_vhost(&self, mut f: impl FnMut(super::Server<'a>) -> bool) -> bool {
        unsafe extern "C" fn cb(
            baton: *mut std::ffi::c_void,
            _c: *mut ffi::conn_rec,
            s: *mut ffi::server_rec,
        ) -> std::os::raw::c_int {
            // SAFETY: baton is the &mut dyn FnMut passed below, alive for the iteration.
            let f = unsafe { &mut *(baton as *mut &mut dyn FnMut(*mut ffi::server_rec) -> bool) };
            f(s) as std::os::raw::c_int
        }
        let mut g = |s: *mut ffi::server_rec| -> bool {
            // SAFETY: httpd passes the configuration's server records.
            match unsafe { super::Server::from_raw(s) } {
                Some(s) => f(s),
                None => false,
            }
        };
        let mut dynf: &mut dyn FnMut(*mut ffi::server_rec) -> bool = &mut g;
        // SAFETY: the callback only runs during this call; the baton outlives it.
        unsafe {
            ffi::ap_vhost_iterate_given_conn(
                self.as_ptr(),
                Some(cb),
                &mut dynf as *mut _ as *mut std::ffi::c_void,
            ) != 0
        }
    }

    /// The protocol the connection speaks now (`"http/1.1"`, `"h2"`).
    pub fn protocol(&self) -> String {
        // SAFETY: returns a static or pool string.
        unsafe { super::cstr(ffi::ap_get_protocol(self.as_ptr())) }
            .unwrap_or("http/1.1")
            .to_string()
    }

    /// Asks httpd's protocol hooks (mod_http2, ...) which of the client's `choices` to speak,
    /// as configured by `Protocols` for `server`.
    pub fn select_protocol(&self, server: &super::Server<'_>, choices: &[&str]) -> Option<String> {
        let pool = self.pool();
        // SAFETY: an APR array of `char *` in the connection pool, filled with pool strings;
        // ap_select_protocol returns NULL or a string at least as long-lived as the pool.
        unsafe {
            let arr = ffi::apr_array_make(
                pool.as_ptr(),
                choices.len().max(1) as i32,
                std::mem::size_of::<*const std::os::raw::c_char>() as i32,
            );
            for c in choices {
                let slot = ffi::apr_array_push(arr) as *mut *const std::os::raw::c_char;
                *slot = pool.pstrdup(c);
            }
            super::cstr(ffi::ap_select_protocol(
                self.as_ptr(),
                std::ptr::null_mut(),
                server.as_ptr(),
                arr,
            ))
            .map(str::to_string)
        }
    }

    /// Switches the connection to `protocol` (runs the protocol_switch hooks).
    pub fn switch_protocol(
        &self,
        server: &super::Server<'_>,
        protocol: &str,
    ) -> Result<(), ffi::apr_status_t> {
        let p = self.pool().pstrdup(protocol);
        // SAFETY: valid connection, server and pool string.
        let rv = unsafe {
            ffi::ap_switch_protocol(self.as_ptr(), std::ptr::null_mut(), server.as_ptr(), p)
        };
        if rv == 0 { Ok(()) } else { Err(rv) }
    }

    /// Asks the input filters to initialize (`AP_MODE_INIT`, blocking): a TLS filter runs its
    /// handshake. Returns the filters' status.
    pub fn read_init(&self) -> ffi::apr_status_t {
        let mut bb = super::brigade::Brigade::for_conn(self);
        // SAFETY: input_filters is the head of the connection's live input chain.
        let rv = unsafe {
            ffi::ap_get_brigade(
                self.rec().input_filters,
                bb.as_ptr(),
                ffi::ap_input_mode_t_AP_MODE_INIT,
                ffi::apr_read_type_e_APR_BLOCK_READ,
                0,
            )
        };
        bb.clear();
        rv
    }

    /// Reads from the top of the connection's input filters in `mode` and returns the data
    /// (metadata buckets are dropped).
    pub fn read_input(
        &self,
        mode: super::filter::Mode,
        block: bool,
        readbytes: i64,
    ) -> Result<Vec<u8>, ffi::apr_status_t> {
        let mut bb = super::brigade::Brigade::for_conn(self);
        let b = if block {
            ffi::apr_read_type_e_APR_BLOCK_READ
        } else {
            ffi::apr_read_type_e_APR_NONBLOCK_READ
        };
        // SAFETY: input_filters is the head of the connection's live input chain; bb is live.
        let rv = unsafe {
            ffi::ap_get_brigade(
                self.rec().input_filters,
                bb.as_ptr(),
                mode.raw(),
                b,
                readbytes as ffi::apr_off_t,
            )
        };
        let mut out = Vec::new();
        let mut r = Ok(());
        if rv == super::brigade::rv::SUCCESS {
            while let Some(bk) = bb.first() {
                if bk.kind() == super::brigade::Kind::Data {
                    match bk.read(block) {
                        Ok(d) => out.extend_from_slice(d),
                        Err(e) => {
                            r = Err(e);
                            break;
                        }
                    }
                }
                bk.delete();
            }
        } else {
            r = Err(rv);
        }
        bb.clear();
        r.map(|()| out)
    }

    /// The bucket allocator of the connection.
    pub fn bucket_alloc(&self) -> *mut ffi::apr_bucket_alloc_t {
        self.rec().bucket_alloc
    }

    /// The log target for this connection.
    pub fn log_target(&self) -> super::log::Target {
        super::log::Target::Conn(self.raw.as_ptr())
    }
}
