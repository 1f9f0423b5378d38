//! End-to-end: the driver against a real pebble (Debian package `pebble`).
//!
//! Starts `pebble-challtestsrv` (fake DNS only: every name is 127.0.0.1) and `pebble`
//! on free loopback ports with a generated TLS certificate, answers http-01 from the
//! store's `challenges/` with a tiny HTTP server, and issues certificates. Fails (does
//! not skip) when pebble is not installed.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bastion_md::acme::{AccountJson, OrderRecord};
use bastion_md::store::{self, Group};
use bastion_md::{ChallengeType, Driver, DriverConfig, KeySpec, ManagedDomain, Outcome, Store};

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Pebble {
    children: Vec<Child>,
    dir_url: String,
    root: PathBuf,
    http_port: u16,
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

/// Serves `/.well-known/acme-challenge/*` from the store, as the glue does.
fn serve_http01(listener: TcpListener, base: PathBuf, stop: Arc<AtomicBool>) {
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

fn wait_port(port: u16, what: &str, children: &mut [Child]) {
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

fn start_pebble(work: &Path, store_base: &Path) -> Pebble {
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

fn md(p: &Pebble, name: &str, extra: &[&str], keys: &[KeySpec]) -> ManagedDomain {
    let mut md = ManagedDomain::new(name, extra).unwrap();
    md.ca.urls = vec![p.dir_url.clone()];
    md.ca.agreement = Some("accepted".into());
    md.ca.challenges = vec![ChallengeType::Http01];
    md.contacts = vec!["mailto:admin@test.example".into()];
    md.pkeys = keys.to_vec();
    md
}

fn config(p: &Pebble) -> DriverConfig {
    DriverConfig {
        ca_file: Some(p.root.clone()),
        retry_delay: Duration::from_secs(1),
        validation_timeout: Duration::from_secs(60),
        auto_challenges: vec![ChallengeType::Http01],
        ..DriverConfig::default()
    }
}

fn staged_leaf(store: &Store, md: &ManagedDomain, spec: &KeySpec) -> bastion_md::cert::CertInfo {
    let pem = store
        .read(Group::Staging, &md.name, &store::pubcert_file(spec))
        .unwrap()
        .unwrap_or_else(|| panic!("no staged certificate for {spec}"));
    let pem = String::from_utf8(pem).unwrap();
    assert!(
        bastion_md::cert::pem_chain(&pem).unwrap().len() >= 2,
        "chain has leaf + issuer"
    );
    bastion_md::cert::leaf_info(&pem).unwrap()
}

fn accounts(store: &Store) -> Vec<String> {
    store.list(Group::Accounts).unwrap()
}

fn report(work: &Path) -> String {
    ["pebble.log", "pebble.err"]
        .iter()
        .map(|f| std::fs::read_to_string(work.join(f)).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "current_thread")]
async fn issue_renew_and_resume_against_pebble() {
    let work = std::env::temp_dir().join(format!("bastion-md-pebble-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let base = work.join("md");
    let store = Store::open(&base).unwrap();
    let p = start_pebble(&work, &base);

    // 1. EC P-256 for test.example.
    let ec = md(&p, "test.example", &["www.test.example"], &[KeySpec::P256]);
    let mut driver = Driver::new(store, config(&p));
    let out = driver.drive(&ec).await;
    let out = out.unwrap_or_else(|e| panic!("EC issuance failed: {e}\n{}", report(&work)));
    assert!(matches!(out, Outcome::Renewed { .. }), "{out:?}");
    let leaf = staged_leaf(driver.store(), &ec, &KeySpec::P256);
    assert!(leaf.covers(&ec.domains), "{:?}", leaf.dns_names);
    let job = driver.job("test.example").unwrap();
    assert!(job.finished && job.errors == 0);
    assert!(
        !driver
            .store()
            .exists(Group::Staging, "test.example", "order.json")
    );
    assert!(
        driver
            .store()
            .load_key(Group::Staging, "test.example", "privkey.secp256r1.pem")
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        driver.drive(&ec).await.unwrap(),
        Outcome::Staged { .. }
    ));
    assert_eq!(accounts(driver.store()).len(), 1);
    let acct: AccountJson = driver
        .store()
        .read_json(
            Group::Accounts,
            &accounts(driver.store())[0],
            "account.json",
        )
        .unwrap()
        .unwrap();
    assert_eq!(acct.ca_url, p.dir_url);

    // Activation, as the parent does at restart; then nothing is due.
    assert!(driver.store().promote_staging("test.example").unwrap());
    assert!(driver.current_cert(&ec).is_some());
    assert!(matches!(
        driver.drive(&ec).await.unwrap(),
        Outcome::NotDue { .. }
    ));

    // 2. Add RSA on the same domain: the RSA certificate is missing, so both are
    //    ordered again, with the same account.
    let both = md(
        &p,
        "test.example",
        &["www.test.example"],
        &[KeySpec::Rsa(2048), KeySpec::P256],
    );
    let out = driver.drive(&both).await;
    let out = out.unwrap_or_else(|e| panic!("RSA issuance failed: {e}\n{}", report(&work)));
    assert!(matches!(out, Outcome::Renewed { .. }), "{out:?}");
    let rsa = staged_leaf(driver.store(), &both, &KeySpec::Rsa(2048));
    assert!(rsa.covers(&both.domains));
    let key = driver
        .store()
        .load_key(Group::Staging, "test.example", "privkey.pem")
        .unwrap()
        .unwrap();
    assert!(rcgen::KeyPair::from_pem(&key).unwrap().algorithm() == &rcgen::PKCS_RSA_SHA256);
    assert_eq!(accounts(driver.store()).len(), 1, "the account is reused");
    drop(driver);

    // 3. Kill and resume: a driver that stops once the challenges are set ready...
    let store = Store::open(&base).unwrap();
    let resume = md(&p, "resume.example", &[], &[KeySpec::P256]);
    let mut first = Driver::new(
        store,
        DriverConfig {
            validation_timeout: Duration::ZERO,
            ..config(&p)
        },
    );
    let out = first.drive(&resume).await.unwrap();
    assert!(matches!(out, Outcome::Pending { .. }), "{out:?}");
    let rec: OrderRecord = first
        .store()
        .read_json(Group::Staging, "resume.example", "order.json")
        .unwrap()
        .expect("order.json records the order");
    assert!(rec.orders[0].url.is_some());
    drop(first);
    // ...and a new one built from the store finishes the same order.
    let mut second = Driver::new(Store::open(&base).unwrap(), config(&p));
    let out = second.drive(&resume).await;
    let out = out.unwrap_or_else(|e| panic!("resume failed: {e}\n{}", report(&work)));
    assert!(matches!(out, Outcome::Renewed { .. }), "{out:?}");
    assert!(staged_leaf(second.store(), &resume, &KeySpec::P256).covers(&resume.domains));
    assert!(
        !second
            .store()
            .exists(Group::Challenges, "resume.example", store::HTTP01_FILE)
    );
    assert_eq!(accounts(second.store()).len(), 1);

    drop(p);
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "current_thread")]
async fn errors_back_off_and_name_the_fix() {
    let work = std::env::temp_dir().join(format!("bastion-md-pebble-err-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let base = work.join("md");
    let store = Store::open(&base).unwrap();
    let p = start_pebble(&work, &base);
    let mut m = md(&p, "noagree.example", &[], &[KeySpec::P256]);
    m.ca.agreement = None;
    let mut driver = Driver::new(store, config(&p));
    let e = driver.drive(&m).await.unwrap_err();
    assert!(
        e.to_string().contains("MDCertificateAgreement accepted"),
        "{e}"
    );
    let job = driver.job("noagree.example").unwrap();
    assert_eq!(job.errors, 1);
    let next = driver.next_run("noagree.example").unwrap();
    assert!(next > std::time::SystemTime::now());
    // Called again before next-run: backing off, no CA traffic.
    assert!(matches!(
        driver.drive(&m).await.unwrap(),
        Outcome::Backoff { .. }
    ));
    drop(p);
    let _ = std::fs::remove_dir_all(&work);
}
