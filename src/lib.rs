//! mod_bastion: memory-safe TLS, managed certificates and transparent data encryption for
//! Apache httpd, in one module.
//!
//! This file is the one place that wires the parts: the module record, the directive table
//! and the hooks. The glue for each capability lives in its own module (`core`, `tls`, ...);
//! the safe face of httpd is [`httpd`]; the engines are the `bastion-*` crates.

pub mod httpd;

mod config;
mod core;
mod fcgi;
mod md;
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
        // Managed domains (mod_md's directives)
        take_argv(c"MDomain", RSRC_CONF, md::conf::cmd_mdomain,
              c"MDomain name... [auto|manual]: a managed domain (its names share one certificate)"),
        raw_args(c"<MDomain", RSRC_CONF, md::conf::cmd_mdomain_section,
              c"<MDomain name... [auto|manual]>: a managed domain with its own settings"),
        take_argv(c"MDMember", RSRC_CONF, md::conf::cmd_members,
              c"MDMember name: another name of the <MDomain>"),
        take_argv(c"MDMembers", RSRC_CONF, md::conf::cmd_members,
              c"MDMembers name...|auto|manual: names of the <MDomain>, or whether virtual host names join"),
        take_argv(c"MDCertificateAuthority", RSRC_CONF, md::conf::cmd_ca,
              c"MDCertificateAuthority url|letsencrypt|letsencrypt-test|buypass|buypass-test ..."),
        take1(c"MDCertificateAgreement", RSRC_CONF, md::conf::cmd_agreement,
              c"MDCertificateAgreement accepted: you accept the CA's terms of service"),
        take1(c"MDContactEmail", RSRC_CONF, md::conf::cmd_contact,
              c"MDContactEmail address: the ACME account's contact (default ServerAdmin)"),
        take1(c"MDRenewMode", RSRC_CONF, md::conf::cmd_renew_mode,
              c"MDRenewMode auto|always|manual"),
        take1(c"MDDriveMode", RSRC_CONF, md::conf::cmd_renew_mode,
              c"MDDriveMode auto|always|manual (old name of MDRenewMode)"),
        take1(c"MDRenewWindow", RSRC_CONF, md::conf::cmd_renew_window,
              c"MDRenewWindow duration|percent: renew this long before expiry (default 33%)"),
        take1(c"MDWarnWindow", RSRC_CONF, md::conf::cmd_warn_window,
              c"MDWarnWindow duration|percent: warn this long before expiry (default 10%)"),
        take_argv(c"MDPrivateKeys", RSRC_CONF, md::conf::cmd_private_keys,
              c"MDPrivateKeys RSA [bits]|secp256r1|secp384r1|... (one certificate per key type)"),
        take_argv(c"MDCAChallenges", RSRC_CONF, md::conf::cmd_challenges,
              c"MDCAChallenges http-01|tls-alpn-01|dns-01 ...: the challenge types to use"),
        take1(c"MDRequireHttps", RSRC_CONF, md::conf::cmd_require_https,
              c"MDRequireHttps off|temporary|permanent"),
        take1(c"MDProfile", RSRC_CONF, md::conf::cmd_profile,
              c"MDProfile name: the ACME certificate profile to ask for"),
        take_argv(c"MDExternalAccountBinding", RSRC_CONF, md::conf::cmd_eab,
              c"MDExternalAccountBinding key-id hmac-base64|none"),
        flag(c"MDRenewViaARI", RSRC_CONF, md::conf::cmd_ari,
              c"MDRenewViaARI on|off: follow the CA's renewal information (default on)"),
        flag(c"MDMustStaple", RSRC_CONF, md::conf::cmd_must_staple,
              c"MDMustStaple on|off"),
        take1(c"MDChallengeDns01", RSRC_CONF, md::conf::cmd_dns01,
              c"MDChallengeDns01 command: sets up and tears down dns-01 TXT records"),
        take1(c"MDCertificateFile", RSRC_CONF, md::conf::cmd_cert_file,
              c"MDCertificateFile file.pem: a static certificate for the <MDomain>"),
        take1(c"MDCertificateKeyFile", RSRC_CONF, md::conf::cmd_key_file,
              c"MDCertificateKeyFile file.pem: the key of MDCertificateFile"),
        take1(c"MDStoreDir", RSRC_CONF, md::conf::cmd_store_dir,
              c"MDStoreDir path: the store (default md under ServerRoot)"),
        take_argv(c"MDPortMap", RSRC_CONF, md::conf::cmd_port_map,
              c"MDPortMap 80:port 443:port: the local ports the public 80 and 443 reach"),
        take1(c"MDCACertificateFile", RSRC_CONF, md::conf::cmd_ca_file,
              c"MDCACertificateFile file.pem: the root to trust for the CA's https"),
        take1(c"MDRetryDelay", RSRC_CONF, md::conf::cmd_retry_delay,
              c"MDRetryDelay duration: the first wait after an error (doubles; default 30s)"),
        take1(c"MDCheckInterval", RSRC_CONF, md::conf::cmd_check_interval,
              c"MDCheckInterval duration: how often certificates are checked (default 12h)"),
        take1(c"MDInitialDelay", RSRC_CONF, md::conf::cmd_initial_delay,
              c"MDInitialDelay duration: wait this long after start before the first check"),
        take1(c"MDActivationDelay", RSRC_CONF, md::conf::cmd_activation_delay,
              c"MDActivationDelay duration: serve a new certificate only this long after its notBefore (default 0)"),
        take1(c"MDRetryFailover", RSRC_CONF, md::conf::cmd_retry_failover,
              c"MDRetryFailover number: errors before the next MDCertificateAuthority is tried (default 13)"),
        take1(c"MDChallengeDns01Version", RSRC_CONF, md::conf::cmd_dns01_version,
              c"MDChallengeDns01Version 1|2: 2 passes the TXT value to the teardown call too (default 1)"),
        take1(c"MDMessageCmd", RSRC_CONF, md::conf::cmd_message_cmd,
              c"MDMessageCmd command: run with (event, domain) on renewed/expiring/errored"),
        take1(c"MDNotifyCmd", RSRC_CONF, md::conf::cmd_notify_cmd,
              c"MDNotifyCmd command: run with the domain name once a certificate is renewed"),
        flag(c"MDServerStatus", RSRC_CONF, md::conf::cmd_server_status,
              c"MDServerStatus on|off: the section in mod_status (default on)"),
        flag(c"MDCertificateStatus", RSRC_CONF, md::conf::cmd_certificate_status,
              c"MDCertificateStatus on|off: /.httpd/certificate-status (default on)"),
        flag(c"MDStapling", RSRC_CONF, md::conf::cmd_stapling,
              c"MDStapling on|off: OCSP stapling of managed domains (default off)"),
        flag(c"MDStapleOthers", RSRC_CONF, md::conf::cmd_staple_others,
              c"MDStapleOthers on|off: also staple certificates not managed (default on)"),
        take1(c"MDStaplingKeepResponse", RSRC_CONF, md::conf::cmd_stapling_keep,
              c"MDStaplingKeepResponse duration: how long unused OCSP responses stay in the store (default 7d)"),
        take1(c"MDStaplingRenewWindow", RSRC_CONF, md::conf::cmd_stapling_renew_window,
              c"MDStaplingRenewWindow duration|N%: fetch a new OCSP response this long before the current one expires (default 33%)"),
        // Encrypted FastCGI (mod_encrypt's directives, and what it lacked)
        take_argv(c"FastCgiExternalServer", RSRC_CONF, fcgi::conf::cmd_external_server,
              c"FastCgiExternalServer path -host host:port|-socket path [-masterkeyserver URL] [-datakeyserver URL] [-appConnTimeout n] [-idle-timeout n] [-pass-header name] [-flush]"),
        flag(c"FastCgiEncrypt", RSRC_CONF, fcgi::conf::cmd_encrypt,
              c"FastCgiEncrypt On|Off: encrypt request bodies for the application (default On)"),
        flag(c"FastCgiDecrypt", RSRC_CONF, fcgi::conf::cmd_decrypt,
              c"FastCgiDecrypt On|Off: decrypt the application's responses (default On)"),
        iterate(c"FastCgiMemcachedServer", RSRC_CONF, fcgi::conf::cmd_memcached,
              c"FastCgiMemcachedServer host:port|none: memcached for wrapped keys (default 127.0.0.1:11211)"),
        take1(c"FastCgiUserName", RSRC_CONF, fcgi::conf::cmd_username,
              c"FastCgiUserName name: the module's account at the key servers"),
        take1(c"FastCgiPassword", RSRC_CONF, fcgi::conf::cmd_password,
              c"FastCgiPassword password: the account's password"),
        take1(c"FastCgiLogpath", RSRC_CONF, fcgi::conf::cmd_logpath,
              c"FastCgiLogpath file: audit log of key operations (one JSON line each)"),
        take_argv(c"FastCgiEncryptKeyScope", RSRC_CONF, fcgi::conf::cmd_scope,
              c"FastCgiEncryptKeyScope account|user|header NAME|env NAME: whose data key a request uses"),
        take1(c"FastCgiCipher", RSRC_CONF, fcgi::conf::cmd_cipher,
              c"FastCgiCipher aes-256-ctr|aes-256-gcm: the cipher of new objects (default aes-256-ctr)"),
        take1(c"FastCgiKeyServerCA", RSRC_CONF, fcgi::conf::cmd_ca,
              c"FastCgiKeyServerCA file.pem: the CA the key servers' certificates are checked against"),
        take1(c"FastCgiKeyCacheTTL", RSRC_CONF, fcgi::conf::cmd_cache_ttl,
              c"FastCgiKeyCacheTTL seconds: how long keys stay cached (default 300)"),
        take1(c"FastCgiKeyServerTimeout", RSRC_CONF, fcgi::conf::cmd_key_timeout,
              c"FastCgiKeyServerTimeout seconds: timeout of one key-server request (default 5)"),
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

    // Managed domains: the store and fallbacks are ready before any TLS module asks.
    hook!(reg, check_config, md::check_config, Order::Middle);
    hook!(reg, post_config, md::post_config, Order::First);
    hook!(reg, post_config, md::ocsp::post_config, Order::First);
    hook!(reg, ssl_ocsp_prime, md::ocsp::prime, Order::Middle);
    hook!(reg, ssl_ocsp_get_resp, md::ocsp::get_resp, Order::Middle);
    hook!(reg, post_read_request, md::http_challenge, Order::First);
    hook!(
        reg,
        post_read_request,
        md::https::require_https,
        Order::Middle
    );
    hook!(reg, ssl_add_cert_files, md::add_cert_files, Order::Middle);
    hook!(
        reg,
        ssl_add_fallback_cert_files,
        md::add_fallback_cert_files,
        Order::Middle
    );
    hook!(
        reg,
        ssl_answer_challenge,
        md::answer_challenge,
        Order::Middle
    );
    hook!(reg, pre_connection, md::pre_connection, Order::First);
    hook!(reg, protocol_propose, md::propose_acme_tls, Order::Middle);
    hook!(reg, protocol_switch, md::switch_acme_tls, Order::Middle);
    hook!(reg, handler, md::pages::handler, Order::Middle);
    hook!(reg, status, md::pages::server_status, Order::Middle);

    // Encrypted FastCGI
    hook!(reg, check_config, fcgi::check_config, Order::Middle);
    hook!(reg, post_config, fcgi::post_config, Order::Middle);
    hook!(reg, fixups, fcgi::fixups, Order::Middle);
    hook!(reg, handler, fcgi::handler, Order::Middle);

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
