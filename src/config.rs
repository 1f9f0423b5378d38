//! The module's configuration structs: one part per capability.

use crate::httpd::config::ModuleConfig;

/// Per-server (virtual host) configuration.
#[derive(Default)]
pub struct ServerConf {
    /// Module-wide settings.
    pub core: crate::core::CoreServerConf,
    /// TLS.
    pub tls: crate::tls::conf::TlsServerConf,
    /// Encrypted FastCGI.
    pub fcgi: crate::fcgi::conf::FcgiServerConf,
    /// Managed domains (main server only).
    pub md: crate::md::conf::MdConf,
}

impl ModuleConfig for ServerConf {
    fn merge(base: &Self, add: &Self) -> Self {
        ServerConf {
            core: crate::core::CoreServerConf::merge(&base.core, &add.core),
            tls: crate::tls::conf::TlsServerConf::merge(&base.tls, &add.tls),
            fcgi: crate::fcgi::conf::FcgiServerConf::merge(&base.fcgi, &add.fcgi),
            md: base.md.clone(),
        }
    }
}

/// Per-directory configuration.
#[derive(Default, Debug)]
pub struct DirConf {
    /// TLS (`TLSOptions`).
    pub tls: crate::tls::conf::TlsDirConf,
    /// Backend TLS (`TLSProxy*`).
    pub tls_proxy: crate::tls::conf::TlsProxyConf,
}

impl ModuleConfig for DirConf {
    fn merge(base: &Self, add: &Self) -> Self {
        DirConf {
            tls: crate::tls::conf::TlsDirConf::merge(&base.tls, &add.tls),
            tls_proxy: crate::tls::conf::TlsProxyConf::merge(&base.tls_proxy, &add.tls_proxy),
        }
    }
}
