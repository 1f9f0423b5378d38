//! Certificate selection for a virtual host, with OCSP stapling swapped in at
//! runtime, and a one-off resolver for tls-alpn-01 challenge certificates.
//!
//! A handshake takes a read lock and clones one `Arc`; updating a staple builds one
//! new [`CertifiedKey`] (sharing chain and signing key) once, not per handshake.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certs::CertInfo;

/// Errors from resolver updates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolverError {
    /// The index is past the end of the key list.
    #[error("no certificate at index {index} (the virtual host has {len})")]
    NoSuchKey {
        /// The index asked for.
        index: usize,
        /// The number of keys.
        len: usize,
    },
    /// No key's leaf certificate equals the one given.
    #[error("no certificate of this virtual host has that leaf")]
    NoSuchLeaf,
}

#[derive(Debug)]
struct Slot {
    /// The key as loaded, without a staple.
    base: Arc<CertifiedKey>,
    /// What handshakes get: `base`, or a copy with an OCSP response.
    current: RwLock<Arc<CertifiedKey>>,
    /// Facts about the leaf (for `SSL_SERVER_*`), if the caller gave them.
    info: Option<Arc<CertInfo>>,
    /// The id the certificate is known under to the OCSP stapling provider, if any.
    ocsp_id: Option<Arc<[u8]>>,
}

/// One certificate of a virtual host with what belongs to it: the facts the `SSL_SERVER_*`
/// variables are computed from and the id its OCSP responses are fetched under. Kept
/// together so that a replaced set never pairs a key with another certificate's facts or
/// staple.
#[derive(Debug, Clone)]
pub struct CertEntry {
    /// Chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// Facts about the leaf.
    pub info: Option<Arc<CertInfo>>,
    /// The stapling provider's id for this certificate.
    pub ocsp_id: Option<Arc<[u8]>>,
}

impl CertEntry {
    /// An entry with only a key.
    pub fn key(key: Arc<CertifiedKey>) -> Self {
        Self {
            key,
            info: None,
            ocsp_id: None,
        }
    }
}

/// What a handshake was given: the entry's position, its key (with its current staple),
/// its facts and stapling id.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Position in the set (resolver order).
    pub index: usize,
    /// The key, with the current staple.
    pub key: Arc<CertifiedKey>,
    /// Facts about the leaf.
    pub info: Option<Arc<CertInfo>>,
    /// The stapling provider's id.
    pub ocsp_id: Option<Arc<[u8]>>,
}

impl Slot {
    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set(&self, ck: Arc<CertifiedKey>) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = ck;
    }
}

/// The certificates of one virtual host, in `TLSCertificate` order. A handshake gets
/// the first whose key can sign with one of the client's signature schemes. The whole
/// set can be replaced at runtime ([`VhostCertResolver::replace`], for a renewed managed
/// certificate); a handshake sees the old set or the new one, never a mix.
#[derive(Debug)]
pub struct VhostCertResolver {
    slots: RwLock<Arc<Vec<Slot>>>,
}

fn make_slots(entries: Vec<CertEntry>) -> Arc<Vec<Slot>> {
    Arc::new(
        entries
            .into_iter()
            .map(|e| Slot {
                current: RwLock::new(e.key.clone()),
                base: e.key,
                info: e.info,
                ocsp_id: e.ocsp_id,
            })
            .collect(),
    )
}

impl VhostCertResolver {
    /// A resolver over `keys`, in preference order.
    pub fn new(keys: Vec<Arc<CertifiedKey>>) -> Self {
        Self {
            slots: RwLock::new(make_slots(keys.into_iter().map(CertEntry::key).collect())),
        }
    }

    fn slots(&self) -> Arc<Vec<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces every certificate (OCSP staples of the old ones are dropped).
    pub fn replace(&self, entries: Vec<CertEntry>) {
        *self
            .slots
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = make_slots(entries);
    }

    /// The current set as entries (keys without their staples), e.g. to annotate them
    /// with facts and stapling ids and [`replace`](Self::replace) them before serving.
    pub fn entries(&self) -> Vec<CertEntry> {
        self.slots()
            .iter()
            .map(|s| CertEntry {
                key: s.base.clone(),
                info: s.info.clone(),
                ocsp_id: s.ocsp_id.clone(),
            })
            .collect()
    }

    /// The number of certificates.
    pub fn len(&self) -> usize {
        self.slots().len()
    }

    /// Whether there are no certificates.
    pub fn is_empty(&self) -> bool {
        self.slots().is_empty()
    }

    /// The certificates as handshakes currently see them (with staples).
    pub fn keys(&self) -> Vec<Arc<CertifiedKey>> {
        self.slots().iter().map(Slot::current).collect()
    }

    /// Set (or, with `None`, remove) the OCSP response stapled for the key at `index`.
    /// An unchanged response is not rebuilt.
    pub fn set_ocsp(&self, index: usize, ocsp: Option<Vec<u8>>) -> Result<(), ResolverError> {
        let slots = self.slots();
        let slot = slots.get(index).ok_or(ResolverError::NoSuchKey {
            index,
            len: slots.len(),
        })?;
        if slot.current().ocsp == ocsp {
            return Ok(());
        }
        let next = match ocsp {
            None => slot.base.clone(),
            Some(resp) => {
                let mut ck = (*slot.base).clone();
                ck.ocsp = Some(resp);
                Arc::new(ck)
            }
        };
        slot.set(next);
        tracing::debug!(index, "OCSP staple updated");
        Ok(())
    }

    /// As [`set_ocsp`](Self::set_ocsp), for the key whose leaf certificate is
    /// `leaf_der` (every key with that leaf is updated).
    pub fn set_ocsp_for_leaf(
        &self,
        leaf_der: &[u8],
        ocsp: Option<Vec<u8>>,
    ) -> Result<(), ResolverError> {
        let mut found = false;
        for (i, slot) in self.slots().iter().enumerate() {
            if slot
                .base
                .cert
                .first()
                .is_some_and(|c| c.as_ref() == leaf_der)
            {
                self.set_ocsp(i, ocsp.clone())?;
                found = true;
            }
        }
        if found {
            Ok(())
        } else {
            Err(ResolverError::NoSuchLeaf)
        }
    }

    /// The key a client offering `schemes` would get.
    pub fn select(&self, schemes: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.select_entry(schemes).map(|s| s.key)
    }

    /// As [`select`](Self::select), with the entry's position, facts and stapling id, all
    /// from one consistent set.
    pub fn select_entry(&self, schemes: &[rustls::SignatureScheme]) -> Option<Selected> {
        self.slots().iter().enumerate().find_map(|(index, slot)| {
            let key = slot.current();
            key.key.choose_scheme(schemes).is_some().then(|| Selected {
                index,
                key,
                info: slot.info.clone(),
                ocsp_id: slot.ocsp_id.clone(),
            })
        })
    }
}

impl ResolvesServerCert for VhostCertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = self.select(client_hello.signature_schemes());
        if found.is_none() {
            tracing::debug!(
                sni = client_hello.server_name().unwrap_or(""),
                "no certificate compatible with the client's signature schemes"
            );
        }
        found
    }
}

/// Serves exactly one certificate, whatever the client says: for a tls-alpn-01
/// challenge answered on one connection.
#[derive(Debug, Clone)]
pub struct ChallengeResolver(pub Arc<CertifiedKey>);

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use rustls::SignatureScheme;

    #[test]
    fn selects_by_scheme() {
        let ec = loaded(Kind::EcP256, &["a.example"]).certified_key;
        let rsa = loaded(Kind::Rsa, &["a.example"]).certified_key;
        let r = VhostCertResolver::new(vec![ec.clone(), rsa.clone()]);
        let all = [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
        ];
        assert!(Arc::ptr_eq(&r.select(&all).unwrap(), &ec));
        let rsa_only = [SignatureScheme::RSA_PKCS1_SHA256];
        assert!(Arc::ptr_eq(&r.select(&rsa_only).unwrap(), &rsa));
        assert!(r.select(&[SignatureScheme::ED25519]).is_none());
    }

    #[test]
    fn replace_swaps_the_whole_set() {
        let ec = loaded(Kind::EcP256, &["a.example"]).certified_key;
        let rsa = loaded(Kind::Rsa, &["a.example"]).certified_key;
        let r = VhostCertResolver::new(vec![ec.clone()]);
        r.set_ocsp(0, Some(vec![9])).unwrap();
        r.replace(vec![
            CertEntry::key(rsa.clone()),
            CertEntry::key(ec.clone()),
        ]);
        assert_eq!(r.len(), 2);
        let all = [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
        ];
        assert!(Arc::ptr_eq(&r.select(&all).unwrap(), &rsa));
        assert!(r.keys().iter().all(|k| k.ocsp.is_none()));
    }

    #[test]
    fn ocsp_swap_builds_once() {
        let ec = loaded(Kind::EcP256, &["a.example"]).certified_key;
        let r = VhostCertResolver::new(vec![ec.clone()]);
        let schemes = [SignatureScheme::ECDSA_NISTP256_SHA256];
        r.set_ocsp(0, Some(vec![1, 2, 3])).unwrap();
        let a = r.select(&schemes).unwrap();
        let b = r.select(&schemes).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "no copy per handshake");
        assert_eq!(a.ocsp.as_deref(), Some(&[1u8, 2, 3][..]));
        assert!(Arc::ptr_eq(&a.key, &ec.key), "signing key shared");
        // same value: unchanged
        r.set_ocsp(0, Some(vec![1, 2, 3])).unwrap();
        assert!(Arc::ptr_eq(&a, &r.select(&schemes).unwrap()));
        r.set_ocsp_for_leaf(ec.cert[0].as_ref(), None).unwrap();
        assert!(Arc::ptr_eq(&ec, &r.select(&schemes).unwrap()));
        assert_eq!(
            r.set_ocsp(3, None),
            Err(ResolverError::NoSuchKey { index: 3, len: 1 })
        );
        assert_eq!(
            r.set_ocsp_for_leaf(b"nope", None),
            Err(ResolverError::NoSuchLeaf)
        );
    }
}
