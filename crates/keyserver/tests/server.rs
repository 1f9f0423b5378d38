//! End-to-end: the real binary (init, user add, serve, rotate) on
//! 127.0.0.1, talked to over HTTPS with rustls, keys unwrapped with
//! bastion-seal.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bastion_keyserver::client::{HttpsClient, client_tls_config};
use bastion_seal::keys::{DataKey, KeyId, MasterKey, unwrap_data_key};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bastion-keyserver");
const MASTER_PW: &str = "correct horse battery staple";

struct Site {
    dir: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "bks-it-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A self-signed certificate for localhost / 127.0.0.1 in `dir`.
fn make_cert(dir: &Path) -> PathBuf {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    dir.join("cert.pem")
}

impl Site {
    fn new(dir: &Path, name: &str, role: &str, extra: &str, env: &[(&str, &str)]) -> Site {
        let cfg = format!(
            r#"listen = "127.0.0.1:0"
role = "{role}"
database = "{name}.db"
audit_log = "{name}-audit.log"
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
{extra}"#
        );
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, cfg).unwrap();
        let mut e = vec![("BKS_TEST_MASTER_PW".to_string(), MASTER_PW.to_string())];
        e.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Site {
            dir: dir.to_path_buf(),
            config,
            env: e,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).arg("--config").arg(&self.config);
        c.env("RUST_LOG", "warn");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], stdin: &str) -> String {
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
        String::from_utf8(out.stdout).unwrap()
    }

    fn add_user(&self, name: &str, password: &str, flags: &[&str]) {
        let mut args = vec!["user", "add", name];
        args.extend_from_slice(flags);
        self.run(&args, &format!("{password}\n"));
    }

    /// Starts `serve` and returns the child and its port.
    fn serve(&self) -> Server {
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
        Server { child, port }
    }

    fn audit_lines(&self, name: &str) -> (String, Vec<Value>) {
        let text = std::fs::read_to_string(self.dir.join(format!("{name}-audit.log"))).unwrap();
        let lines = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect();
        (text, lines)
    }
}

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Api {
    http: HttpsClient,
}

impl Api {
    fn new(ca: &Path, port: u16) -> Api {
        let tls = client_tls_config(ca).unwrap();
        Api {
            http: HttpsClient::new(&format!("https://127.0.0.1:{port}"), tls, Some("localhost"))
                .unwrap(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, bytes) = self
            .http
            .request(
                method,
                path,
                token,
                body.map(|b| serde_json::to_vec(&b).unwrap()),
            )
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, v)
    }

    async fn login(&self, user: &str, pw: &str) -> String {
        let (s, v) = self
            .call(
                "POST",
                "/auth",
                None,
                Some(serde_json::json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert!(v["expiration_time"].as_str().unwrap().ends_with('Z'));
        assert!(v["expires_in"].as_u64().unwrap() > 500);
        v["token"].as_str().unwrap().to_string()
    }

    async fn master(&self, token: &str, id: Option<u64>) -> (u64, MasterKey, String) {
        let path = match id {
            Some(id) => format!("/master/key/{id}"),
            None => "/master/key".into(),
        };
        let (s, v) = self.call("GET", &path, Some(token), None).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["algorithm"], "AES-256-SIV");
        let hex = v["key"].as_str().unwrap().to_string();
        assert_eq!(hex.len(), 128);
        let bytes: Vec<u8> = (0..64)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        (
            v["key_id"].as_u64().unwrap(),
            MasterKey::from_slice(&bytes).unwrap(),
            hex,
        )
    }
}

fn b64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

/// Unwraps the data key of a `/data/key/...` response with `mk`.
fn unwrap(v: &Value, mk: &MasterKey) -> DataKey {
    let id = KeyId::new(
        v["client"].as_str().unwrap(),
        v["version"].as_u64().unwrap() as u32,
    )
    .unwrap();
    assert_eq!(v["key_id"], v["version"]);
    unwrap_data_key(mk, &b64(&v["key_encrypted_base64"]), &id).unwrap()
}

fn secret_forms(bytes: &[u8]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        hex.clone(),
        hex.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_role_end_to_end() {
    let dir = tmpdir("both");
    let ca = make_cert(&dir);
    let site = Site::new(&dir, "ks", "both", "", &[]);
    assert!(site.run(&["init"], "").contains("master key 1"));
    site.add_user("mod", "module-password", &[]);
    site.add_user(
        "dataonly",
        "dataonly-password",
        &["--permissions", "data-read,data-create"],
    );
    site.add_user("ops", "operator-password", &["--role", "operator"]);
    let listed = site.run(&["user", "list"], "");
    assert!(
        listed.contains("mod\tmaster-read,data-read,data-create\t*"),
        "{listed}"
    );

    let server = site.serve();
    let api = Api::new(&ca, server.port);

    // Health needs no token; TLS works.
    let (s, v) = api.call("GET", "/health", None, None).await;
    assert_eq!((s, v["role"].as_str()), (200, Some("both")));

    // Wrong password, unknown user, missing and bad tokens.
    let (s, v) = api
        .call(
            "POST",
            "/auth",
            None,
            Some(serde_json::json!({"username": "mod", "password": "wrong"})),
        )
        .await;
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")));
    let (s, _) = api
        .call(
            "POST",
            "/auth",
            None,
            Some(serde_json::json!({"username": "nobody", "password": "x"})),
        )
        .await;
    assert_eq!(s, 401);
    assert_eq!(api.call("GET", "/data/key/alice", None, None).await.0, 401);
    assert_eq!(
        api.call("GET", "/data/key/alice", Some("forged"), None)
            .await
            .0,
        401
    );

    let tok = api.login("mod", "module-password").await;

    // First fetch creates alice v1 under master key 1.
    let (s, v1) = api.call("GET", "/data/key/alice", Some(&tok), None).await;
    assert_eq!(s, 201, "{v1}");
    assert_eq!(
        (v1["client"].as_str(), v1["version"].as_u64()),
        (Some("alice"), Some(1))
    );
    assert_eq!(v1["master_key_id"], 1);
    let (mk1_id, mk1, mk1_hex) = api
        .master(&tok, Some(v1["master_key_id"].as_u64().unwrap()))
        .await;
    assert_eq!(mk1_id, 1);
    let dk1 = unwrap(&v1, &mk1);

    // A second fetch returns the same key, unwrapping to the same bytes.
    let (s, again) = api.call("GET", "/data/key/alice", Some(&tok), None).await;
    assert_eq!(s, 200);
    assert_eq!(again["key_encrypted_base64"], v1["key_encrypted_base64"]);
    assert_eq!(unwrap(&again, &mk1).expose_secret(), dk1.expose_secret());
    let (s, by_version) = api.call("GET", "/data/key/alice/1", Some(&tok), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        unwrap(&by_version, &mk1).expose_secret(),
        dk1.expose_secret()
    );
    let (_, current, _) = api.master(&tok, None).await;
    assert_eq!(current.expose_secret(), mk1.expose_secret());

    // Errors on data endpoints.
    assert_eq!(
        api.call("GET", "/data/key/alice/2", Some(&tok), None)
            .await
            .0,
        404
    );
    assert_eq!(
        api.call("GET", "/data/key/alice/0", Some(&tok), None)
            .await
            .0,
        400
    );
    assert_eq!(
        api.call("GET", "/data/key/a%20b", Some(&tok), None).await.0,
        400
    );
    assert_eq!(
        api.call("GET", "/master/key/9", Some(&tok), None).await.0,
        404
    );
    assert_eq!(
        api.call("DELETE", "/data/key/alice", Some(&tok), None)
            .await
            .0,
        405
    );
    assert_eq!(api.call("GET", "/nope", Some(&tok), None).await.0, 404);

    // The module account may not rotate.
    assert_eq!(
        api.call("POST", "/data/key/alice/rotate", Some(&tok), None)
            .await
            .0,
        403
    );
    assert_eq!(
        api.call("POST", "/master/rotate", Some(&tok), None).await.0,
        403
    );

    // Rotation: master 2, then alice v2 under master 2; v1 still unwraps.
    let ops = api.login("ops", "operator-password").await;
    let (s, r) = api.call("POST", "/master/rotate", Some(&ops), None).await;
    assert_eq!((s, r["key_id"].as_u64()), (201, Some(2)));
    assert!(r.get("key").is_none());
    let (s, v2) = api
        .call("POST", "/data/key/alice/rotate", Some(&ops), None)
        .await;
    assert_eq!(s, 201, "{v2}");
    assert_eq!(
        (v2["version"].as_u64(), v2["master_key_id"].as_u64()),
        (Some(2), Some(2))
    );
    let (s, newest) = api.call("GET", "/data/key/alice", Some(&tok), None).await;
    assert_eq!((s, newest["version"].as_u64()), (200, Some(2)));
    let (mk2_id, mk2, mk2_hex) = api.master(&tok, None).await;
    assert_eq!(mk2_id, 2);
    let dk2 = unwrap(&newest, &mk2);
    assert_ne!(dk2.expose_secret(), dk1.expose_secret());
    let (_, old) = api.call("GET", "/data/key/alice/1", Some(&tok), None).await;
    let (_, mk1_again, _) = api.master(&tok, Some(1)).await;
    assert_eq!(
        unwrap(&old, &mk1_again).expose_secret(),
        dk1.expose_secret()
    );
    assert!(
        unwrap_data_key(
            &mk2,
            &b64(&old["key_encrypted_base64"]),
            &KeyId::new("alice", 1).unwrap()
        )
        .is_err()
    );

    // The CLI rotates while the server runs.
    let out = site.run(&["rotate", "data", "alice"], "");
    assert!(out.contains("version 3"), "{out}");
    let (_, v3) = api.call("GET", "/data/key/alice", Some(&tok), None).await;
    assert_eq!(
        (v3["version"].as_u64(), v3["master_key_id"].as_u64()),
        (Some(3), Some(2))
    );
    let dk3 = unwrap(&v3, &mk2);

    // A data-only account is refused on master endpoints, allowed on data.
    let d = api.login("dataonly", "dataonly-password").await;
    let (s, v) = api.call("GET", "/master/key", Some(&d), None).await;
    assert_eq!((s, v["error"].as_str()), (403, Some("forbidden")));
    assert_eq!(
        api.call("GET", "/master/key/1", Some(&d), None).await.0,
        403
    );
    let (s, bob) = api.call("GET", "/data/key/bob", Some(&d), None).await;
    assert_eq!((s, bob["version"].as_u64()), (201, Some(1)));
    // mod_encrypt compatibility: no client means the account name.
    let (s, own) = api.call("GET", "/data/key", Some(&d), None).await;
    assert_eq!((s, own["client"].as_str()), (201, Some("dataonly")));

    // Plain HTTP on the TLS port gets no HTTP answer.
    let port = server.port;
    let plain = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        buf
    })
    .await
    .unwrap();
    assert!(
        !plain.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&plain)
    );
    assert!(!String::from_utf8_lossy(&plain).contains("\"status\""));

    drop(server);

    // The audit log: one JSON line per operation, no secrets.
    let (text, lines) = site.audit_lines("ks");
    let has = |op: &str, result: &str| {
        lines
            .iter()
            .any(|l| l["operation"] == op && l["result"] == result)
    };
    for (op, result) in [
        ("init", "ok"),
        ("user.add", "ok"),
        ("auth", "unauthorized"),
        ("auth", "ok"),
        ("data.create", "created"),
        ("master.get", "ok"),
        ("master.get", "denied"),
        ("data.get", "ok"),
        ("data.get", "not_found"),
        ("data.get", "invalid"),
        ("data.rotate", "denied"),
        ("data.rotate", "created"),
        ("master.rotate", "created"),
    ] {
        assert!(has(op, result), "no {op}/{result} line in\n{text}");
    }
    for l in &lines {
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
        assert!(l["account"].is_string() && l["operation"].is_string() && l["result"].is_string());
    }
    let create = lines
        .iter()
        .find(|l| l["operation"] == "data.create")
        .unwrap();
    assert_eq!(
        (
            create["account"].as_str(),
            create["client"].as_str(),
            create["version"].as_u64(),
            create["master_key_id"].as_u64()
        ),
        (Some("mod"), Some("alice"), Some(1), Some(1))
    );
    let mut secrets = vec![mk1_hex, mk2_hex];
    for k in [&dk1, &dk2, &dk3] {
        secrets.extend(secret_forms(k.expose_secret()));
    }
    secrets.extend(secret_forms(mk1.expose_secret()));
    secrets.extend(secret_forms(mk2.expose_secret()));
    for w in [&v1, &v2, &v3] {
        secrets.push(w["key_encrypted_base64"].as_str().unwrap().to_string());
    }
    secrets.extend(
        [
            "module-password",
            "operator-password",
            MASTER_PW,
            &tok,
            &ops,
        ]
        .map(String::from),
    );
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "audit log holds a secret");
    }
    // Nor does the database hold raw keys.
    let db = std::fs::read(dir.join("ks.db")).unwrap();
    for k in [
        &mk1.expose_secret()[..],
        &mk2.expose_secret()[..],
        &dk1.expose_secret()[..],
    ] {
        assert!(!db.windows(16).any(|w| w == &k[..16]));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_master_and_data_servers() {
    let dir = tmpdir("split");
    let ca = make_cert(&dir);
    let master = Site::new(&dir, "master", "master", "", &[]);
    master.run(&["init"], "");
    master.add_user(
        "data-server",
        "data-server-password",
        &["--role", "data-server"],
    );
    master.add_user("mod", "module-password", &["--role", "reader"]);
    let m = master.serve();

    let upstream = format!(
        "[upstream_master]\nurl = \"https://127.0.0.1:{}\"\nusername = \"data-server\"\npassword_env = \"BKS_TEST_UPSTREAM_PW\"\nca_file = \"cert.pem\"\nserver_name = \"localhost\"\n",
        m.port
    );
    let data = Site::new(
        &dir,
        "data",
        "data",
        &upstream,
        &[("BKS_TEST_UPSTREAM_PW", "data-server-password")],
    );
    assert!(!data.run(&["init"], "").contains("master key"));
    data.add_user(
        "mod",
        "module-password",
        &["--role", "module", "--clients", "tenant-*"],
    );
    let d = data.serve();

    let mapi = Api::new(&ca, m.port);
    let dapi = Api::new(&ca, d.port);
    let mtok = mapi.login("mod", "module-password").await;
    let dtok = dapi.login("mod", "module-password").await;

    // The data server creates tenant-1 v1 through the master server.
    let (s, v1) = dapi
        .call("GET", "/data/key/tenant-1", Some(&dtok), None)
        .await;
    assert_eq!(s, 201, "{v1}");
    let (_, mk, _) = mapi
        .master(&mtok, Some(v1["master_key_id"].as_u64().unwrap()))
        .await;
    let dk = unwrap(&v1, &mk);
    let (_, again) = dapi
        .call("GET", "/data/key/tenant-1/1", Some(&dtok), None)
        .await;
    assert_eq!(unwrap(&again, &mk).expose_secret(), dk.expose_secret());

    // Roles and scopes.
    assert_eq!(
        dapi.call("GET", "/master/key", Some(&dtok), None).await.0,
        404
    );
    assert_eq!(
        mapi.call("GET", "/data/key/tenant-1", Some(&mtok), None)
            .await
            .0,
        404
    );
    assert_eq!(
        dapi.call("GET", "/data/key/alice", Some(&dtok), None)
            .await
            .0,
        403
    );
    // The module account on the master may not have keys wrapped for it.
    let (s, _) = mapi
        .call(
            "POST",
            "/master/wrap",
            Some(&mtok),
            Some(serde_json::json!({"client": "x", "version": 1})),
        )
        .await;
    assert_eq!(s, 403);

    // Rotation on the master, then on the data server (by the CLI).
    master.run(&["rotate", "master"], "");
    assert!(
        data.run(&["rotate", "data", "tenant-1"], "")
            .contains("version 2")
    );
    let (_, v2) = dapi
        .call("GET", "/data/key/tenant-1", Some(&dtok), None)
        .await;
    assert_eq!(
        (v2["version"].as_u64(), v2["master_key_id"].as_u64()),
        (Some(2), Some(2))
    );
    let (_, mk2, _) = mapi.master(&mtok, Some(2)).await;
    assert_ne!(unwrap(&v2, &mk2).expose_secret(), dk.expose_secret());

    // The master's audit log shows the wraps made for the data server.
    let (_, lines) = master.audit_lines("master");
    let wraps: Vec<_> = lines
        .iter()
        .filter(|l| l["operation"] == "master.wrap" && l["result"] == "ok")
        .collect();
    assert_eq!(wraps.len(), 2);
    assert_eq!(wraps[0]["account"], "data-server");
    assert_eq!(wraps[0]["client"], "tenant-1");
    // The data server's database never saw a master key.
    let db = std::fs::read(dir.join("data.db")).unwrap();
    assert!(!db.windows(16).any(|w| w == &mk.expose_secret()[..16]));
    drop((d, m));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn refuses_wrong_master_password_and_missing_store() {
    let dir = tmpdir("pw");
    make_cert(&dir);
    let site = Site::new(&dir, "ks", "both", "", &[]);
    let out = site.cmd(&["serve"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an initialised"));
    site.run(&["init"], "");
    let again = site.cmd(&["init"]).output().unwrap();
    assert!(!again.status.success(), "init twice must fail");
    let out = site
        .cmd(&["serve"])
        .env("BKS_TEST_MASTER_PW", "not the password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong master password"));
    // Passwords never on the command line: there is no such option.
    let out = site.cmd(&["init", "--password", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = Arc::new(());
    let _ = std::fs::remove_dir_all(&dir);
}
