//! `server_rec`: the main server and its virtual hosts.

use super::ffi;
use std::marker::PhantomData;
use std::ptr::NonNull;

/// A borrowed server record.
#[derive(Clone, Copy)]
pub struct Server<'a> {
    raw: NonNull<ffi::server_rec>,
    _life: PhantomData<&'a ffi::server_rec>,
}

/// One address a virtual host answers on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostAddr {
    /// The host as written (`*` or `_default_` for any).
    pub host: String,
    /// The port (0 for any).
    pub port: u16,
    /// The IP address in text form, if a specific one.
    pub ip: Option<std::net::IpAddr>,
}

impl<'a> Server<'a> {
    /// Wraps a server pointer httpd handed us.
    ///
    /// # Safety
    /// `s` must be NULL or a server record valid for `'a`.
    pub unsafe fn from_raw(s: *mut ffi::server_rec) -> Option<Server<'a>> {
        NonNull::new(s).map(|raw| Server {
            raw,
            _life: PhantomData,
        })
    }

    /// The main server (`ap_server_conf`), once httpd has one.
    pub fn main() -> Option<Server<'static>> {
        // SAFETY: ap_server_conf is NULL or the main server of the live configuration.
        unsafe { Server::from_raw(ffi::ap_server_conf) }
    }

    /// The raw pointer, for calls into httpd.
    pub fn as_ptr(&self) -> *mut ffi::server_rec {
        self.raw.as_ptr()
    }

    fn rec(&self) -> &'a ffi::server_rec {
        // SAFETY: valid for 'a per from_raw.
        unsafe { &*self.raw.as_ptr() }
    }

    /// The next server in the configuration (main first, then the virtual hosts in order).
    pub fn next(&self) -> Option<Server<'a>> {
        // SAFETY: `next` is NULL or another server of the same configuration.
        unsafe { Server::from_raw(self.rec().next) }
    }

    /// This server and every one after it.
    pub fn iter(&self) -> impl Iterator<Item = Server<'a>> {
        std::iter::successors(Some(*self), |s| s.next())
    }

    /// Whether this is a `<VirtualHost>`.
    pub fn is_virtual(&self) -> bool {
        self.rec().is_virtual != 0
    }

    /// ServerName.
    pub fn hostname(&self) -> Option<&'a str> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().server_hostname) }
    }

    /// ServerAdmin.
    pub fn admin(&self) -> Option<&'a str> {
        // SAFETY: NULL or a pool string.
        unsafe { super::cstr(self.rec().server_admin) }
    }

    /// The port from ServerName (0 if none).
    pub fn port(&self) -> u16 {
        self.rec().port
    }

    /// Where the `<VirtualHost>` was defined (`file:line`), for messages.
    pub fn defined_at(&self) -> String {
        // SAFETY: NULL or a pool string.
        let f = unsafe { super::cstr(self.rec().defn_name) }.unwrap_or("?");
        format!("{}:{}", f, self.rec().defn_line_number)
    }

    fn array_strings(arr: *mut ffi::apr_array_header_t) -> Vec<&'a str> {
        let mut out = Vec::new();
        if arr.is_null() {
            return out;
        }
        // SAFETY: an APR array of `char *`, nelts entries.
        unsafe {
            let a = &*arr;
            let elts = a.elts as *const *const std::os::raw::c_char;
            for i in 0..a.nelts.max(0) as usize {
                if let Some(s) = super::cstr(*elts.add(i)) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// ServerAlias names without wildcards.
    pub fn aliases(&self) -> Vec<&'a str> {
        Self::array_strings(self.rec().names)
    }

    /// ServerAlias names with wildcards.
    pub fn wild_aliases(&self) -> Vec<&'a str> {
        Self::array_strings(self.rec().wild_names)
    }

    /// The addresses of `<VirtualHost addr:port ...>` (for the main server, none).
    pub fn addrs(&self) -> Vec<VhostAddr> {
        let mut out = Vec::new();
        let mut a = self.rec().addrs;
        // SAFETY: a NULL-terminated list of server_addr_rec owned by the configuration.
        unsafe {
            while !a.is_null() {
                let host = super::cstr((*a).virthost).unwrap_or("*").to_string();
                let sa = (*a).host_addr;
                let mut ip = None;
                if !sa.is_null() {
                    let mut buf: *mut std::os::raw::c_char = std::ptr::null_mut();
                    if ffi::apr_sockaddr_ip_get(&mut buf, sa) == 0 {
                        ip = super::cstr(buf).and_then(|s| s.parse().ok());
                    }
                    if ip.is_some_and(|i: std::net::IpAddr| i.is_unspecified()) {
                        ip = None;
                    }
                }
                out.push(VhostAddr {
                    host,
                    port: (*a).host_port,
                    ip,
                });
                a = (*a).next;
            }
        }
        out
    }

    /// This module's configuration for this server.
    pub fn config<S: super::config::ModuleConfig>(&self) -> &'a S {
        // SAFETY: module_config is this server's live config vector.
        unsafe { super::config::from_vector::<S>(self.rec().module_config) }.expect("server config")
    }

    /// The process pool: it survives graceful restarts and DSO reloads.
    pub fn process_pool(&self) -> super::Pool<'a> {
        // SAFETY: process and its pool live as long as the httpd process.
        unsafe { super::Pool::from_raw((*self.rec().process).pool) }.expect("process pool")
    }

    /// The log target for this server.
    pub fn log_target(&self) -> super::log::Target {
        super::log::Target::Server(self.raw.as_ptr())
    }
}
