//! The real `a2md` binary against a temporary store: what a user types, what it prints,
//! its exit codes and the files it leaves.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bastion_md::Store;
use bastion_md::store::{Group, Job};
use serde_json::Value;

static N: AtomicU64 = AtomicU64::new(0);

struct Tmp(PathBuf);

impl Tmp {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!(
            "a2md-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }

    fn store(&self) -> PathBuf {
        self.0.join("md")
    }

    fn a2md(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_a2md"))
            .arg("-d")
            .arg(self.store())
            .args(args)
            .output()
            .expect("run a2md")
    }

    /// Runs a2md, expects exit 0, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.a2md(args);
        assert!(
            o.status.success(),
            "a2md {args:?} failed ({}):\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a2md, expects exit 1, returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.a2md(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "a2md {args:?} should fail:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    fn md_json(&self, name: &str) -> Value {
        let p = self.store().join("domains").join(name).join("md.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().to_string();
        assert!(
            !n.contains(".tmp."),
            "temporary file left: {}",
            e.path().display()
        );
        if e.path().is_dir() {
            no_temp_files(&e.path());
        }
    }
}

#[test]
fn add_list_update_with_store_files() {
    let t = Tmp::new();
    let out = t.ok(&["add", "Example.org", "www.example.org"]);
    assert!(out.starts_with("NAME "), "{out}");
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("example.org ") && l.contains("incomplete")),
        "{out}"
    );
    let base = t.store();
    assert_eq!(mode(&base.join("md_store.json")), 0o600);
    assert_eq!(mode(&base.join("domains")), 0o700);
    assert_eq!(mode(&base.join("domains/example.org")), 0o700);
    assert_eq!(mode(&base.join("domains/example.org/md.json")), 0o600);
    let md = t.md_json("example.org");
    assert_eq!(
        md["domains"],
        serde_json::json!(["example.org", "www.example.org"])
    );
    assert_eq!(
        md["ca"]["urls"][0],
        "https://acme-v02.api.letsencrypt.org/directory"
    );

    // -a and -t on add.
    t.ok(&[
        "-a",
        "https://ca.test:14000/dir",
        "-t",
        "accepted",
        "add",
        "other.example",
    ]);
    let md = t.md_json("other.example");
    assert_eq!(md["ca"]["urls"][0], "https://ca.test:14000/dir");
    assert_eq!(md["ca"]["agreement"], "accepted");

    // The list as JSON: the md-status JSON per MD, sorted.
    let j = t.json(&["list"]);
    assert_eq!(j["status"], 0);
    let out = j["output"].as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["name"], "example.org");
    assert_eq!(out[0]["state"], 1);
    assert_eq!(out[0]["state-descr"], "certificate(rsa) is missing");
    assert_eq!(out[0]["renew"], true);
    assert_eq!(out[1]["name"], "other.example");
    // By DNS name.
    let j = t.json(&["list", "www.example.org"]);
    assert_eq!(j["output"][0]["name"], "example.org");

    // Every aspect of update.
    t.ok(&[
        "update",
        "example.org",
        "contacts",
        "admin@example.org",
        "mailto:b@example.org",
    ]);
    t.ok(&["update", "example.org", "agreement", "accepted"]);
    t.ok(&["update", "example.org", "ca", "LetsEncrypt-Test", "ACME"]);
    t.ok(&[
        "update",
        "example.org",
        "challenges",
        "http-01",
        "tls-alpn-01",
    ]);
    t.ok(&[
        "update",
        "example.org",
        "private-keys",
        "RSA",
        "3072",
        "secp256r1",
    ]);
    t.ok(&["update", "example.org", "renew-mode", "manual"]);
    t.ok(&["update", "example.org", "renew-window", "30d"]);
    t.ok(&["update", "example.org", "warn-window", "5%"]);
    t.ok(&[
        "update",
        "example.org",
        "domains",
        "example.org",
        "a.example.org",
        "www.example.org",
    ]);
    let md = t.md_json("example.org");
    assert_eq!(
        md["contacts"],
        serde_json::json!(["mailto:admin@example.org", "mailto:b@example.org"])
    );
    assert_eq!(md["ca"]["agreement"], "accepted");
    assert_eq!(
        md["ca"]["urls"],
        serde_json::json!(["https://acme-staging-v02.api.letsencrypt.org/directory"])
    );
    assert_eq!(
        md["ca"]["challenges"],
        serde_json::json!(["http-01", "tls-alpn-01"])
    );
    assert_eq!(md["privkey"][0]["bits"], 3072);
    assert_eq!(md["privkey"][1]["curve"], "secp256r1");
    assert_eq!(md["renew-mode"], 0);
    assert_eq!(md["renew-window"], "30d");
    assert_eq!(md["warn-window"], "5%");
    assert_eq!(
        md["domains"],
        serde_json::json!(["example.org", "a.example.org", "www.example.org"])
    );
    // -a on update switches the CA.
    t.ok(&["-a", "https://ca2.test/dir", "update", "example.org"]);
    assert_eq!(
        t.md_json("example.org")["ca"]["urls"][0],
        "https://ca2.test/dir"
    );
    assert_eq!(mode(&base.join("domains/example.org/md.json")), 0o600);
    no_temp_files(&base);
}

#[test]
fn errors_exit_1_with_a_message() {
    let t = Tmp::new();
    t.ok(&["add", "a.example", "www.a.example"]);
    let e = t.fails(&["add", "b.example", "WWW.a.example"]);
    assert!(e.contains("both contain \"www.a.example\""), "{e}");
    assert!(!t.store().join("domains/b.example").exists());
    let e = t.fails(&["add", "a.example"]);
    assert!(e.contains("exists already"), "{e}");
    let e = t.fails(&["add", "bad_name.example"]);
    assert!(e.contains("expected a DNS name"), "{e}");
    let e = t.fails(&["update", "nope.example", "contacts", "x@y.example"]);
    assert!(e.contains("managed domain not found: nope.example"), "{e}");
    let e = t.fails(&["update", "a.example", "contacts", "not-an-email"]);
    assert!(
        e.contains("expected an email address, got \"not-an-email\""),
        "{e}"
    );
    let e = t.fails(&["update", "a.example", "contacts"]);
    assert!(e.contains("needs at least one contact email"), "{e}");
    let e = t.fails(&["update", "a.example", "colour", "blue"]);
    assert!(e.contains("unknown update aspect: colour"), "{e}");
    let e = t.fails(&["update", "a.example", "domains", "www.a.example"]);
    assert!(e.contains("must stay among its domains"), "{e}");
    let e = t.fails(&["update", "a.example", "private-keys", "RSA", "1024"]);
    assert!(e.contains("RSA key size 2048, 3072 or 4096"), "{e}");
    let e = t.fails(&["update", "a.example", "account", "ACME-x-0000"]);
    assert!(e.contains("unknown account: ACME-x-0000"), "{e}");
    let e = t.fails(&["list", "nope.example"]);
    assert!(e.contains("managed domain not found: nope.example"), "{e}");
    let e = t.fails(&["drive", "-c", "tls-sni-01", "a.example"]);
    assert!(
        e.contains("-c: expected http-01, tls-alpn-01 or dns-01"),
        "{e}"
    );
    let e = t.fails(&["acme", "newreg", "a@b.example"]);
    assert!(e.contains("needs the CA's directory URL"), "{e}");
    let e = t.fails(&["-a", "https://ca.test/dir", "acme", "newreg", "a@b.example"]);
    assert!(e.contains("-t accepted"), "{e}");
    let e = t.fails(&[]);
    assert!(e.contains("a command is missing"), "{e}");
    let e = t.fails(&["--frobnicate"]);
    assert!(e.contains("--frobnicate"), "{e}");
    // The MD is unchanged by the failed updates.
    let md = t.md_json("a.example");
    assert_eq!(md["contacts"], serde_json::json!([]));
    // JSON error output names the problem too.
    let o = t.a2md(&["-j", "update", "nope.example"]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], 1);
    assert_eq!(j["description"], "managed domain not found: nope.example");
    // Version and help exit 0.
    assert_eq!(
        t.ok(&["-V"]).trim(),
        format!("version: {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(t.ok(&["--help"]).contains("drive"));
}

/// A self-signed certificate (PEM) for `names` valid for 90 days from now.
fn cert(names: &[&str]) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    let now = SystemTime::now();
    p.not_before = (now - Duration::from_secs(60)).into();
    p.not_after = (now + Duration::from_secs(90 * 86_400)).into();
    p.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x0b, 0xad, 0xf0, 0x0d]));
    p.self_signed(&key).unwrap().pem()
}

#[test]
fn list_reports_certificates_and_staged_renewals() {
    let t = Tmp::new();
    t.ok(&["add", "c.example", "www.c.example"]);
    let store = Store::open(t.store()).unwrap();
    let pem = cert(&["c.example", "www.c.example"]);
    store
        .write(Group::Domains, "c.example", "pubcert.pem", pem.as_bytes())
        .unwrap();
    let j = t.json(&["list"]);
    let md = &j["output"][0];
    assert_eq!(md["state"], 2, "{md:#}");
    assert_eq!(md["cert"]["rsa"]["serial"], "0BADF00D");
    assert_eq!(
        md["cert"]["rsa"]["sha256-fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert_eq!(md["renew"], false);
    let table = t.ok(&["list"]);
    assert!(
        table.lines().nth(1).unwrap().contains("complete"),
        "{table}"
    );
    // A finished job with a staged certificate shows as staged.
    store
        .write(Group::Staging, "c.example", "pubcert.pem", pem.as_bytes())
        .unwrap();
    let job = Job {
        name: "c.example".into(),
        finished: true,
        ..Job::default()
    };
    store
        .write_json(Group::Staging, "c.example", "job.json", &job)
        .unwrap();
    let j = t.json(&["list", "c.example"]);
    assert_eq!(j["output"][0]["renewal"]["finished"], true);
    assert_eq!(
        j["output"][0]["renewal"]["cert"]["rsa"]["serial"],
        "0BADF00D"
    );
    let table = t.ok(&["list"]);
    assert!(table.lines().nth(1).unwrap().contains("staged"), "{table}");
}

#[test]
fn store_list_remove_purge() {
    let t = Tmp::new();
    t.ok(&["add", "p.example", "www.p.example"]);
    t.ok(&["add", "keep.example"]);
    let store = Store::open(t.store()).unwrap();
    store
        .write(Group::Staging, "p.example", "job.json", b"{}")
        .unwrap();
    store
        .write(Group::Archive, "p.example.0", "pubcert.pem", b"x")
        .unwrap();
    store
        .write(Group::Archive, "p.example.org.0", "pubcert.pem", b"x")
        .unwrap();
    store
        .write(Group::Challenges, "www.p.example", "acme-http-01.txt", b"x")
        .unwrap();
    let out = t.ok(&["store", "list"]);
    for l in [
        "domains/p.example",
        "domains/keep.example",
        "staging/p.example",
        "archive/p.example.0",
        "challenges/www.p.example",
    ] {
        assert!(out.lines().any(|x| x == l), "{l} missing in:\n{out}");
    }
    let j = t.json(&["store", "list"]);
    assert_eq!(j["output"][0]["staging"], serde_json::json!(["p.example"]));

    let e = t.fails(&["store", "remove", "nope.example"]);
    assert!(e.contains("managed domain not found: nope.example"), "{e}");
    t.ok(&["store", "remove", "-f", "nope.example"]);

    t.ok(&["store", "purge", "p.example"]);
    let base = t.store();
    assert!(!base.join("domains/p.example").exists());
    assert!(!base.join("staging/p.example").exists());
    assert!(!base.join("archive/p.example.0").exists());
    assert!(!base.join("challenges/www.p.example").exists());
    // Another MD's archive with a longer name stays.
    assert!(base.join("archive/p.example.org.0").exists());
    assert!(base.join("domains/keep.example/md.json").exists());
    let e = t.fails(&["store", "purge", "p.example"]);
    assert!(e.contains("nothing stored for: p.example"), "{e}");

    assert_eq!(
        t.ok(&["store", "remove", "keep.example"]).trim(),
        "removed: keep.example"
    );
    assert!(!base.join("domains/keep.example").exists());
    let j = t.json(&["list"]);
    assert_eq!(j["output"], serde_json::json!([]));
}
