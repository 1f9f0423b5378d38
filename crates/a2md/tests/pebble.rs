//! `a2md add` + `update` + `drive` + `list --json` and the `acme` commands end to end
//! against a real pebble (Debian package `pebble`). pebble validates http-01 for real:
//! the shared test support answers from the store's `challenges/` as the glue does
//! (no `PEBBLE_VA_ALWAYS_VALID`).

#[path = "../../md/tests/support/pebble.rs"]
mod pebble_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bastion_md::cert::leaf_info;
use pebble_support::{Pebble, report, start_pebble};
use serde_json::Value;

struct Ctx {
    work: PathBuf,
    p: Pebble,
}

impl Ctx {
    fn a2md(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_a2md"))
            .arg("-d")
            .arg(self.work.join("md"))
            .arg("-a")
            .arg(&self.p.dir_url)
            .arg("-C")
            .arg(&self.p.root)
            .args(args)
            .output()
            .expect("run a2md")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.a2md(args);
        assert!(
            o.status.success(),
            "a2md {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\npebble:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            report(&self.work)
        );
        String::from_utf8(o.stdout).unwrap()
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn setup(tag: &str) -> Ctx {
    let work = std::env::temp_dir().join(format!("a2md-pebble-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let p = start_pebble(&work, &work.join("md"));
    Ctx { work, p }
}

#[test]
fn add_drive_list_against_pebble() {
    let c = setup("drive");
    let base = c.work.join("md");
    c.ok(&["-t", "accepted", "add", "test.example", "www.test.example"]);
    c.ok(&["update", "test.example", "contacts", "admin@test.example"]);
    c.ok(&[
        "update",
        "test.example",
        "private-keys",
        "RSA",
        "2048",
        "secp256r1",
    ]);

    // Before: incomplete.
    let j: Value = serde_json::from_str(&c.ok(&["-j", "list"])).unwrap();
    assert_eq!(j["output"][0]["state"], 1);

    let out = c.ok(&["-v", "drive", "-c", "http-01", "test.example"]);
    assert!(
        out.contains("test.example: new certificates staged"),
        "{out}"
    );
    assert!(
        out.contains("test.example: certificates activated in domains/"),
        "{out}"
    );

    // The certificates are active in domains/, with the store's permissions; staging
    // and the challenges are gone; the account was registered once.
    let d = base.join("domains/test.example");
    for f in [
        "pubcert.pem",
        "privkey.pem",
        "pubcert.secp256r1.pem",
        "privkey.secp256r1.pem",
    ] {
        assert!(d.join(f).is_file(), "{f} missing");
        assert_eq!(mode(&d.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&d), 0o700);
    assert!(
        std::fs::read_to_string(d.join("privkey.pem"))
            .unwrap()
            .contains("BEGIN PRIVATE KEY")
    );
    assert!(!base.join("staging/test.example").exists());
    assert!(!base.join("challenges/test.example").exists());
    let accounts: Vec<_> = std::fs::read_dir(base.join("accounts")).unwrap().collect();
    assert_eq!(accounts.len(), 1);
    // The MD's own settings stay: the -c override is not saved.
    let md: Value = serde_json::from_slice(&std::fs::read(d.join("md.json")).unwrap()).unwrap();
    assert_eq!(md["ca"]["challenges"], serde_json::json!([]));
    assert_eq!(md["ca"]["urls"][0], c.p.dir_url.as_str());

    let rsa = leaf_info(&std::fs::read_to_string(d.join("pubcert.pem")).unwrap()).unwrap();
    assert!(rsa.covers(&["test.example".into(), "www.test.example".into()]));

    // list --json: complete, with both certificates as the status reports them.
    let j: Value = serde_json::from_str(&c.ok(&["-j", "list"])).unwrap();
    assert_eq!(j["status"], 0);
    let m = &j["output"][0];
    assert_eq!(m["name"], "test.example");
    assert_eq!(m["state"], 2, "{m:#}");
    assert_eq!(m["renew"], false);
    let serial = m["cert"]["rsa"]["serial"].as_str().unwrap();
    assert_eq!(
        serial.trim_start_matches('0'),
        rsa.serial.to_ascii_uppercase().trim_start_matches('0')
    );
    assert!(m["cert"]["secp256r1"]["sha256-fingerprint"].is_string());
    assert!(m["cert"]["valid"]["until"].is_string());
    assert!(m.get("renewal").is_none());

    // Driving again: nothing to do.
    let out = c.ok(&["drive", "test.example"]);
    assert_eq!(out.trim(), "test.example: complete.");

    // Renewing early, as docs/a2md.md suggests: a 100% window is due at once; the
    // previous certificates move to archive/.
    c.ok(&["update", "test.example", "renew-window", "100%"]);
    let out = c.ok(&["drive", "-c", "http-01", "test.example"]);
    assert!(
        out.contains("test.example: renewed, new certificates staged"),
        "{out}"
    );
    // archive/test.example.0 is the md.json-only directory of the first activation.
    assert!(base.join("archive/test.example.0/md.json").is_file());
    let old = std::fs::read_to_string(base.join("archive/test.example.1/pubcert.pem")).unwrap();
    assert_eq!(leaf_info(&old).unwrap().serial, rsa.serial);
    let new = leaf_info(&std::fs::read_to_string(d.join("pubcert.pem")).unwrap()).unwrap();
    assert_ne!(new.serial, rsa.serial);
    c.ok(&["update", "test.example", "renew-window", "33%"]);
    assert_eq!(
        c.ok(&["drive", "test.example"]).trim(),
        "test.example: complete."
    );
    let j: Value = serde_json::from_str(&c.ok(&["-j", "drive", "test.example"])).unwrap();
    assert_eq!(j["status"], 0);
    assert_eq!(j["output"][0]["name"], "test.example");
    assert_eq!(j["output"][0]["state"], 2);
    assert_eq!(j["output"][0]["activated"], false);
    assert_eq!(
        j["output"][0]["cert"]["rsa"]["serial"]
            .as_str()
            .unwrap()
            .trim_start_matches('0'),
        new.serial.to_ascii_uppercase().trim_start_matches('0')
    );

    drop(c.p);
    let _ = std::fs::remove_dir_all(&c.work);
}

#[test]
fn acme_account_commands_against_pebble() {
    let c = setup("acme");
    let o = c.a2md(&["acme", "newreg", "admin@test.example"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("-t accepted"));
    let out = c.ok(&["-t", "accepted", "acme", "newreg", "admin@test.example"]);
    let name = out
        .trim()
        .strip_prefix("registered: ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(name.starts_with("ACME-localhost-"), "{name}");
    let acct = c.work.join("md/accounts").join(&name);
    assert!(
        std::fs::read_to_string(acct.join("account.pem"))
            .unwrap()
            .contains("ENCRYPTED"),
        "account keys are encrypted at rest"
    );
    assert_eq!(mode(&acct.join("account.pem")), 0o600);
    let out = c.ok(&["acme", "validate", &name]);
    assert!(
        out.starts_with(&format!("account valid: {name} (https://")),
        "{out}"
    );
    c.ok(&["-t", "https://tos.test/v1", "acme", "agree", &name]);
    let j: Value =
        serde_json::from_slice(&std::fs::read(acct.join("account.json")).unwrap()).unwrap();
    assert_eq!(j["agreement"], "https://tos.test/v1");
    assert_eq!(
        c.ok(&["acme", "delreg", &name]).trim(),
        format!("deleted: {name}")
    );
    let j: Value =
        serde_json::from_slice(&std::fs::read(acct.join("account.json")).unwrap()).unwrap();
    assert_eq!(j["status"], "deactivated");
    // The CA refuses the deactivated account.
    let o = c.a2md(&["acme", "validate", &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("looking up the account"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(c.p);
    let _ = std::fs::remove_dir_all(&c.work);
}
