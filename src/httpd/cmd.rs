//! Directive tables: declarative, typed, with errors that name the file, line and form.
//!
//! ```ignore
//! directives! {
//!     pub static COMMANDS = [
//!         take1(c"TLSProtocol", ctx::RSRC_CONF, tls::cmd_protocol, c"TLSv1.2+|TLSv1.3+|default"),
//!         flag(c"TLSStrictSNI", ctx::RSRC_CONF, tls::cmd_strict_sni, c"on|off"),
//!     ];
//! }
//! ```
//!
//! A handler gets a [`Cmd`] and its parsed arguments and returns [`CmdResult`]. An error is
//! printed by httpd as `Syntax error on line N of FILE:` followed by `Directive: message`, and
//! `apachectl -t` fails. The help text is the "expected form" httpd prints for a wrong number
//! of arguments.

use super::ffi;
use super::server::Server;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::path::PathBuf;

/// What a directive handler returns.
pub type CmdResult = Result<(), Box<dyn std::error::Error>>;

/// Where a directive may appear (httpd's `req_override` bits).
pub mod ctx {
    use super::ffi;
    /// Server config and virtual hosts.
    pub const RSRC_CONF: i32 = ffi::RSRC_CONF as i32;
    /// Directory, Location and Files sections.
    pub const ACCESS_CONF: i32 = ffi::ACCESS_CONF as i32;
    /// Inside `<Proxy>` sections.
    pub const PROXY_CONF: i32 = ffi::PROXY_CONF as i32;
    /// `.htaccess` with `AllowOverride Options`.
    pub const OR_OPTIONS: i32 = ffi::OR_OPTIONS as i32;
    /// `.htaccess` with `AllowOverride FileInfo`.
    pub const OR_FILEINFO: i32 = ffi::OR_FILEINFO as i32;
    /// `.htaccess` with `AllowOverride AuthConfig`.
    pub const OR_AUTHCFG: i32 = ffi::OR_AUTHCFG as i32;
    /// Run while the configuration is read (before other directives of the pass).
    pub const EXEC_ON_READ: i32 = ffi::EXEC_ON_READ as i32;
}

/// The table type `directives!` builds: a NULL-terminated `command_rec` array.
#[repr(transparent)]
pub struct CommandTable<const N: usize>(pub [ffi::command_rec; N]);

// SAFETY: the table is immutable and holds only pointers to 'static strings and functions.
unsafe impl<const N: usize> Sync for CommandTable<N> {}

impl<const N: usize> CommandTable<N> {
    /// The pointer for the module record's `cmds`.
    pub const fn as_ptr(&'static self) -> *const ffi::command_rec {
        self.0.as_ptr()
    }
}

/// One directive invocation as seen by a handler.
pub struct Cmd {
    parms: *mut ffi::cmd_parms,
    mconfig: *mut c_void,
}

/// Where a contextual directive check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    /// Only in the main server config, outside every section.
    GlobalOnly,
    /// Not inside `<VirtualHost>`.
    NotInVirtualHost,
    /// Not inside `<Directory>`, `<Location>`, `<Files>` or `.htaccess`.
    NotInDirectory,
}

impl Cmd {
    /// Built by the directive trampolines only.
    ///
    /// # Safety
    /// `parms` must be the live cmd_parms of the directive being processed.
    #[doc(hidden)]
    pub unsafe fn from_raw(parms: *mut ffi::cmd_parms, mconfig: *mut c_void) -> Cmd {
        Cmd { parms, mconfig }
    }

    fn parms(&self) -> &ffi::cmd_parms {
        // SAFETY: valid for the handler's duration (from_raw contract).
        unsafe { &*self.parms }
    }

    /// The directive's name as written in the table (`"TLSProtocol"`, `"<MDomain"`).
    pub fn name(&self) -> &str {
        // SAFETY: cmd points into our static command table.
        unsafe { super::cstr((*self.parms().cmd).name) }.unwrap_or("?")
    }

    /// The file and line of the directive, for messages that refer back to it later.
    pub fn location(&self) -> (String, u32) {
        // SAFETY: directive (or config_file) are httpd's records for the line being processed.
        unsafe {
            let d = self.parms().directive;
            if !d.is_null() {
                return (
                    super::cstr((*d).filename).unwrap_or("?").to_string(),
                    (*d).line_num as u32,
                );
            }
            let f = self.parms().config_file;
            if !f.is_null() {
                return (
                    super::cstr((*f).name).unwrap_or("?").to_string(),
                    (*f).line_number,
                );
            }
        }
        ("?".into(), 0)
    }

    /// The server (main or virtual host) being configured.
    pub fn server(&self) -> Server<'static> {
        // SAFETY: cmd->server is valid for the configuration's life.
        unsafe { Server::from_raw(self.parms().server) }.expect("cmd server")
    }

    /// The configuration pool (lives as long as this configuration).
    pub fn pool(&self) -> super::Pool<'static> {
        // SAFETY: cmd->pool is the configuration pool.
        unsafe { super::Pool::from_raw(self.parms().pool) }.expect("cmd pool")
    }

    /// Whether the directive stands inside `<VirtualHost>`.
    pub fn in_virtual_host(&self) -> bool {
        self.server().is_virtual()
    }

    /// The path of the enclosing `<Directory>`/`<Location>`, if any.
    pub fn section_path(&self) -> Option<&str> {
        // SAFETY: cmd->path is NULL or a pool string.
        unsafe { super::cstr(self.parms().path) }
    }

    /// Fails unless the directive stands where `allowed` says.
    pub fn check(&self, allowed: Allowed) -> CmdResult {
        let forbidden = match allowed {
            Allowed::GlobalOnly => ffi::GLOBAL_ONLY,
            Allowed::NotInVirtualHost => ffi::NOT_IN_VIRTUALHOST,
            Allowed::NotInDirectory => ffi::NOT_IN_DIR_CONTEXT,
        };
        // SAFETY: valid cmd_parms; httpd returns NULL or a static/pool message.
        let err = unsafe { ffi::ap_check_cmd_context(self.parms, forbidden as _) };
        // SAFETY: NULL or a NUL-terminated message.
        match unsafe { super::cstr(err) } {
            None => Ok(()),
            Some(m) => Err(m.trim_start_matches(' ').to_string().into()),
        }
    }

    /// Resolves a path relative to ServerRoot, as httpd does for file names in directives.
    pub fn server_root_relative(&self, path: &str) -> PathBuf {
        let c = super::to_cstring(path);
        // SAFETY: valid pool and string; httpd returns a pool string or NULL.
        let r = unsafe { ffi::ap_server_root_relative(self.parms().temp_pool, c.as_ptr()) };
        // SAFETY: NULL or NUL-terminated.
        unsafe { super::cstr(r) }
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(path))
    }

    /// This module's per-server configuration for the server being configured.
    pub fn server_config<S: super::config::ModuleConfig>(&mut self) -> &mut S {
        // SAFETY: module_config is the server's live config vector.
        unsafe { super::config::from_vector::<S>((*self.parms().server).module_config) }
            .expect("server config")
    }

    /// This module's per-directory configuration of the section being read (for directives
    /// in `RSRC_CONF` it is the server's default directory configuration).
    pub fn dir_config<D: super::config::ModuleConfig>(&mut self) -> &mut D {
        // SAFETY: mconfig is the dir config httpd made with our create_dir_config.
        unsafe { super::config::get::<D>(self.mconfig) }.expect("dir config")
    }

    /// For `<Section ...>` containers: checks the closing `>` of the arguments, returns the
    /// arguments within, and processes the nested directives (their handlers run meanwhile).
    pub fn container_args<'b>(&self, raw: &'b str) -> Result<&'b str, Box<dyn std::error::Error>> {
        let raw = raw.trim_end();
        match raw.strip_suffix('>') {
            Some(inner) => Ok(inner.trim()),
            None => Err(format!("{}> directive missing closing '>'", self.name()).into()),
        }
    }

    /// Processes the directives nested in the current container.
    pub fn walk_nested(&mut self) -> CmdResult {
        // SAFETY: the directive node and its children belong to the config tree being
        // processed; ap_walk_config runs their handlers with the same cmd_parms.
        let err = unsafe {
            let d = self.parms().directive;
            ffi::ap_walk_config((*d).first_child, self.parms, (*self.parms).context)
        };
        // SAFETY: NULL or a message.
        match unsafe { super::cstr(err) } {
            None => Ok(()),
            Some(m) => Err(Box::new(Nested(m.to_string()))),
        }
    }
}

/// An error of a directive nested in a container: already complete, not prefixed again.
#[derive(Debug)]
struct Nested(String);

impl std::fmt::Display for Nested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Nested {}

/// Turns a handler's outcome into what httpd expects: NULL, or "Name: message" in the pool.
///
/// # Safety
/// `parms` must be valid; called only from the trampolines.
#[doc(hidden)]
pub unsafe fn finish(
    parms: *mut ffi::cmd_parms,
    f: impl FnOnce(&mut Cmd) -> CmdResult,
    mconfig: *mut c_void,
) -> *const c_char {
    // SAFETY: per this function's contract.
    let mut cmd = unsafe { Cmd::from_raw(parms, mconfig) };
    let name = cmd.name().to_string();
    let res = super::guard::guard_with(
        || Err("internal error while reading this directive (see the error log)".into()),
        || f(&mut cmd),
    );
    match res {
        Ok(()) => std::ptr::null(),
        // httpd's own context messages already start with the directive's name, and errors
        // of nested directives are complete.
        Err(e) if e.is::<Nested>() || e.to_string().starts_with(&name) => {
            cmd.pool().pstrdup(&e.to_string())
        }
        Err(e) => cmd.pool().pstrdup(&format!("{name}: {e}")),
    }
}

/// Borrows a directive argument.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string from the config pool.
#[doc(hidden)]
pub unsafe fn arg<'a>(p: *const c_char) -> Result<&'a str, Box<dyn std::error::Error>> {
    if p.is_null() {
        return Err("missing argument".into());
    }
    // SAFETY: per contract.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| "argument is not valid UTF-8".into())
}

/// Builds a directive table; entries may carry `#[cfg(...)]`. Forms: `take1`, `take2`, `take12`, `take123`, `flag`, `iterate`,
/// `raw_args` (also for `<Section` containers) and `take_argv`, each as
/// `form(c"Name", context, handler, c"expected form")`.
#[macro_export]
macro_rules! directives {
    ($vis:vis static $NAME:ident = [ $( $(#[$meta:meta])* $form:ident ( $name:expr, $ctx:expr, $handler:path, $help:expr ) ),* $(,)? ];) => {
        $vis static $NAME: $crate::httpd::cmd::CommandTable<{ [$( $(#[$meta])* stringify!($form) ),*].len() + 1 }> =
            $crate::httpd::cmd::CommandTable([
                $( $(#[$meta])* $crate::directives!(@one $form, $name, $ctx, $handler, $help), )*
                $crate::httpd::ffi::command_rec {
                    name: ::std::ptr::null(),
                    func: $crate::httpd::ffi::cmd_func { no_args: None },
                    cmd_data: ::std::ptr::null_mut(),
                    req_override: 0,
                    args_how: 0,
                    errmsg: ::std::ptr::null(),
                },
            ]);
    };
    (@rec $name:expr, $ctx:expr, $how:ident, $func:expr, $help:expr) => {
        $crate::httpd::ffi::command_rec {
            name: $name.as_ptr(),
            func: $func,
            cmd_data: ::std::ptr::null_mut(),
            req_override: $ctx,
            args_how: $crate::httpd::ffi::$how,
            errmsg: $help.as_ptr(),
        }
    };
    (@one take1, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, a: *const ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: httpd passes live cmd_parms and a pool string.
            unsafe { $crate::httpd::cmd::finish(p, |c| $h(c, $crate::httpd::cmd::arg(a)?), m) }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_TAKE1, $crate::httpd::ffi::cmd_func { take1: Some(t) }, $help)
    }};
    (@one iterate, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, a: *const ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: as take1.
            unsafe { $crate::httpd::cmd::finish(p, |c| $h(c, $crate::httpd::cmd::arg(a)?), m) }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_ITERATE, $crate::httpd::ffi::cmd_func { take1: Some(t) }, $help)
    }};
    (@one raw_args, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, a: *const ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: as take1.
            unsafe { $crate::httpd::cmd::finish(p, |c| $h(c, $crate::httpd::cmd::arg(a)?), m) }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_RAW_ARGS, $crate::httpd::ffi::cmd_func { raw_args: Some(t) }, $help)
    }};
    (@one take2, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, a: *const ::std::os::raw::c_char, b: *const ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: as take1.
            unsafe { $crate::httpd::cmd::finish(p, |c| $h(c, $crate::httpd::cmd::arg(a)?, $crate::httpd::cmd::arg(b)?), m) }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_TAKE2, $crate::httpd::ffi::cmd_func { take2: Some(t) }, $help)
    }};
    (@one take12, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, a: *const ::std::os::raw::c_char, b: *const ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: as take1; the optional argument is NULL when absent.
            unsafe { $crate::httpd::cmd::finish(p, |c| $h(c, $crate::httpd::cmd::arg(a)?, $crate::httpd::cmd::arg(b).ok()), m) }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_TAKE12, $crate::httpd::ffi::cmd_func { take2: Some(t) }, $help)
    }};
    (@one take123, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, a: *const ::std::os::raw::c_char, b: *const ::std::os::raw::c_char, d: *const ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: as take12.
            unsafe { $crate::httpd::cmd::finish(p, |c| $h(c, $crate::httpd::cmd::arg(a)?, $crate::httpd::cmd::arg(b).ok(), $crate::httpd::cmd::arg(d).ok()), m) }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_TAKE123, $crate::httpd::ffi::cmd_func { take3: Some(t) }, $help)
    }};
    (@one flag, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, on: ::std::os::raw::c_int) -> *const ::std::os::raw::c_char {
            // SAFETY: httpd passes live cmd_parms.
            unsafe { $crate::httpd::cmd::finish(p, |c| $h(c, on != 0), m) }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_FLAG, $crate::httpd::ffi::cmd_func { flag: Some(t) }, $help)
    }};
    (@one take_argv, $name:expr, $ctx:expr, $h:path, $help:expr) => {{
        unsafe extern "C" fn t(p: *mut $crate::httpd::ffi::cmd_parms, m: *mut ::std::ffi::c_void, argc: ::std::os::raw::c_int, argv: *const *mut ::std::os::raw::c_char) -> *const ::std::os::raw::c_char {
            // SAFETY: httpd passes argc pool strings in argv.
            unsafe {
                $crate::httpd::cmd::finish(p, |c| {
                    let mut v: ::std::vec::Vec<&str> = ::std::vec::Vec::with_capacity(argc as usize);
                    for i in 0..argc.max(0) as usize {
                        v.push($crate::httpd::cmd::arg(*argv.add(i))?);
                    }
                    $h(c, &v)
                }, m)
            }
        }
        $crate::directives!(@rec $name, $ctx, cmd_how_TAKE_ARGV, $crate::httpd::ffi::cmd_func { take_argv: Some(t) }, $help)
    }};
}
