//! mod_bastion: memory-safe TLS, managed certificates and transparent data encryption for
//! Apache httpd, in one module.
//!
//! This file is the one place that wires the parts: the module record, the directive table
//! and the hooks. The glue for each capability lives in its own module (`core`, `tls`, ...);
//! the safe face of httpd is [`httpd`]; the engines are the `bastion-*` crates.

pub mod httpd;

mod config;
mod core;
#[cfg(feature = "test-hooks")]
mod testhooks;
mod tls;

pub use config::{DirConf, ServerConf};

use httpd::cmd::ctx::*;
use httpd::filter;
use httpd::hooks::{Order, Registrar};

directives! {
    pub static COMMANDS = [
        take1(c"BastionStatusTitle", RSRC_CONF, core::cmd_status_title,
              c"BastionStatusTitle text: the heading of the bastion-info page"),
        // TLS (mod_tls's directives)
        iterate(c"TLSEngine", RSRC_CONF, tls::conf::cmd_engine,
              c"TLSEngine [addr:]port: serve TLS on this address (e.g. 443, 127.0.0.1:8443)"),
        take12(c"TLSCertificate", RSRC_CONF, tls::conf::cmd_certificate,
              c"TLSCertificate cert.pem [key.pem]: a certificate chain and its key (PEM)"),
        take1(c"TLSProtocol", RSRC_CONF, tls::conf::cmd_protocol,
              c"TLSProtocol default|TLSv1.2+|TLSv1.3+|TLSv0x0303+: the minimum TLS version"),
        take_argv(c"TLSCiphersPrefer", RSRC_CONF, tls::conf::cmd_ciphers_prefer,
              c"TLSCiphersPrefer name[:name...]|default: cipher suites to prefer"),
        take_argv(c"TLSCiphersSuppress", RSRC_CONF, tls::conf::cmd_ciphers_suppress,
              c"TLSCiphersSuppress name[:name...]|none: cipher suites never to use"),
        flag(c"TLSHonorClientOrder", RSRC_CONF, tls::conf::cmd_honor_client_order,
              c"TLSHonorClientOrder on|off: follow the client's cipher order (default on)"),
        flag(c"TLSStrictSNI", RSRC_CONF, tls::conf::cmd_strict_sni,
              c"TLSStrictSNI on|off: refuse handshakes naming an unknown host (default on)"),
        flag(c"TLSSessionTickets", RSRC_CONF, tls::conf::cmd_session_tickets,
              c"TLSSessionTickets on|off: resume sessions with tickets (default on)"),
        take1(c"TLSSessionCache", RSRC_CONF, tls::conf::cmd_session_cache,
              c"TLSSessionCache none|default|provider[:args]: the shared TLS session cache"),
        take_argv(c"TLSOptions", OR_OPTIONS, tls::conf::cmd_options,
              c"TLSOptions [+|-]StdEnvVars|ExportCertData|Defaults ..."),
        // Backend TLS for mod_proxy (mod_tls's TLSProxy* directives)
        flag(c"TLSProxyEngine", RSRC_CONF | PROXY_CONF, tls::conf::cmd_proxy_engine,
              c"TLSProxyEngine on|off: TLS to https:// backends (default off)"),
        take1(c"TLSProxyCA", RSRC_CONF | PROXY_CONF, tls::conf::cmd_proxy_ca,
              c"TLSProxyCA file.pem: the CA(s) backends' certificates are checked against"),
        take1(c"TLSProxyProtocol", RSRC_CONF | PROXY_CONF, tls::conf::cmd_proxy_protocol,
              c"TLSProxyProtocol default|TLSv1.2+|TLSv1.3+: the minimum TLS version to backends"),
        take_argv(c"TLSProxyCiphersPrefer", RSRC_CONF | PROXY_CONF, tls::conf::cmd_proxy_ciphers_prefer,
              c"TLSProxyCiphersPrefer name[:name...]|default"),
        take_argv(c"TLSProxyCiphersSuppress", RSRC_CONF | PROXY_CONF, tls::conf::cmd_proxy_ciphers_suppress,
              c"TLSProxyCiphersSuppress name[:name...]|none"),
        take12(c"TLSProxyMachineCertificate", RSRC_CONF | PROXY_CONF, tls::conf::cmd_proxy_machine_cert,
              c"TLSProxyMachineCertificate cert.pem [key.pem]: a client certificate for backends"),
        // Test builds only: a container and a TAKE123 directive inside it.
        #[cfg(feature = "test-hooks")]
        raw_args(c"<BastionTestSection", RSRC_CONF, testhooks::cmd_section,
              c"<BastionTestSection name ...>"),
        #[cfg(feature = "test-hooks")]
        take123(c"BastionTestItem", RSRC_CONF, testhooks::cmd_item,
              c"BastionTestItem a [b [c]] (inside <BastionTestSection>)"),
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

    // TLS
    hook!(reg, pre_config, tls::pre_config, Order::Middle);
    hook!(reg, child_init, tls::child_init, Order::Middle);
    hook!(
        reg,
        post_config,
        tls::post_config,
        Order::Middle,
        before = [c"mod_proxy.c", c"mod_http2.c"]
    );
    filter!(
        reg,
        input,
        &tls::hooks::TLS_IN,
        c"BASTION_TLS_IN",
        tls::hooks::filter_in,
        filter::ftype::CONNECTION + 5
    );
    filter!(
        reg,
        output,
        &tls::hooks::TLS_OUT,
        c"BASTION_TLS_OUT",
        tls::hooks::filter_out,
        filter::ftype::CONNECTION + 5
    );
    hook!(
        reg,
        pre_connection,
        tls::hooks::pre_connection,
        Order::Middle
    );
    hook!(
        reg,
        process_connection,
        tls::hooks::process_connection,
        Order::Middle,
        before = [c"mod_http2.c"]
    );
    hook!(
        reg,
        post_read_request,
        tls::hooks::request_check,
        Order::Middle,
        after = [c"mod_setenvif.c"]
    );
    hook!(reg, fixups, tls::hooks::fixups, Order::Middle);
    hook!(reg, ssl_conn_is_ssl, tls::hooks::conn_is_ssl, Order::Middle);
    hook!(
        reg,
        ssl_bind_outgoing,
        tls::hooks::bind_outgoing,
        Order::Middle
    );
    hook!(reg, ssl_var_lookup, tls::hooks::var_lookup, Order::Middle);
    httpd::expr::provide_ssl(reg);
    hook!(reg, http_scheme, tls::hooks::http_scheme, Order::Middle);
    hook!(reg, default_port, tls::hooks::default_port, Order::Middle);
    #[cfg(feature = "test-hooks")]
    {
        hook!(reg, handler, core::test_panic_handler, Order::First);
        hook!(reg, handler, core::test_echo_handler, Order::First);
        hook!(reg, handler, core::test_exhaustive_handler, Order::First);
        hook!(reg, post_config, core::test_post_config, Order::Middle);
        hook!(reg, handler, testhooks::sections_handler, Order::First);
        hook!(
            reg,
            ssl_add_cert_files,
            testhooks::add_cert_files,
            Order::Middle
        );
        hook!(
            reg,
            ssl_add_fallback_cert_files,
            testhooks::add_fallback_cert_files,
            Order::Middle
        );
        hook!(
            reg,
            ssl_answer_challenge,
            testhooks::answer_challenge,
            Order::Middle
        );
        hook!(reg, ssl_ocsp_prime, testhooks::ocsp_prime, Order::Middle);
        hook!(
            reg,
            ssl_ocsp_get_resp,
            testhooks::ocsp_get_resp,
            Order::Middle
        );
    }
}
