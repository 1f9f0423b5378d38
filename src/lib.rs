//! mod_bastion: memory-safe TLS, managed certificates and transparent data encryption for
//! Apache httpd, in one module.
//!
//! This file is the one place that wires the parts: the module record, the directive table
//! and the hooks. The glue for each capability lives in its own module (`core`, `tls`, ...);
//! the safe face of httpd is [`httpd`]; the engines are the `bastion-*` crates.

pub mod httpd;

mod config;
mod core;

pub use config::{DirConf, ServerConf};

use httpd::cmd::ctx::*;
use httpd::hooks::{Order, Registrar};

directives! {
    pub static COMMANDS = [
        take1(c"BastionStatusTitle", RSRC_CONF, core::cmd_status_title,
              c"BastionStatusTitle text: the heading of the bastion-info page"),
    ];
}

httpd_module! {
    symbol: bastion_module,
    name: c"mod_bastion.c",
    server_config: ServerConf,
    dir_config: DirConf,
    commands: COMMANDS,
    register_hooks: register_hooks,
}

fn register_hooks(reg: &Registrar) {
    hook!(reg, pre_config, core::pre_config, Order::Middle);
    hook!(reg, post_config, core::post_config, Order::Middle);
    hook!(reg, child_init, core::child_init, Order::Middle);
    hook!(reg, handler, core::info_handler, Order::Middle);
    #[cfg(feature = "test-hooks")]
    hook!(reg, handler, core::test_panic_handler, Order::First);
}
