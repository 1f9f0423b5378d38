//! `bastion-tlsprobe --port P --sni NAME --ca FILE [--alpn h2,http/1.1] [--path /]`
//!
//! Connects to 127.0.0.1:P with rustls (aws-lc-rs provider, its default key-exchange order:
//! X25519MLKEM768 first), sends one HTTP/1.1 GET, and prints one JSON line with the negotiated
//! protocol, cipher suite, key-exchange group, ALPN and the response status line. Exit 1 on
//! any failure, with the reason on stderr.

#![forbid(unsafe_code)]

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn run() -> Result<String, String> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port")
        .ok_or("--port is required")?
        .parse()
        .map_err(|_| "bad --port")?;
    let sni = arg(&args, "--sni").ok_or("--sni is required")?;
    let ca = arg(&args, "--ca").ok_or("--ca is required")?;
    let path = arg(&args, "--path").unwrap_or_else(|| "/".into());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca).map_err(|e| format!("{ca}: {e}"))? {
        roots
            .add(c.map_err(|e| format!("{ca}: {e}"))?)
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if let Some(a) = arg(&args, "--alpn") {
        config.alpn_protocols = a.split(',').map(|p| p.as_bytes().to_vec()).collect();
    }
    let name = ServerName::try_from(sni.clone()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .map_err(|e| format!("handshake/write: {e}"))?;
    let mut resp = Vec::new();
    let _ = tls.read_to_end(&mut resp);
    let status = String::from_utf8_lossy(&resp)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let group = conn
        .negotiated_key_exchange_group()
        .map(|g| format!("{:?}", g.name()))
        .unwrap_or_default();
    let suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    let version = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let alpn = conn
        .alpn_protocol()
        .map(|a| String::from_utf8_lossy(a).to_string())
        .unwrap_or_default();
    Ok(format!(
        "{{\"protocol\":\"{version}\",\"cipher\":\"{suite}\",\"group\":\"{group}\",\"alpn\":\"{alpn}\",\"status\":\"{}\"}}",
        status.replace('"', "'")
    ))
}

fn main() {
    match run() {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("bastion-tlsprobe: {e}");
            std::process::exit(1);
        }
    }
}
