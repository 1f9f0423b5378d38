//! Logging to httpd's error log.
//!
//! Engines log with `tracing`; [`install_subscriber`] routes those events to `ap_log_*error_`
//! with this module's index, so `LogLevel bastion:debug` (and per-vhost `LogLevel`) decide what
//! is written, exactly as for C modules. Each entry point sets the current log target (request,
//! connection or server) with [`Scope`], so a line carries the client address and vhost.

use super::ffi;
use std::cell::Cell;
use std::fmt::Write as _;
use std::os::raw::c_int;

/// httpd's log levels (`APLOG_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    /// emerg
    Emerg = 0,
    /// alert
    Alert = 1,
    /// crit
    Crit = 2,
    /// error
    Error = 3,
    /// warn
    Warn = 4,
    /// notice
    Notice = 5,
    /// info
    Info = 6,
    /// debug
    Debug = 7,
    /// trace1
    Trace1 = 8,
    /// trace2
    Trace2 = 9,
    /// trace3
    Trace3 = 10,
}

impl Level {
    fn from_tracing(l: &tracing::Level) -> Level {
        match *l {
            tracing::Level::ERROR => Level::Error,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::INFO => Level::Info,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::TRACE => Level::Trace1,
        }
    }
}

/// Where log lines go: the request, connection or server being served on this thread.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The main server (`ap_server_conf`), or stderr before it exists.
    Main,
    /// A server (virtual host).
    Server(*const ffi::server_rec),
    /// A connection.
    Conn(*const ffi::conn_rec),
    /// A request.
    Request(*const ffi::request_rec),
}

thread_local! {
    static CURRENT: Cell<Target> = const { Cell::new(Target::Main) };
}

/// Sets the current log target for this thread until dropped (then restores the previous one).
pub struct Scope {
    prev: Target,
}

impl Scope {
    /// Makes `t` the current target.
    pub fn enter(t: Target) -> Scope {
        let prev = CURRENT.with(|c| c.replace(t));
        Scope { prev }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// The level configured for this module at `target` (`LogLevel bastion:...`).
fn configured_level(target: Target) -> c_int {
    let idx = super::module::module_index();
    // SAFETY: the pointers in a Target were set by an entry point from httpd's own records,
    // which outlive the scope that set them; log configs are read-only after startup.
    unsafe {
        let conf: *const ffi::ap_logconf = match target {
            Target::Main => {
                if ffi::ap_server_conf.is_null() {
                    return ffi::APLOG_NOTICE as c_int;
                }
                &(*ffi::ap_server_conf).log
            }
            Target::Server(s) => &(*s).log,
            Target::Conn(c) => {
                if !(*c).log.is_null() {
                    (*c).log
                } else {
                    &(*(*c).base_server).log
                }
            }
            Target::Request(r) => {
                if !(*r).log.is_null() {
                    (*r).log
                } else {
                    &(*(*r).server).log
                }
            }
        };
        let ml = (*conf).module_levels;
        if idx >= 0 && !ml.is_null() {
            let l = *ml.add(idx as usize) as c_int;
            if l >= 0 {
                return l;
            }
        }
        (*conf).level
    }
}

/// Whether a line at `level` would be written for the current target.
pub fn enabled(level: Level) -> bool {
    (level as c_int) <= configured_level(CURRENT.with(|c| c.get()))
}

/// Writes `msg` at `level` against the current target.
pub fn log_current(level: Level, msg: &str) {
    log_to(CURRENT.with(|c| c.get()), level, msg, file!(), line!());
}

/// Writes `msg` at `level` against the main server, also to stderr during startup
/// (so `apachectl -t` shows it).
pub fn log_startup(level: Level, msg: &str) {
    let m = super::to_cstring(msg);
    // SAFETY: the format is a constant "%s" and the argument a valid C string; a NULL server
    // makes httpd write to stderr, which is what startup messages need.
    unsafe {
        ffi::ap_log_error_(
            c"mod_bastion".as_ptr(),
            0,
            super::module::module_index(),
            level as c_int | ffi::APLOG_STARTUP as c_int,
            0,
            std::ptr::null(),
            c"%s".as_ptr(),
            m.as_ptr(),
        );
    }
}

/// Writes `msg` at `level` against `target`.
pub fn log_to(target: Target, level: Level, msg: &str, file: &str, line: u32) {
    let m = super::to_cstring(msg);
    let f = super::to_cstring(file.rsplit('/').next().unwrap_or(file));
    let idx = super::module::module_index();
    let lvl = level as c_int;
    // SAFETY: format "%s" with one valid C string; the record pointers come from httpd and
    // are alive while their entry point runs (see Scope).
    unsafe {
        match target {
            Target::Main => ffi::ap_log_error_(
                f.as_ptr(),
                line as c_int,
                idx,
                lvl,
                0,
                ffi::ap_server_conf,
                c"%s".as_ptr(),
                m.as_ptr(),
            ),
            Target::Server(s) => ffi::ap_log_error_(
                f.as_ptr(),
                line as c_int,
                idx,
                lvl,
                0,
                s,
                c"%s".as_ptr(),
                m.as_ptr(),
            ),
            Target::Conn(c) => ffi::ap_log_cerror_(
                f.as_ptr(),
                line as c_int,
                idx,
                lvl,
                0,
                c,
                c"%s".as_ptr(),
                m.as_ptr(),
            ),
            Target::Request(r) => ffi::ap_log_rerror_(
                f.as_ptr(),
                line as c_int,
                idx,
                lvl,
                0,
                r,
                c"%s".as_ptr(),
                m.as_ptr(),
            ),
        }
    }
}

/// A `tracing` subscriber that writes events to the error log of the current target.
struct ErrorLog;

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let s = format!("{value:?}");
            self.0.insert_str(0, &s);
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }
}

impl tracing::Subscriber for ErrorLog {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // Levels differ per vhost and request: ask every time.
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, meta: &tracing::Metadata<'_>) -> bool {
        enabled(Level::from_tracing(meta.level()))
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let meta = event.metadata();
        let mut s = String::new();
        event.record(&mut Fields(&mut s));
        log_to(
            CURRENT.with(|c| c.get()),
            Level::from_tracing(meta.level()),
            &s,
            meta.file().unwrap_or("?"),
            meta.line().unwrap_or(0),
        );
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Installs the error-log subscriber as this DSO's global `tracing` default.
///
/// httpd unloads and reloads the module between config passes; each load has its own copy of
/// `tracing`'s globals, so this runs once per load. If glibc kept the DSO resident, the
/// subscriber is already set and the call is a no-op.
pub(crate) fn install_subscriber() {
    let _ = tracing::subscriber::set_global_default(ErrorLog);
}
