//! Test builds only (`--features test-hooks`): an SSL provider, like mod_md, that answers
//! httpd's SSL hooks from files in `$BASTION_TEST_PROVIDER_DIR`, so the end-to-end tests can
//! drive the TLS filter's consumer side:
//! - `<ServerName>.cert.pem`/`.key.pem`: offered by `ssl_add_cert_files`;
//! - `<ServerName>.fallback.cert.pem`/`.key.pem`: offered by `ssl_add_fallback_cert_files`;
//! - `challenge.<name>.cert.pem`/`.key.pem`: the answer to a tls-alpn-01 challenge for `<name>`;
//! - `ocsp.der` and `ocsp.for`: the OCSP response for the certificate file named in `ocsp.for`.

use crate::httpd::{Conn, Pool, Server};
use std::path::PathBuf;

fn dir() -> Option<PathBuf> {
    std::env::var_os("BASTION_TEST_PROVIDER_DIR").map(PathBuf::from)
}

fn pair(prefix: &str) -> Vec<(String, String)> {
    let Some(d) = dir() else { return Vec::new() };
    let (c, k) = (
        d.join(format!("{prefix}.cert.pem")),
        d.join(format!("{prefix}.key.pem")),
    );
    if c.is_file() && k.is_file() {
        vec![(
            c.to_string_lossy().into_owned(),
            k.to_string_lossy().into_owned(),
        )]
    } else {
        Vec::new()
    }
}

/// ssl_add_cert_files
pub fn add_cert_files(s: Server, _p: &Pool) -> Vec<(String, String)> {
    s.hostname().map(pair).unwrap_or_default()
}

/// ssl_add_fallback_cert_files
pub fn add_fallback_cert_files(s: Server, _p: &Pool) -> Vec<(String, String)> {
    s.hostname()
        .map(|h| pair(&format!("{h}.fallback")))
        .unwrap_or_default()
}

/// ssl_answer_challenge
pub fn answer_challenge(_c: Conn, name: &str) -> Option<(String, String)> {
    tracing::debug!("test provider: challenge for {name} (dir {:?})", dir());
    let d = dir()?;
    let cert = std::fs::read_to_string(d.join(format!("challenge.{name}.cert.pem"))).ok()?;
    let key = std::fs::read_to_string(d.join(format!("challenge.{name}.key.pem"))).ok()?;
    Some((cert, key))
}

/// ssl_ocsp_prime
pub fn ocsp_prime(_s: Server, _p: &Pool, _id: &[u8], pem: &str) -> bool {
    tracing::debug!(
        "test provider: prime ({} bytes of PEM, dir {:?})",
        pem.len(),
        dir()
    );
    dir().is_some_and(|d| d.join("ocsp.der").is_file())
        && pem.contains("BEGIN CERTIFICATE")
        && !pem.contains("PRIVATE KEY")
}

/// ssl_ocsp_get_resp: `ocsp.der` for the certificate whose id (its file path) equals the
/// content of `ocsp.for`.
pub fn ocsp_get_resp(_s: Server, _c: Conn, id: &[u8]) -> Option<Vec<u8>> {
    let d = dir()?;
    let only = std::fs::read_to_string(d.join("ocsp.for")).ok()?;
    (only.trim().as_bytes() == id).then(|| std::fs::read(d.join("ocsp.der")).ok())?
}

/// `<BastionTestSection name ...>`: records the section and reads the directives inside it.
pub fn cmd_section(cmd: &mut crate::httpd::cmd::Cmd, raw: &str) -> crate::httpd::cmd::CmdResult {
    let args = cmd.container_args(raw)?.to_string();
    if args.is_empty() {
        return Err("expected a name: <BastionTestSection name>".into());
    }
    {
        let core = &mut cmd.server_config::<crate::ServerConf>().core;
        core.test_sections.push((args, Vec::new()));
        core.test_open = Some(core.test_sections.len() - 1);
    }
    let r = cmd.walk_nested();
    cmd.server_config::<crate::ServerConf>().core.test_open = None;
    r
}

/// `BastionTestItem a [b [c]]`, only inside `<BastionTestSection>`.
pub fn cmd_item(
    cmd: &mut crate::httpd::cmd::Cmd,
    a: &str,
    b: Option<&str>,
    c: Option<&str>,
) -> crate::httpd::cmd::CmdResult {
    let core = &mut cmd.server_config::<crate::ServerConf>().core;
    let Some(i) = core.test_open else {
        return Err("only allowed inside <BastionTestSection>".into());
    };
    core.test_sections[i].1.push(
        [Some(a), b, c]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect(),
    );
    Ok(())
}

/// `SetHandler bastion-test-sections`: the sections read, one line each.
pub fn sections_handler(r: &mut crate::httpd::Request) -> crate::httpd::Status {
    if r.handler() != Some("bastion-test-sections") {
        return crate::httpd::status::DECLINED;
    }
    let conf = r.server().config::<crate::ServerConf>();
    let mut out = String::new();
    for (name, items) in &conf.core.test_sections {
        let items: Vec<String> = items.iter().map(|i| i.join(",")).collect();
        out.push_str(&format!("{name}: {}\n", items.join(" | ")));
    }
    r.set_content_type("text/plain");
    let _ = r.write(out.as_bytes());
    crate::httpd::status::OK
}
