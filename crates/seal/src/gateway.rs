//! The policy of the encrypting FastCGI gateway (`encrypt-script`), free of
//! httpd: directive values, which key a request uses, which request headers
//! reach the application, how the application's response headers are
//! rewritten for the decrypted body, and client `Range` requests on it.
//!
//! The glue in the module does the I/O and asks this module what to do.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

/// Where a FastCGI application listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAddress {
    /// `-host host:port`
    Tcp(String),
    /// `-socket path`
    Unix(PathBuf),
}

impl std::fmt::Display for AppAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppAddress::Tcp(a) => write!(f, "{a}"),
            AppAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One `FastCgiExternalServer` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalServer {
    /// The filename (prefix) requests are matched against.
    pub path: String,
    /// The application's address.
    pub address: AppAddress,
    /// `-masterkeyserver`: base URL of the master key server.
    pub master_key_server: Option<String>,
    /// `-datakeyserver`: base URL of the data key server.
    pub data_key_server: Option<String>,
    /// `-appConnTimeout n`: connect timeout (0 = the OS default).
    pub connect_timeout: Duration,
    /// `-idle-timeout n`: longest wait for the application (default 30 s).
    pub idle_timeout: Duration,
    /// `-pass-header name`: request headers passed as `HTTP_*` even when CGI
    /// would hide them (for example `Authorization`).
    pub pass_headers: Vec<String>,
    /// `-flush`: flush every piece of the response to the client at once.
    pub flush: bool,
}

/// The expected form of `FastCgiExternalServer`, for error messages.
pub const EXTERNAL_SERVER_FORM: &str = "FastCgiExternalServer path -host host:port|-socket path \
[-masterkeyserver URL] [-datakeyserver URL] [-appConnTimeout n] [-idle-timeout n] \
[-pass-header name] [-flush]";

/// Default `-idle-timeout` (mod_fastcgi's).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Turns a key server argument into an `https://host[:port]` base URL.
/// A bare `host[:port]` (as in mod_encrypt's examples) means HTTPS; plain
/// `http://` is refused, because keys never travel in the clear.
pub fn key_server_url(arg: &str) -> Result<String, String> {
    if arg.starts_with("http://") {
        return Err(format!(
            "{arg:?}: key servers are reached over HTTPS only (use https://)"
        ));
    }
    let url = if arg.starts_with("https://") {
        arg.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", arg.trim_end_matches('/'))
    };
    let rest = &url["https://".len()..];
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "{arg:?}: expected https://host[:port] or host[:port]"
        ));
    }
    Ok(url)
}

fn seconds(opt: &str, v: Option<&&str>) -> Result<Duration, String> {
    let v = v.ok_or_else(|| format!("{opt} needs a number of seconds"))?;
    v.parse::<u64>()
        .ok()
        .filter(|&n| n <= 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{opt} {v:?}: expected seconds (0-86400)"))
}

impl ExternalServer {
    /// Parses the arguments of one `FastCgiExternalServer` line (the path
    /// first, already made absolute by the caller).
    pub fn parse(path: &str, args: &[&str]) -> Result<Self, String> {
        let mut address = None;
        let mut s = ExternalServer {
            path: path.trim_end_matches('/').to_string(),
            address: AppAddress::Tcp(String::new()),
            master_key_server: None,
            data_key_server: None,
            connect_timeout: Duration::ZERO,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            pass_headers: Vec::new(),
            flush: false,
        };
        if s.path.is_empty() {
            return Err("the path must not be empty".into());
        }
        let mut it = args.iter();
        while let Some(&opt) = it.next() {
            match opt {
                "-host" => {
                    let v = it.next().ok_or("-host needs host:port")?;
                    match v.rsplit_once(':') {
                        Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {}
                        _ => return Err(format!("-host {v:?}: expected host:port")),
                    }
                    if address.replace(AppAddress::Tcp(v.to_string())).is_some() {
                        return Err("give either -host or -socket, once".into());
                    }
                }
                "-socket" => {
                    let v = it.next().ok_or("-socket needs a path")?;
                    if address
                        .replace(AppAddress::Unix(PathBuf::from(v)))
                        .is_some()
                    {
                        return Err("give either -host or -socket, once".into());
                    }
                }
                "-masterkeyserver" => {
                    let v = it.next().ok_or("-masterkeyserver needs a URL")?;
                    s.master_key_server = Some(key_server_url(v)?);
                }
                "-datakeyserver" => {
                    let v = it.next().ok_or("-datakeyserver needs a URL")?;
                    s.data_key_server = Some(key_server_url(v)?);
                }
                "-appConnTimeout" => s.connect_timeout = seconds(opt, it.next())?,
                "-idle-timeout" => {
                    s.idle_timeout = seconds(opt, it.next())?;
                    if s.idle_timeout.is_zero() {
                        return Err("-idle-timeout must be at least 1 second".into());
                    }
                }
                "-pass-header" => {
                    let v = it.next().ok_or("-pass-header needs a header name")?;
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        return Err(format!("-pass-header {v:?}: not a header name"));
                    }
                    s.pass_headers.push(v.to_string());
                }
                "-flush" => s.flush = true,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        s.address = address.ok_or("-host host:port or -socket path is required")?;
        Ok(s)
    }

    /// Whether a request for `filename` goes to this application: the path
    /// itself or anything below it.
    pub fn matches(&self, filename: &str) -> bool {
        filename == self.path
            || filename
                .strip_prefix(&self.path)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Which data key a request's body is encrypted under.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KeyScope {
    /// The module's account (`FastCgiUserName`): one key for the site, as in
    /// mod_encrypt.
    #[default]
    Account,
    /// The authenticated user (`REMOTE_USER`).
    User,
    /// The value of a request header.
    Header(String),
    /// The value of a request environment variable (e.g. set by SetEnvIf or
    /// mod_rewrite).
    Env(String),
}

/// The expected form of `FastCgiEncryptKeyScope`.
pub const KEY_SCOPE_FORM: &str = "FastCgiEncryptKeyScope account|user|header NAME|env NAME";

impl KeyScope {
    /// Parses the directive's arguments.
    pub fn parse(args: &[&str]) -> Result<Self, String> {
        match args {
            [a] if a.eq_ignore_ascii_case("account") => Ok(KeyScope::Account),
            [a] if a.eq_ignore_ascii_case("user") => Ok(KeyScope::User),
            [a, n] if a.eq_ignore_ascii_case("header") && !n.is_empty() => {
                Ok(KeyScope::Header(n.to_string()))
            }
            [a, n] if a.eq_ignore_ascii_case("env") && !n.is_empty() => {
                Ok(KeyScope::Env(n.to_string()))
            }
            _ => Err(format!("expected {KEY_SCOPE_FORM}")),
        }
    }

    /// Describes where the scope comes from, for log lines.
    pub fn describe(&self) -> String {
        match self {
            KeyScope::Account => "the account".into(),
            KeyScope::User => "REMOTE_USER".into(),
            KeyScope::Header(h) => format!("request header {h}"),
            KeyScope::Env(e) => format!("variable {e}"),
        }
    }
}

/// CGI variables never passed to the application while the body is
/// encrypted or decrypted: their values describe the plaintext or would ask
/// the application for a part of the stored object, which the gateway cannot
/// decrypt on its own (ranges are served by the gateway instead).
pub const HIDDEN_PARAMS: &[&str] = &[
    "HTTP_RANGE",
    "HTTP_IF_RANGE",
    "HTTP_CONTENT_MD5",
    "HTTP_DIGEST",
    "HTTP_CONTENT_DIGEST",
    "HTTP_REPR_DIGEST",
    "HTTP_TRANSFER_ENCODING",
];

/// Response headers of the application dropped when the body is decrypted:
/// they describe the ciphertext, the transfer, or a part of it.
pub const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "Content-Length",
    "Content-MD5",
    "Content-Range",
    "Accept-Ranges",
    "Digest",
    "Content-Digest",
    "Repr-Digest",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
];

/// Response headers of the application dropped in any case (hop by hop).
pub const HOP_BY_HOP: &[&str] = &["Transfer-Encoding", "Connection", "Keep-Alive"];

/// A client's `Range` request, resolved against a body length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send the whole body with 200 (no Range, several ranges, or a Range
    /// the gateway does not serve).
    Full,
    /// Send these bytes with 206 and `Content-Range: bytes a-b/len`.
    Partial(Range<u64>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Resolves a `Range` header against a body of `len` bytes (RFC 9110 §14).
/// One byte range is served; several ranges, other units and syntax errors
/// give the whole body, which RFC 9110 allows.
pub fn resolve_range(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(h) = header else {
        return RangeAnswer::Full;
    };
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix range: the last n bytes.
        return match num(b) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) if len > 0 => RangeAnswer::Partial(len.saturating_sub(n)..len),
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Full,
        };
    }
    let Some(start) = num(a) else {
        return RangeAnswer::Full;
    };
    let end = if b.is_empty() {
        len
    } else {
        match num(b) {
            Some(e) if e >= start => e.saturating_add(1).min(len),
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial(start..end)
}

/// Passes through a window of a byte stream: skips the bytes before
/// `range.start` and stops after `range.end`.
#[derive(Debug, Clone)]
pub struct Window {
    pos: u64,
    range: Range<u64>,
}

impl Window {
    /// A window over `range` of the stream.
    pub fn new(range: Range<u64>) -> Self {
        Window { pos: 0, range }
    }

    /// The part of `chunk` (the next bytes of the stream) inside the window.
    pub fn take<'a>(&mut self, chunk: &'a [u8]) -> &'a [u8] {
        let start = self.pos;
        let end = start + chunk.len() as u64;
        self.pos = end;
        let from = self.range.start.clamp(start, end) - start;
        let to = self.range.end.clamp(start, end) - start;
        &chunk[from as usize..to.max(from) as usize]
    }

    /// True once every byte of the window has gone by.
    pub fn done(&self) -> bool {
        self.pos >= self.range.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_server_forms() {
        let s = ExternalServer::parse(
            "/var/www/html/myFCGI/",
            &[
                "-host",
                "192.168.0.1:3000",
                "-masterkeyserver",
                "www.masterkeyserver.com",
                "-datakeyserver",
                "https://keys.example:8443/",
                "-idle-timeout",
                "5",
                "-pass-header",
                "Authorization",
                "-flush",
            ],
        )
        .unwrap();
        assert_eq!(s.path, "/var/www/html/myFCGI");
        assert_eq!(s.address, AppAddress::Tcp("192.168.0.1:3000".into()));
        assert_eq!(
            s.master_key_server.as_deref(),
            Some("https://www.masterkeyserver.com")
        );
        assert_eq!(
            s.data_key_server.as_deref(),
            Some("https://keys.example:8443")
        );
        assert_eq!(s.idle_timeout, Duration::from_secs(5));
        assert_eq!(s.pass_headers, vec!["Authorization".to_string()]);
        assert!(s.flush);
        assert!(s.matches("/var/www/html/myFCGI"));
        assert!(s.matches("/var/www/html/myFCGI/a/b"));
        assert!(!s.matches("/var/www/html/myFCGIx"));

        let u = ExternalServer::parse("/a", &["-socket", "/run/app.sock"]).unwrap();
        assert_eq!(u.address, AppAddress::Unix("/run/app.sock".into()));

        for bad in [
            &[][..],
            &["-host"],
            &["-host", "nohostport"],
            &["-host", "h:0"],
            &["-host", "h:1", "-socket", "/s"],
            &["-host", "h:1", "-masterkeyserver", "http://plain"],
            &["-host", "h:1", "-idle-timeout", "x"],
            &["-host", "h:1", "-bogus"],
        ] {
            assert!(ExternalServer::parse("/a", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_scopes() {
        assert_eq!(KeyScope::parse(&["account"]), Ok(KeyScope::Account));
        assert_eq!(KeyScope::parse(&["User"]), Ok(KeyScope::User));
        assert_eq!(
            KeyScope::parse(&["header", "X-Tenant"]),
            Ok(KeyScope::Header("X-Tenant".into()))
        );
        assert_eq!(
            KeyScope::parse(&["env", "TENANT"]),
            Ok(KeyScope::Env("TENANT".into()))
        );
        assert!(KeyScope::parse(&["header"]).is_err());
        assert!(KeyScope::parse(&["ip"]).is_err());
    }

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(resolve_range(None, 10), Full);
        assert_eq!(resolve_range(Some("bytes=0-3"), 10), Partial(0..4));
        assert_eq!(resolve_range(Some("bytes=5-"), 10), Partial(5..10));
        assert_eq!(resolve_range(Some("bytes=-3"), 10), Partial(7..10));
        assert_eq!(resolve_range(Some("bytes=-30"), 10), Partial(0..10));
        assert_eq!(resolve_range(Some("bytes=8-100"), 10), Partial(8..10));
        assert_eq!(resolve_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(resolve_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(resolve_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(resolve_range(Some("items=0-1"), 10), Full);
        assert_eq!(resolve_range(Some("bytes=4-2"), 10), Full);
        assert_eq!(resolve_range(Some("bytes=0-0"), 0), Unsatisfiable);
    }

    #[test]
    fn window() {
        let mut w = Window::new(3..7);
        assert_eq!(w.take(b"ab"), b"");
        assert_eq!(w.take(b"cdef"), b"def");
        assert!(!w.done());
        assert_eq!(w.take(b"ghij"), b"g");
        assert!(w.done());
        assert_eq!(w.take(b"kl"), b"");
    }
}
