//! `MDRequireHttps`: plain-http requests for a managed domain's names are redirected to
//! https (except `/.well-known/`, where ACME and other validations live), and `permanent`
//! adds an HSTS header to https responses, as mod_md does; both only once the domain has
//! a certificate.

use super::{covers, has_real_cert, md_for, runtime};
use crate::httpd::{Request, Status, ssl, status};
use bastion_md::model::RequireHttps;

/// The HSTS header mod_md sets for `MDRequireHttps permanent` (half a year).
const HSTS: (&str, &str) = ("Strict-Transport-Security", "max-age=15768000");

/// The redirect status: GET (and HEAD) get the classic codes, other methods the ones that
/// keep method and body (307/308).
fn redirect_status(mode: RequireHttps, get: bool) -> Status {
    match (get, mode == RequireHttps::Permanent) {
        (true, true) => status::MOVED_PERMANENTLY,
        (true, false) => status::FOUND,
        (false, true) => status::PERMANENT_REDIRECT,
        (false, false) => status::TEMPORARY_REDIRECT,
    }
}

/// The https URL for a request target: the default https port (as mod_md: with
/// `MDPortMap` the server is reached on 443 from outside), path and query as sent.
fn https_location(host: &str, target: &str, path: &str, query: Option<&str>) -> String {
    // An origin-form target is kept byte for byte; an absolute-form one is rebuilt.
    if target.starts_with('/') {
        return format!("https://{host}{target}");
    }
    match query {
        Some(q) => format!("https://{host}{path}?{q}"),
        None => format!("https://{host}{path}"),
    }
}

/// post_read_request, after the http-01 answers.
pub fn require_https(r: &mut Request) -> Status {
    if !r.is_main() || r.uri().starts_with("/.well-known/") {
        return status::DECLINED;
    }
    let Some(rt) = runtime() else {
        return status::DECLINED;
    };
    // The request's virtual host must belong to a managed domain, and the name asked for
    // must be one of its names (mod_md: `sc->assigned` and `md_get_for_domain`).
    if md_for(&rt, &r.server()).is_none() {
        return status::DECLINED;
    }
    let Some(host) = r.hostname().map(str::to_ascii_lowercase) else {
        return status::DECLINED;
    };
    let Some(md) = rt.mds.iter().find(|m| covers(m, &host)) else {
        return status::DECLINED;
    };
    let mode = md.require_https;
    // Unlike mod_md, nobody is sent to https before it can serve them: until the first
    // certificate is there, https answers 503 with a self-signed certificate.
    if mode == RequireHttps::Off || !has_real_cert(&rt, md) {
        return status::DECLINED;
    }
    if ssl::conn_is_ssl(&r.conn()) {
        if mode == RequireHttps::Permanent
            && r.headers_out().get(HSTS.0).is_none()
            && r.err_headers_out().get(HSTS.0).is_none()
        {
            // err_headers_out: also on error responses, which are https responses too.
            r.err_headers_out().set(HSTS.0, HSTS.1);
        }
        return status::DECLINED;
    }
    let loc = https_location(&host, r.unparsed_uri(), r.uri(), r.args());
    r.err_headers_out().set("Location", &loc);
    redirect_status(mode, matches!(r.method(), "GET" | "HEAD"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_by_method_and_mode() {
        assert_eq!(redirect_status(RequireHttps::Permanent, true), 301);
        assert_eq!(redirect_status(RequireHttps::Temporary, true), 302);
        assert_eq!(redirect_status(RequireHttps::Permanent, false), 308);
        assert_eq!(redirect_status(RequireHttps::Temporary, false), 307);
    }

    #[test]
    fn location_keeps_the_target() {
        assert_eq!(
            https_location("a.example", "/x%20y?q=1", "/x%20y", Some("q=1")),
            "https://a.example/x%20y?q=1"
        );
        assert_eq!(
            https_location("a.example", "http://a.example/p", "/p", None),
            "https://a.example/p"
        );
    }
}
