//! Panic guards for every `extern "C"` entry point.
//!
//! A panic must never unwind into C (since Rust 1.81 that aborts the whole child, and with it
//! every connection it serves). Each trampoline runs its body through [`guard`], which turns a
//! panic into a fallback value; the panic hook has already logged it at `crit`.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs `f`, returning `fallback` if it panics.
pub fn guard<R>(fallback: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Like [`guard`], with a fallback computed only on panic.
pub fn guard_with<R>(fallback: impl FnOnce() -> R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| fallback())
}

/// Installs the process's panic hook: the message and location go to the error log at `crit`,
/// against whatever request, connection or server is current on this thread.
pub(crate) fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let bt = std::backtrace::Backtrace::capture();
        let msg = match bt.status() {
            std::backtrace::BacktraceStatus::Captured => format!("Rust panic: {info}\n{bt}"),
            _ => format!("Rust panic: {info}"),
        };
        super::log::log_current(super::log::Level::Crit, &msg);
    }));
}
