use super::*;
use sha2::{Digest, Sha256};

const S: usize = 65536;

fn dk() -> DataKey {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = i as u8;
    }
    DataKey::from_bytes(b)
}

fn kid() -> KeyId {
    KeyId::new("alice", 1).unwrap()
}

fn salt() -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, x) in b.iter_mut().enumerate() {
        *x = 0x20 + i as u8;
    }
    b
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Tiny deterministic generator for chunk sizes (xorshift64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn encrypt_all(header: &Header, plain: &[u8]) -> Vec<u8> {
    let mut e = Encryptor::with_header(&dk(), header.clone());
    let mut out = e.push(plain).unwrap();
    out.extend(e.finish().unwrap());
    out
}

fn encrypt_chunked(header: &Header, plain: &[u8], rng: &mut Rng, max: usize) -> Vec<u8> {
    let mut e = Encryptor::with_header(&dk(), header.clone());
    let mut out = Vec::new();
    let mut rest = plain;
    while !rest.is_empty() {
        let n = (rng.below(max) + 1).min(rest.len());
        e.push_into(&rest[..n], &mut out).unwrap();
        rest = &rest[n..];
    }
    out.extend(e.finish().unwrap());
    out
}

/// Decrypts a whole object, parsing the header with a HeaderReader.
fn decrypt_chunked(obj: &[u8], rng: &mut Rng, max: usize) -> Result<Vec<u8>, StreamError> {
    let mut hr = HeaderReader::new();
    let mut rest = obj;
    let mut dec: Option<Decryptor> = None;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let n = (rng.below(max) + 1).min(rest.len());
        let chunk = &rest[..n];
        rest = &rest[n..];
        match &mut dec {
            Some(d) => d.push_into(chunk, &mut out)?,
            None => {
                if let Some((h, body)) = hr.push(chunk)? {
                    let mut d = Decryptor::new(&dk(), &h);
                    d.push_into(&body, &mut out)?;
                    dec = Some(d);
                }
            }
        }
    }
    let d = dec.ok_or(FormatError::Truncated { got: 0, need: 48 })?;
    out.extend(d.finish()?);
    Ok(out)
}

fn decrypt_all(obj: &[u8]) -> Result<Vec<u8>, StreamError> {
    let (h, n) = Header::parse(obj)?;
    let mut d = Decryptor::new(&dk(), &h);
    let mut out = d.push(&obj[n..])?;
    out.extend(d.finish()?);
    Ok(out)
}

const SIZES: &[usize] = &[
    0,
    1,
    15,
    16,
    17,
    S - 1,
    S,
    S + 1,
    2 * S,
    2 * S + 7,
    3 * 1024 * 1024 + 5,
];

#[test]
fn round_trips_both_ciphers() {
    for cipher in [CipherSuite::Aes256Ctr, CipherSuite::Aes256Gcm] {
        let h = Header::with_salt(cipher, kid(), salt());
        for &n in SIZES {
            let p = pattern(n);
            let obj = encrypt_all(&h, &p);
            assert_eq!(
                obj.len() as u64,
                h.object_len(n as u64).unwrap(),
                "{cipher} {n}"
            );
            assert_eq!(h.plaintext_len(obj.len() as u64).unwrap(), n as u64);
            if cipher == CipherSuite::Aes256Ctr {
                assert_eq!(obj.len(), n + h.len());
            }
            assert_eq!(decrypt_all(&obj).unwrap(), p, "{cipher} {n}");
        }
    }
}

#[test]
fn random_chunking_matches_one_push() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for cipher in [CipherSuite::Aes256Ctr, CipherSuite::Aes256Gcm] {
        let h = Header::with_salt(cipher, kid(), salt());
        for &n in SIZES {
            let p = pattern(n);
            let whole = encrypt_all(&h, &p);
            for max in [1usize, 7, 4096, 70000, 300_000] {
                if (max == 1 && n > S + 1) || (max < 4096 && n > 2 * S + 7) {
                    continue;
                }
                let chunked = encrypt_chunked(&h, &p, &mut rng, max);
                assert_eq!(chunked, whole, "{cipher} n={n} max={max}");
                assert_eq!(decrypt_chunked(&whole, &mut rng, max).unwrap(), p);
            }
        }
    }
}

#[test]
fn fresh_salt_every_object() {
    for cipher in [CipherSuite::Aes256Ctr, CipherSuite::Aes256Gcm] {
        let p = b"same plaintext, same data key";
        let mut a = Encryptor::new(&dk(), kid(), cipher).unwrap();
        let mut b = Encryptor::new(&dk(), kid(), cipher).unwrap();
        let mut ca = a.push(p).unwrap();
        ca.extend(a.finish().unwrap());
        let mut cb = b.push(p).unwrap();
        cb.extend(b.finish().unwrap());
        assert_ne!(ca, cb);
        let h = ca.len() - cb.len() + 52;
        assert_ne!(ca[h..], cb[h..]);
        assert_eq!(decrypt_all(&ca).unwrap(), p);
        assert_eq!(decrypt_all(&cb).unwrap(), p);
    }
}

fn gcm_obj(n: usize) -> (Header, Vec<u8>) {
    let h = Header::with_salt(CipherSuite::Aes256Gcm, kid(), salt());
    let obj = encrypt_all(&h, &pattern(n));
    (h, obj)
}

#[test]
fn gcm_detects_tampering() {
    let (h, obj) = gcm_obj(2 * S + 100);
    let hl = h.len();
    for pos in [hl, hl + 5, hl + S + 15, hl + S + 16, obj.len() - 1] {
        let mut bad = obj.clone();
        bad[pos] ^= 0x80;
        let err = decrypt_all(&bad).unwrap_err();
        assert!(
            matches!(err, StreamError::Authentication { .. }),
            "{pos}: {err}"
        );
    }
    // the header is bound too: change the key version byte or a salt byte
    for pos in [13, 20] {
        let mut bad = obj.clone();
        bad[pos] ^= 1;
        assert!(matches!(
            decrypt_all(&bad).unwrap_err(),
            StreamError::Authentication { segment: 0, .. }
        ));
    }
    // wrong data key
    let (hh, n) = Header::parse(&obj).unwrap();
    let mut d = Decryptor::new(&DataKey::from_bytes([7; 32]), &hh);
    assert!(d.push(&obj[n..]).is_err());
}

#[test]
fn gcm_releases_nothing_unverified() {
    let (h, obj) = gcm_obj(3 * S);
    let seg_ct = S + 16;
    let mut bad = obj.clone();
    bad[h.len() + seg_ct + 10] ^= 1; // corrupt segment 1
    let mut d = Decryptor::new(&dk(), &h);
    let mut out = Vec::new();
    // feed segment 0 and all but one byte of segment 1, one byte at a time
    for b in &bad[h.len()..h.len() + 2 * seg_ct - 1] {
        d.push_into(std::slice::from_ref(b), &mut out).unwrap();
    }
    // segment 0 is released only once a byte of segment 1 proved it non-final
    assert_eq!(out.len(), S);
    let err = d
        .push_into(&bad[h.len() + 2 * seg_ct - 1..], &mut out)
        .unwrap_err();
    assert!(
        matches!(err, StreamError::Authentication { segment: 1, .. }),
        "{err}"
    );
    assert_eq!(out.len(), S, "no byte of the forged segment released");
    assert_eq!(d.push(b"x").unwrap_err(), StreamError::Poisoned);
}

#[test]
fn gcm_detects_truncation() {
    let (h, obj) = gcm_obj(2 * S + 100);
    let seg_ct = S + 16;
    let hl = h.len();
    // cut at a segment boundary: the last remaining segment is not final
    let err = decrypt_all(&obj[..hl + 2 * seg_ct]).unwrap_err();
    assert!(matches!(err, StreamError::Truncated { .. }), "{err}");
    let err = decrypt_all(&obj[..hl + seg_ct]).unwrap_err();
    assert!(matches!(err, StreamError::Truncated { .. }), "{err}");
    // cut inside a segment
    let err = decrypt_all(&obj[..obj.len() - 1]).unwrap_err();
    assert!(matches!(err, StreamError::Authentication { .. }), "{err}");
    // nothing after the header
    let err = decrypt_all(&obj[..hl]).unwrap_err();
    assert!(
        matches!(err, StreamError::Truncated { segments: 0, .. }),
        "{err}"
    );
    // fewer than 16 bytes
    let err = decrypt_all(&obj[..hl + 10]).unwrap_err();
    assert!(matches!(err, StreamError::Truncated { .. }), "{err}");
    // an exact multiple of S cut after the first full segment
    let (h2, obj2) = gcm_obj(2 * S);
    let err = decrypt_all(&obj2[..h2.len() + seg_ct]).unwrap_err();
    assert!(matches!(err, StreamError::Truncated { .. }), "{err}");
}

#[test]
fn gcm_detects_reordering_and_extension() {
    let (h, obj) = gcm_obj(3 * S + 10);
    let seg_ct = S + 16;
    let hl = h.len();
    let segs: Vec<&[u8]> = obj[hl..].chunks(seg_ct).collect();
    let mut swapped = obj[..hl].to_vec();
    for i in [1, 0, 2, 3] {
        swapped.extend_from_slice(segs[i]);
    }
    let err = decrypt_all(&swapped).unwrap_err();
    assert!(
        matches!(err, StreamError::Authentication { segment: 0, .. }),
        "{err}"
    );
    // drop a middle segment
    let mut dropped = obj[..hl].to_vec();
    for i in [0, 2, 3] {
        dropped.extend_from_slice(segs[i]);
    }
    assert!(decrypt_all(&dropped).is_err());
    // trailing garbage after the final segment: detected; when the final
    // segment is partial the boundary is unknown, so it shows as a failed tag
    let mut ext = obj.clone();
    ext.extend_from_slice(b"garbage");
    assert!(matches!(
        decrypt_all(&ext).unwrap_err(),
        StreamError::Authentication { segment: 3, .. }
    ));
    let (_, full) = gcm_obj(3 * S);
    let mut ext = full.clone();
    ext.extend_from_slice(b"garbage");
    let err = decrypt_all(&ext).unwrap_err();
    assert!(
        matches!(err, StreamError::TrailingData { segment: 2, .. }),
        "{err}"
    );
    // a duplicated final segment
    let mut dup = full.clone();
    dup.extend_from_slice(&full[full.len() - seg_ct..]);
    assert!(matches!(
        decrypt_all(&dup).unwrap_err(),
        StreamError::TrailingData { segment: 2, .. }
    ));
    // a segment taken from another object under the same key
    let (_, other) = gcm_obj(3 * S + 10);
    let other_h = Header::with_salt(CipherSuite::Aes256Gcm, kid(), [9; 32]);
    let other2 = encrypt_all(&other_h, &pattern(3 * S + 10));
    assert_eq!(other, obj);
    let mut mixed = obj[..hl + seg_ct].to_vec();
    mixed.extend_from_slice(&other2[hl + seg_ct..]);
    assert!(matches!(
        decrypt_all(&mixed).unwrap_err(),
        StreamError::Authentication { segment: 1, .. }
    ));
}

#[test]
fn ctr_ranged_decrypt_equals_slice() {
    let h = Header::with_salt(CipherSuite::Aes256Ctr, kid(), salt());
    let n = 3 * S + 123;
    let p = pattern(n);
    let obj = encrypt_all(&h, &p);
    for (a, b) in [
        (0, 1),
        (0, n),
        (15, 17),
        (16, 32),
        (S - 3, S + 70),
        (n - 1, n),
        (1000, 190_000),
    ] {
        let plan = RangePlan::new(&h, obj.len() as u64, a as u64..b as u64).unwrap();
        assert_eq!(
            plan.object_range,
            (h.len() + a) as u64..(h.len() + b) as u64
        );
        let r = plan.object_range.start as usize..plan.object_range.end as usize;
        let mut d = Decryptor::ranged(&dk(), &h, &plan);
        let mut out = Vec::new();
        for c in obj[r.clone()].chunks(777) {
            d.push_into(c, &mut out).unwrap();
        }
        out.extend(d.finish().unwrap());
        assert_eq!(out, &p[a..b], "{a}..{b}");
        // ctr_at_offset with the rest of the object
        let mut d = Decryptor::ctr_at_offset(&dk(), &h, a as u64);
        let mut out = d.push(&obj[h.len() + a..]).unwrap();
        out.extend(d.finish().unwrap());
        assert_eq!(out, &p[a..]);
        // too much data is refused, too little reported
        let mut d = Decryptor::ranged(&dk(), &h, &plan);
        assert!(d.push(&obj[r.start..(r.end + 1).min(obj.len())]).is_err() || r.end == obj.len());
        let mut d = Decryptor::ranged(&dk(), &h, &plan);
        d.push(&obj[r.start..r.end - 1]).unwrap();
        assert!(matches!(d.finish(), Err(StreamError::Truncated { .. })));
    }
}

#[test]
fn gcm_ranged_decrypt_equals_slice() {
    for n in [10, S, S + 1, 3 * S + 123] {
        let (h, obj) = gcm_obj(n);
        let p = pattern(n);
        let seg_ct = (S + 16) as u64;
        let mut cases = vec![(0, 1), (0, n), (n - 1, n)];
        if n > S {
            cases.extend([(S - 3, S + 1), (S, S + 1), (S + 1, n), (5, S)]);
        }
        if n > 3 * S {
            cases.extend([(S, 2 * S), (2 * S - 1, 3 * S + 1), (3 * S, n)]);
        }
        for (a, b) in cases.into_iter().filter(|(a, b)| a < b) {
            let plan = RangePlan::new(&h, obj.len() as u64, a as u64..b as u64).unwrap();
            let hl = h.len() as u64;
            assert_eq!(plan.object_range.start, hl + (a / S) as u64 * seg_ct);
            assert!((plan.object_range.start - hl).is_multiple_of(seg_ct));
            let r = plan.object_range.start as usize..plan.object_range.end as usize;
            let mut d = Decryptor::ranged(&dk(), &h, &plan);
            let mut out = Vec::new();
            for c in obj[r.clone()].chunks(1000) {
                d.push_into(c, &mut out).unwrap();
            }
            out.extend(d.finish().unwrap());
            assert_eq!(out, &p[a..b], "n={n} {a}..{b}");
            assert_eq!(plan.len(), (b - a) as u64);

            // tamper inside the fetched range
            let mut bad = obj[r.clone()].to_vec();
            let mid = bad.len() / 2;
            bad[mid] ^= 4;
            let mut d = Decryptor::ranged(&dk(), &h, &plan);
            let res = d.push(&bad).and_then(|_| d.finish());
            assert!(res.is_err(), "n={n} {a}..{b}");

            // truncated range
            let mut d = Decryptor::ranged(&dk(), &h, &plan);
            let res = d.push(&obj[r.start..r.end - 1]).and_then(|_| d.finish());
            assert!(res.is_err());

            // extra data
            if r.end < obj.len() {
                let mut d = Decryptor::ranged(&dk(), &h, &plan);
                assert!(d.push(&obj[r.start..r.end + 1]).is_err());
            }
        }
        assert!(RangePlan::new(&h, obj.len() as u64, 0..n as u64 + 1).is_err());
        assert!(RangePlan::new(&h, obj.len() as u64, 3..3).is_err());
    }
}

#[test]
fn header_reader_rejects_early() {
    let mut hr = HeaderReader::new();
    assert!(hr.push(b"MEN").unwrap().is_none());
    assert_eq!(hr.push(b"X").unwrap_err(), FormatError::BadMagic);
    let mut hr = HeaderReader::new();
    assert_eq!(
        hr.push(b"GET / HTTP/1.1").unwrap_err(),
        FormatError::BadMagic
    );
}

#[test]
fn big_object_bounded_buffers() {
    // 16 MiB through 8 KiB pushes: every output is about the size of its input.
    let h = Header::with_salt(CipherSuite::Aes256Gcm, kid(), salt());
    let mut e = Encryptor::with_header(&dk(), h.clone());
    let mut d = Decryptor::new(&dk(), &h);
    let chunk = vec![0x5a; 8192];
    let mut hasher_in = Sha256::new();
    let mut hasher_out = Sha256::new();
    let mut first = true;
    let mut max_out = 0;
    for _ in 0..2048 {
        hasher_in.update(&chunk);
        let mut ct = e.push(&chunk).unwrap();
        if first {
            ct.drain(..h.len());
            first = false;
        }
        max_out = max_out.max(ct.len());
        let pt = d.push(&ct).unwrap();
        max_out = max_out.max(pt.len());
        hasher_out.update(&pt);
    }
    let pt = d.push(&e.finish().unwrap()).unwrap();
    hasher_out.update(&pt);
    hasher_out.update(d.finish().unwrap());
    assert_eq!(hasher_in.finalize(), hasher_out.finalize());
    assert!(max_out <= S + 16, "{max_out}");
}

// ---- test vectors (documented in docs/format.md) ----

/// The vectors of docs/format.md §8 (checked independently with Python's
/// `cryptography` package).
#[test]
fn vectors_match_docs() {
    const CTR_HEADER: &str = "4d454e4302010000003400000001202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f05616c696365";
    const GCM_HEADER: &str = "4d454e4302021000003400000001202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f05616c696365";
    let ctr = Header::with_salt(CipherSuite::Aes256Ctr, kid(), salt());
    let gcm = Header::with_salt(CipherSuite::Aes256Gcm, kid(), salt());
    assert_eq!(hex(&ctr.to_bytes()), CTR_HEADER);
    assert_eq!(hex(&gcm.to_bytes()), GCM_HEADER);

    let ok = derive_object_keys(&dk(), &salt(), &ctr.to_bytes());
    assert_eq!(
        hex(ok.key()),
        "2b72d031fd5034c9bb27b85ba74da40c7f25f73830377315b11669295eeff216"
    );
    assert_eq!(hex(ok.iv()), "dd9ca747d89699f7a9c6bb07f32aa543");
    let ok = derive_object_keys(&dk(), &salt(), &gcm.to_bytes());
    assert_eq!(
        hex(ok.key()),
        "644ca6a12b24ce4b5db4825e81fd3dead6b2a83e18b8981a3e21e059345edf3b"
    );
    assert_eq!(hex(&ok.nonce_prefix()), "a3bb4c659b948f");

    assert_eq!(
        hex(&encrypt_all(&ctr, b"teststring")),
        format!("{CTR_HEADER}102b866d5a120349dcca")
    );
    assert_eq!(
        hex(&encrypt_all(&gcm, b"teststring")),
        format!("{GCM_HEADER}1d71bc064b86b73e157b5d73547f6a6ac1499e2c7f29349c4c8b")
    );
    assert_eq!(
        hex(&encrypt_all(&gcm, b"")),
        format!("{GCM_HEADER}4353dce568811ed25a09c29a0646c5b1")
    );
    assert_eq!(
        hex(&Sha256::digest(encrypt_all(&ctr, &pattern(S + 10)))),
        "5a4a6cef5091f1e57b68b37e1870ca243b06b61f267afd3843576da7c753d66c"
    );
    assert_eq!(
        hex(&Sha256::digest(encrypt_all(&gcm, &pattern(S + 10)))),
        "3a35ed46a86d7cea9c20982508f8be5228094170d6c0f9263080c0bea8d5c9a4"
    );
}
