//! Test support shared by the crates' integration tests: a real pebble (Debian package
//! `pebble`) with `pebble-challtestsrv` as its DNS (every name is 127.0.0.1), on free
//! loopback ports, and a tiny HTTP server answering http-01 from a store's
//! `challenges/` as the glue does. Fails (does not skip) when pebble is not installed.
//!
//! Include it with `#[path = ".../crates/md/tests/support/pebble.rs"] mod pebble_support;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bastion_md::Store;

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running pebble + pebble-challtestsrv; both are killed on drop.
pub struct Pebble {
    children: Vec<Child>,
    /// The ACME directory URL.
    pub dir_url: String,
    /// The root certificate (PEM file) pebble's HTTPS listener chains to.
    pub root: PathBuf,
    /// The port of the http-01 server (pebble's `httpPort`).
    pub http_port: u16,
    stop: Arc<AtomicBool>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.http_port));
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn write_tls_material(dir: &Path) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "bastion test root");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("root.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), leaf_cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    dir.join("root.pem")
}

/// Serves `/.well-known/acme-challenge/*` from the store at `base`, as the glue does.
pub fn serve_http01(listener: TcpListener, base: PathBuf, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let store = Store::open(&base).unwrap();
        for conn in listener.incoming() {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            let mut host = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("host")
                {
                    host = v.trim().split(':').next().unwrap_or("").to_string();
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let body = path
                .strip_prefix("/.well-known/acme-challenge/")
                .filter(|t| !t.contains('/'))
                .and_then(|_| bastion_md::challenge::http01_answer(&store, &host));
            let resp = match body {
                Some(b) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                    b.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    });
}

/// Waits until 127.0.0.1:`port` accepts connections, failing if a child exits.
pub fn wait_port(port: u16, what: &str, children: &mut [Child]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        for c in children.iter_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                panic!("{what} exited early with {st}");
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20s");
}

/// Starts pebble with its work files in `work`, answering http-01 from the store at
/// `store_base`.
pub fn start_pebble(work: &Path, store_base: &Path) -> Pebble {
    for bin in [PEBBLE, CHALLTESTSRV] {
        assert!(
            Path::new(bin).exists(),
            "{bin} not found: the ACME integration test needs the Debian package `pebble` \
             (apt-get install pebble)"
        );
    }
    let root = write_tls_material(work);
    let (acme, mgmt, tls, dns, cts_mgmt) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    serve_http01(listener, store_base.to_path_buf(), stop.clone());

    let config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{acme}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": work.join("cert.pem"),
            "privateKey": work.join("key.pem"),
            "httpPort": http_port,
            "tlsPort": tls,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": 7_776_000
        }
    });
    let cfg = work.join("pebble.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let log = |name: &str| std::fs::File::create(work.join(name)).unwrap();

    let mut children = Vec::new();
    children.push(
        Command::new(CHALLTESTSRV)
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{cts_mgmt}")])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::from(log("challtestsrv.log")))
            .stderr(Stdio::from(log("challtestsrv.err")))
            .spawn()
            .expect("start pebble-challtestsrv"),
    );
    children.push(
        Command::new(PEBBLE)
            .arg("-config")
            .arg(&cfg)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Every order validates afresh: tests that stop at "pending" need that.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::from(log("pebble.log")))
            .stderr(Stdio::from(log("pebble.err")))
            .spawn()
            .expect("start pebble"),
    );
    wait_port(cts_mgmt, "pebble-challtestsrv", &mut children);
    wait_port(acme, "pebble", &mut children);
    Pebble {
        children,
        dir_url: format!("https://localhost:{acme}/dir"),
        root,
        http_port,
        stop,
    }
}

/// pebble's logs in `work`, for failure messages.
pub fn report(work: &Path) -> String {
    ["pebble.log", "pebble.err"]
        .iter()
        .map(|f| std::fs::read_to_string(work.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}
