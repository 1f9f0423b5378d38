//! End-to-end: `KeyClient` against the real `bastion-keyserver` binary
//! (release build, prebuilt) and a real memcached on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bastion_seal::keyclient::{KeyClient, KeyClientConfig, KeyClientError};
use zeroize::Zeroizing;

const MASTER_PW: &str = "correct horse battery staple";
const MODULE_PW: &str = "module password 123";
const MEMCACHED: &str = "/usr/bin/memcached";

fn keyserver_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/bastion-keyserver");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --release -p bastion-keyserver`",
        bin.display()
    );
    bin
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "seal-kc-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Proc(Child);

impl Proc {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

struct KeyServer {
    config: PathBuf,
    ca: PathBuf,
}

impl KeyServer {
    fn new(dir: &Path) -> KeyServer {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
        let cfg = r#"listen = "127.0.0.1:0"
role = "both"
database = "ks.db"
audit_log = "ks-audit.log"
token_lifetime = 600
master_password_env = "BKS_TEST_MASTER_PW"
[tls]
certificate = "cert.pem"
key = "key.pem"
[argon2]
kek_memory_kib = 256
kek_iterations = 1
password_memory_kib = 256
password_iterations = 1
"#;
        let config = dir.join("ks.toml");
        std::fs::write(&config, cfg).unwrap();
        KeyServer {
            config,
            ca: dir.join("cert.pem"),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(keyserver_bin());
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .env("BKS_TEST_MASTER_PW", MASTER_PW);
        c
    }

    fn run(&self, args: &[&str], stdin: &str) {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn serve(&self) -> (Proc, u16) {
        let mut child = self
            .cmd(&["serve"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        (Proc(child), port)
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_memcached() -> (Proc, u16) {
    assert!(
        Path::new(MEMCACHED).exists(),
        "{MEMCACHED} is missing (apt-get install memcached)"
    );
    let port = free_port();
    let child = Command::new(MEMCACHED)
        .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
        // Needed when the tests run as root; ignored otherwise.
        .args(["-u", "root"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "memcached did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Proc(child), port)
}

/// Sends one memcached text command and returns the answer up to `END`.
fn mc_command(port: u16, cmd: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !out.ends_with(b"END\r\n") && !out.ends_with(b"ERROR\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "memcached closed: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// The value stored under `key`, if any.
fn mc_get(port: u16, key: &str) -> Option<Vec<u8>> {
    let out = mc_command(port, &format!("get {key}"));
    if out == b"END\r\n" {
        return None;
    }
    let nl = out.windows(2).position(|w| w == b"\r\n").unwrap();
    let header = String::from_utf8(out[..nl].to_vec()).unwrap();
    let len: usize = header.rsplit(' ').next().unwrap().parse().unwrap();
    Some(out[nl + 2..nl + 2 + len].to_vec())
}

/// Every key memcached holds (via `lru_crawler metadump all`).
fn mc_keys(port: u16) -> Vec<String> {
    let out = String::from_utf8(mc_command(port, "lru_crawler metadump all")).unwrap();
    out.lines()
        .filter_map(|l| l.strip_prefix("key="))
        .map(|l| {
            let enc = l.split(' ').next().unwrap();
            // Keys are URL-encoded; ours only need %XX.
            let mut k = Vec::new();
            let b = enc.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    k.push(u8::from_str_radix(&enc[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    k.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(k).unwrap()
        })
        .collect()
}

fn secret_forms(bytes: &[u8]) -> Vec<Vec<u8>> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        bytes.to_vec(),
        hex.clone().into_bytes(),
        hex.to_uppercase().into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .into_bytes(),
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(bytes)
            .into_bytes(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(bytes)
            .into_bytes(),
    ]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn config(ks: &KeyServer, port: u16, mc: Option<u16>, password: &str) -> KeyClientConfig {
    let url = format!("https://127.0.0.1:{port}");
    KeyClientConfig {
        master_url: url.clone(),
        data_url: url,
        username: "mod".into(),
        password: Zeroizing::new(password.into()),
        ca_file: Some(ks.ca.clone()),
        timeout: Duration::from_secs(5),
        memcached: mc.map(|p| format!("127.0.0.1:{p}")).into_iter().collect(),
        cache_ttl: Duration::from_secs(300),
        process_cache_capacity: 64,
    }
}

#[test]
fn keyclient_end_to_end() {
    let dir = tmpdir("e2e");
    let ks = KeyServer::new(&dir);
    ks.run(&["init"], "");
    ks.run(&["user", "add", "mod"], &format!("{MODULE_PW}\n"));
    let (mut server, port) = ks.serve();
    let (mut memcached, mc_port) = start_memcached();

    // Round trip: the newest key, then the same version explicitly.
    let kc = KeyClient::new(config(&ks, port, Some(mc_port), MODULE_PW)).unwrap();
    let (id, k1) = kc.data_key("alice", None).unwrap();
    assert_eq!((id.client(), id.version()), ("alice", 1));
    let (id2, k2) = kc.data_key("alice", Some(1)).unwrap();
    assert_eq!(id2, id);
    assert_eq!(k1.expose_secret(), k2.expose_secret());

    // A client scope that needs percent-encoding.
    let (idw, _) = kc.data_key("site/a%b", None).unwrap();
    assert_eq!(idw.client(), "site/a%b");

    // Unknown version.
    assert!(matches!(
        kc.data_key("alice", Some(99)),
        Err(KeyClientError::NotFound(_))
    ));
    // Bad client scope, rejected locally.
    assert!(matches!(
        kc.data_key("a b", None),
        Err(KeyClientError::BadClient(_))
    ));

    // memcached: wrapped key under the documented names, no plaintext.
    for name in ["menc2:dk:alice:1", "menc2:dk:alice:current"] {
        let v = mc_get(mc_port, name).unwrap_or_else(|| panic!("{name} not in memcached"));
        let rec: serde_json::Value = serde_json::from_slice(&v).unwrap();
        assert_eq!(rec["client"], "alice");
        assert_eq!(rec["version"], 1);
        assert_eq!(rec["master_key_id"], 1);
        let wrapped = base64::engine::general_purpose::STANDARD
            .decode(rec["key_encrypted_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(wrapped.len(), 48);
    }
    let keys = mc_keys(mc_port);
    assert!(keys.len() >= 4, "{keys:?}");
    for k in &keys {
        assert!(k.starts_with("menc2:dk:"), "unexpected memcached key {k}");
        let v = mc_get(mc_port, k).unwrap();
        for form in secret_forms(k1.expose_secret()) {
            assert!(!contains(&v, &form), "plaintext data key in memcached {k}");
        }
    }

    // A fresh process (cold process cache) gets the same key via memcached.
    let kc_b = KeyClient::new(config(&ks, port, Some(mc_port), MODULE_PW)).unwrap();
    let (_, kb) = kc_b.data_key("alice", None).unwrap();
    assert_eq!(kb.expose_secret(), k1.expose_secret());

    // Wrong password.
    let bad = KeyClient::new(config(&ks, port, Some(mc_port), "wrong password!")).unwrap();
    assert!(matches!(
        bad.data_key("bob", None),
        Err(KeyClientError::AuthFailed(_))
    ));
    assert!(matches!(
        bad.data_key("alice", Some(1)),
        Err(KeyClientError::AuthFailed(_))
    ));

    // memcached down: still works, from the key server.
    memcached.stop();
    let kc_c = KeyClient::new(config(&ks, port, Some(mc_port), MODULE_PW)).unwrap();
    let (_, kc1) = kc_c.data_key("alice", Some(1)).unwrap();
    assert_eq!(kc1.expose_secret(), k1.expose_secret());
    let (idc, _) = kc.data_key("carol", None).unwrap();
    assert_eq!(idc.version(), 1);

    // Key server down after caching: the process cache still serves.
    server.stop();
    let (_, again) = kc.data_key("alice", None).unwrap();
    assert_eq!(again.expose_secret(), k1.expose_secret());
    let (_, again) = kc.data_key("alice", Some(1)).unwrap();
    assert_eq!(again.expose_secret(), k1.expose_secret());

    // Caches cold and key server down: unavailable.
    let cold = KeyClient::new(config(&ks, port, Some(mc_port), MODULE_PW)).unwrap();
    assert!(matches!(
        cold.data_key("alice", Some(1)),
        Err(KeyClientError::KeyServerUnavailable(_))
    ));
    assert!(matches!(
        kc.data_key("dave", None),
        Err(KeyClientError::KeyServerUnavailable(_))
    ));

    let _ = std::fs::remove_dir_all(&dir);
}
