//! The module's configuration structs: one part per capability.

use crate::httpd::config::ModuleConfig;

/// Per-server (virtual host) configuration.
#[derive(Default, Debug)]
pub struct ServerConf {
    /// Module-wide settings.
    pub core: crate::core::CoreServerConf,
}

impl ModuleConfig for ServerConf {
    fn merge(base: &Self, add: &Self) -> Self {
        ServerConf { core: crate::core::CoreServerConf::merge(&base.core, &add.core) }
    }
}

/// Per-directory configuration.
#[derive(Default, Debug)]
pub struct DirConf {}

impl ModuleConfig for DirConf {
    fn merge(_base: &Self, _add: &Self) -> Self {
        DirConf {}
    }
}
