//! Filters: registration and the typed view of one filter invocation.
//!
//! ```ignore
//! pub static TLS_IN: FilterSlot = FilterSlot::new();
//! filter!(reg, input, &TLS_IN, c"BASTION_TLS_IN", tls::filter_in, ftype::CONNECTION + 5);
//! // per connection:
//! TLS_IN.add_to_conn(conn);
//! ```

use super::brigade::Brigade;
use super::ffi;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Filter types (where in the chain a filter sits).
pub mod ftype {
    use super::ffi;
    /// Connection filters (below protocol filters; TLS sits at CONNECTION + 5).
    pub const CONNECTION: u32 = ffi::ap_filter_type_AP_FTYPE_CONNECTION;
    /// Network filters (the core).
    pub const NETWORK: u32 = ffi::ap_filter_type_AP_FTYPE_NETWORK;
    /// Protocol filters.
    pub const PROTOCOL: u32 = ffi::ap_filter_type_AP_FTYPE_PROTOCOL;
    /// Resource filters (content).
    pub const RESOURCE: u32 = ffi::ap_filter_type_AP_FTYPE_RESOURCE;
}

/// How an input filter is asked to read (`AP_MODE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Up to `readbytes` bytes.
    ReadBytes,
    /// One line (up to LF).
    GetLine,
    /// Skip a leading CRLF.
    EatCrlf,
    /// Peek without consuming.
    Speculative,
    /// Everything there is.
    Exhaustive,
    /// Initialize (drive a handshake); returns no data.
    Init,
}

impl Mode {
    fn from_raw(m: ffi::ap_input_mode_t) -> Mode {
        match m {
            ffi::ap_input_mode_t_AP_MODE_READBYTES => Mode::ReadBytes,
            ffi::ap_input_mode_t_AP_MODE_GETLINE => Mode::GetLine,
            ffi::ap_input_mode_t_AP_MODE_EATCRLF => Mode::EatCrlf,
            ffi::ap_input_mode_t_AP_MODE_SPECULATIVE => Mode::Speculative,
            ffi::ap_input_mode_t_AP_MODE_EXHAUSTIVE => Mode::Exhaustive,
            _ => Mode::Init,
        }
    }

    /// The raw mode value, for reading from the next filter.
    pub fn raw(self) -> ffi::ap_input_mode_t {
        match self {
            Mode::ReadBytes => ffi::ap_input_mode_t_AP_MODE_READBYTES,
            Mode::GetLine => ffi::ap_input_mode_t_AP_MODE_GETLINE,
            Mode::EatCrlf => ffi::ap_input_mode_t_AP_MODE_EATCRLF,
            Mode::Speculative => ffi::ap_input_mode_t_AP_MODE_SPECULATIVE,
            Mode::Exhaustive => ffi::ap_input_mode_t_AP_MODE_EXHAUSTIVE,
            Mode::Init => ffi::ap_input_mode_t_AP_MODE_INIT,
        }
    }
}

/// The handle of a registered filter, kept in a static of the glue.
pub struct FilterSlot(AtomicPtr<ffi::ap_filter_rec_t>);

impl Default for FilterSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl FilterSlot {
    /// An empty slot (filled by `filter!` at registration).
    pub const fn new() -> FilterSlot {
        FilterSlot(AtomicPtr::new(std::ptr::null_mut()))
    }

    #[doc(hidden)]
    pub fn set(&self, f: *mut ffi::ap_filter_rec_t) {
        self.0.store(f, Ordering::Release);
    }

    /// Adds this input filter to a connection's chain.
    pub fn add_input_to_conn(&self, c: &super::Conn<'_>) {
        // SAFETY: the handle was registered by this load of the module; c is live.
        unsafe {
            ffi::ap_add_input_filter_handle(
                self.0.load(Ordering::Acquire),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                c.as_ptr(),
            )
        };
    }

    /// Adds this output filter to a connection's chain; returns the filter instance, through
    /// which data can be sent below it (e.g. handshake records written while reading).
    pub fn add_output_to_conn(&self, c: &super::Conn<'_>) -> FilterRef {
        // SAFETY: as add_input_to_conn.
        FilterRef(unsafe {
            ffi::ap_add_output_filter_handle(
                self.0.load(Ordering::Acquire),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                c.as_ptr(),
            )
        })
    }
}

/// A filter instance on a connection (valid as long as the connection).
#[derive(Clone, Copy, Debug)]
pub struct FilterRef(*mut ffi::ap_filter_t);

// SAFETY: a connection, with its filters, is worked on by one thread at a time.
unsafe impl Send for FilterRef {}

impl FilterRef {
    /// Passes `bb` to the filter below this one.
    pub fn pass_below(&self, bb: &mut Brigade) -> ffi::apr_status_t {
        // SAFETY: the filter lives as long as its connection, which is being served; its
        // `next` is the live filter below it.
        unsafe { bb.pass_to((*self.0).next) }
    }
}

/// One invocation of a filter.
pub struct Filter {
    raw: *mut ffi::ap_filter_t,
}

impl Filter {
    /// # Safety
    /// `f` must be the live filter httpd invoked.
    #[doc(hidden)]
    pub unsafe fn from_raw(f: *mut ffi::ap_filter_t) -> Filter {
        Filter { raw: f }
    }

    /// The connection the filter works on.
    pub fn conn(&self) -> super::Conn<'static> {
        // SAFETY: a connection filter's `c` is valid while the filter is called.
        unsafe { super::Conn::from_raw((*self.raw).c) }.expect("filter connection")
    }

    /// The next filter in the chain.
    pub fn next(&self) -> *mut ffi::ap_filter_t {
        // SAFETY: live filter.
        unsafe { (*self.raw).next }
    }

    /// Reads from the next input filter into `bb`.
    pub fn get_next(
        &self,
        bb: &mut Brigade,
        mode: Mode,
        block: bool,
        readbytes: i64,
    ) -> ffi::apr_status_t {
        let b = if block {
            ffi::apr_read_type_e_APR_BLOCK_READ
        } else {
            ffi::apr_read_type_e_APR_NONBLOCK_READ
        };
        // SAFETY: next is the live next filter; bb is a live brigade.
        unsafe {
            ffi::ap_get_brigade(
                self.next(),
                bb.as_ptr(),
                mode.raw(),
                b,
                readbytes as ffi::apr_off_t,
            )
        }
    }

    /// Passes `bb` to the next output filter.
    pub fn pass_next(&self, bb: &mut Brigade) -> ffi::apr_status_t {
        // SAFETY: next is the live next filter of this chain.
        unsafe { bb.pass_to(self.next()) }
    }

    /// Removes this filter from its chain.
    pub fn remove_input(&self) {
        // SAFETY: live filter.
        unsafe { ffi::ap_remove_input_filter(self.raw) }
    }

    /// Removes this output filter from its chain.
    pub fn remove_output(&self) {
        // SAFETY: live filter.
        unsafe { ffi::ap_remove_output_filter(self.raw) }
    }
}

#[doc(hidden)]
pub mod run {
    //! Filter trampoline bodies.
    use super::super::brigade::{Brigade, rv};
    use super::super::ffi;
    use super::super::log::{Scope, Target};
    use super::{Filter, Mode};

    /// # Safety
    /// Called by httpd with a live filter and brigade.
    pub unsafe fn input(
        f: *mut ffi::ap_filter_t,
        bb: *mut ffi::apr_bucket_brigade,
        mode: ffi::ap_input_mode_t,
        block: ffi::apr_read_type_e,
        readbytes: ffi::apr_off_t,
        h: fn(&Filter, &mut Brigade, Mode, bool, i64) -> ffi::apr_status_t,
    ) -> ffi::apr_status_t {
        // SAFETY: per contract.
        let (filter, mut brigade) = unsafe { (Filter::from_raw(f), Brigade::from_raw(bb)) };
        let _scope = Scope::enter(Target::Conn(filter.conn().as_ptr()));
        super::super::guard::guard_with(
            || {
                filter.conn().set_aborted();
                rv::ECONNABORTED
            },
            || {
                h(
                    &filter,
                    &mut brigade,
                    Mode::from_raw(mode),
                    block == ffi::apr_read_type_e_APR_BLOCK_READ,
                    readbytes,
                )
            },
        )
    }

    /// # Safety
    /// Called by httpd with a live filter and brigade.
    pub unsafe fn output(
        f: *mut ffi::ap_filter_t,
        bb: *mut ffi::apr_bucket_brigade,
        h: fn(&Filter, &mut Brigade) -> ffi::apr_status_t,
    ) -> ffi::apr_status_t {
        // SAFETY: per contract.
        let (filter, mut brigade) = unsafe { (Filter::from_raw(f), Brigade::from_raw(bb)) };
        let _scope = Scope::enter(Target::Conn(filter.conn().as_ptr()));
        super::super::guard::guard_with(
            || {
                filter.conn().set_aborted();
                rv::ECONNABORTED
            },
            || h(&filter, &mut brigade),
        )
    }
}

/// Registers an input or output filter and stores its handle in a [`FilterSlot`].
/// Input handlers are `fn(&Filter, &mut Brigade, Mode, block: bool, readbytes: i64) -> apr_status_t`,
/// output handlers `fn(&Filter, &mut Brigade) -> apr_status_t`.
#[macro_export]
macro_rules! filter {
    ($reg:expr, input, $slot:expr, $name:expr, $h:path, $ftype:expr) => {{
        let _: &$crate::httpd::hooks::Registrar = $reg;
        unsafe extern "C" fn t(
            f: *mut $crate::httpd::ffi::ap_filter_t,
            bb: *mut $crate::httpd::ffi::apr_bucket_brigade,
            mode: $crate::httpd::ffi::ap_input_mode_t,
            block: $crate::httpd::ffi::apr_read_type_e,
            readbytes: $crate::httpd::ffi::apr_off_t,
        ) -> $crate::httpd::ffi::apr_status_t {
            // SAFETY: httpd passes a live filter and brigade.
            unsafe { $crate::httpd::filter::run::input(f, bb, mode, block, readbytes, $h) }
        }
        let (name, ftype): (&'static ::std::ffi::CStr, u32) = ($name, $ftype);
        // SAFETY: registering with a 'static name during register_hooks.
        let h = unsafe {
            $crate::httpd::ffi::ap_register_input_filter(name.as_ptr(), Some(t), None, ftype)
        };
        $slot.set(h);
    }};
    ($reg:expr, output, $slot:expr, $name:expr, $h:path, $ftype:expr) => {{
        let _: &$crate::httpd::hooks::Registrar = $reg;
        unsafe extern "C" fn t(
            f: *mut $crate::httpd::ffi::ap_filter_t,
            bb: *mut $crate::httpd::ffi::apr_bucket_brigade,
        ) -> $crate::httpd::ffi::apr_status_t {
            // SAFETY: httpd passes a live filter and brigade.
            unsafe { $crate::httpd::filter::run::output(f, bb, $h) }
        }
        let (name, ftype): (&'static ::std::ffi::CStr, u32) = ($name, $ftype);
        // SAFETY: registering with a 'static name during register_hooks.
        let h = unsafe {
            $crate::httpd::ffi::ap_register_output_filter(name.as_ptr(), Some(t), None, ftype)
        };
        $slot.set(h);
    }};
}
