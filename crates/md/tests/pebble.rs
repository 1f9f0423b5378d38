//! End-to-end: the driver against a real pebble (Debian package `pebble`).
//!
//! Starts `pebble-challtestsrv` (fake DNS only: every name is 127.0.0.1) and `pebble`
//! on free loopback ports with a generated TLS certificate, answers http-01 from the
//! store's `challenges/` with a tiny HTTP server, and issues certificates. Fails (does
//! not skip) when pebble is not installed.

#[path = "support/pebble.rs"]
mod pebble_support;

use std::time::Duration;

use bastion_md::acme::{AccountJson, OrderRecord};
use bastion_md::store::{self, Group};
use bastion_md::{ChallengeType, Driver, DriverConfig, KeySpec, ManagedDomain, Outcome, Store};
use pebble_support::{Pebble, report, start_pebble};

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

/// A fresh work directory named after `tag` and this process, its store path, and pebble
/// started for it.
fn with_pebble(tag: &str) -> (std::path::PathBuf, std::path::PathBuf, Pebble) {
    let work = std::env::temp_dir().join(format!("{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let base = work.join("md");
    let p = start_pebble(&work, &base);
    (work, base, p)
}

fn accounts(store: &Store) -> Vec<String> {
    store.list(Group::Accounts).unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn issue_renew_and_resume_against_pebble() {
    let (work, base, p) = with_pebble("bastion-md-pebble");
    let store = Store::open(&base).unwrap();

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
    drop(second);

    // 4. Renewing a staged set that was never promoted (a server that is not restarted
    //    serves it): while the new order is pending, the staged set stays whole, so it is
    //    still what children serve and what a restart promotes; the new set replaces it
    //    only once complete.
    let old = staged_leaf(&Store::open(&base).unwrap(), &resume, &KeySpec::P256);
    let due = ManagedDomain {
        renew_window: bastion_md::model::Timeslice::Percent(100),
        ..resume.clone()
    };
    let mut third = Driver::new(
        Store::open(&base).unwrap(),
        DriverConfig {
            validation_timeout: Duration::ZERO,
            ..config(&p)
        },
    );
    let out = third.drive(&due).await.unwrap();
    assert!(matches!(out, Outcome::Pending { .. }), "{out:?}");
    assert!(third.store().staging_complete(&due).is_ok());
    assert_eq!(
        staged_leaf(third.store(), &due, &KeySpec::P256).serial,
        old.serial,
        "the staged set is kept while the new order runs"
    );
    assert!(
        third.store().exists(
            Group::Staging,
            "resume.example",
            "next-privkey.secp256r1.pem"
        ) || third
            .store()
            .exists(Group::Staging, "resume.example", "order.json")
    );
    drop(third);
    let mut fourth = Driver::new(Store::open(&base).unwrap(), config(&p));
    let out = fourth.drive(&due).await;
    let out = out.unwrap_or_else(|e| panic!("renewal failed: {e}\n{}", report(&work)));
    assert!(matches!(out, Outcome::Renewed { .. }), "{out:?}");
    let new = staged_leaf(fourth.store(), &due, &KeySpec::P256);
    assert_ne!(
        new.serial, old.serial,
        "the new set replaced the staged one"
    );
    for f in [
        "next-privkey.secp256r1.pem",
        "next-pubcert.secp256r1.pem",
        "order.json",
    ] {
        assert!(
            !fourth.store().exists(Group::Staging, "resume.example", f),
            "{f}"
        );
    }
    // The promoted set is the new one, without order leftovers.
    assert!(fourth.store().promote_staging("resume.example").unwrap());
    assert!(!fourth.store().exists(
        Group::Domains,
        "resume.example",
        "next-pubcert.secp256r1.pem"
    ));

    drop(p);
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "current_thread")]
async fn errors_back_off_and_name_the_fix() {
    let (work, base, p) = with_pebble("bastion-md-pebble-err");
    let store = Store::open(&base).unwrap();
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

#[tokio::test(flavor = "current_thread")]
async fn account_register_validate_agree_deactivate() {
    let (work, base, p) = with_pebble("bastion-md-pebble-acct");
    let mut driver = Driver::new(Store::open(&base).unwrap(), config(&p));
    let contacts = vec!["mailto:admin@test.example".to_string()];
    let e = driver
        .register_account(&p.dir_url, &contacts, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("terms of service"), "{e}");
    let name = driver
        .register_account(&p.dir_url, &contacts, Some("accepted"))
        .await
        .unwrap_or_else(|e| panic!("register: {e}\n{}", report(&work)));
    assert!(name.starts_with("ACME-localhost-"), "{name}");
    let j = driver.validate_account(&name).await.unwrap();
    assert_eq!(j.status, "valid");
    driver
        .agree_account(&name, "https://tos.example/v2")
        .await
        .unwrap();
    let j: AccountJson = driver
        .store()
        .read_json(Group::Accounts, &name, "account.json")
        .unwrap()
        .unwrap();
    assert_eq!(j.agreement.as_deref(), Some("https://tos.example/v2"));
    driver.deactivate_account(&name).await.unwrap();
    let j: AccountJson = driver
        .store()
        .read_json(Group::Accounts, &name, "account.json")
        .unwrap()
        .unwrap();
    assert_eq!(j.status, "deactivated");
    // The CA no longer accepts the account.
    assert!(driver.validate_account(&name).await.is_err());
    assert!(driver.validate_account("ACME-nope-0000").await.is_err());
    drop(p);
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "current_thread")]
async fn failover_to_the_next_ca_after_retry_failover_errors() {
    let (work, base, p) = with_pebble("bastion-md-pebble-fo");
    // The first CA does not answer (nothing listens on the discard port); MDRetryFailover 2.
    let mut m = md(&p, "failover.example", &[], &[KeySpec::P256]);
    m.ca.urls = vec!["https://127.0.0.1:9/dir".into(), p.dir_url.clone()];
    let mut driver = Driver::new(
        Store::open(&base).unwrap(),
        DriverConfig {
            retry_delay: Duration::from_millis(20),
            retry_failover: 2,
            ..config(&p)
        },
    );
    let mut errors = 0;
    let out = loop {
        match driver.drive(&m).await {
            Ok(Outcome::Backoff { next_run }) => {
                let wait = next_run
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                assert!(wait < Duration::from_secs(5), "backoff too long: {wait:?}");
                tokio::time::sleep(wait).await;
            }
            Ok(o) => break o,
            Err(e) => {
                errors += 1;
                assert!(
                    errors <= 2,
                    "still failing after the failover: {e}\n{}",
                    report(&work)
                );
            }
        }
    };
    assert!(matches!(out, Outcome::Renewed { .. }), "{out:?}");
    assert_eq!(errors, 2, "MDRetryFailover 2: two errors with the first CA");
    let acct: AccountJson = driver
        .store()
        .read_json(
            Group::Accounts,
            &accounts(driver.store())[0],
            "account.json",
        )
        .unwrap()
        .unwrap();
    assert_eq!(acct.ca_url, p.dir_url, "issued by the second CA");
    drop(p);
    let _ = std::fs::remove_dir_all(&work);
}
