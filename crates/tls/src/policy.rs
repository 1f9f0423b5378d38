//! What a request on a TLS connection is answered with, before any handler runs.

/// The facts about a TLS connection that decide a request's fate.
#[derive(Clone, Copy, Debug)]
pub struct ConnFacts {
    /// The client sent SNI.
    pub has_sni: bool,
    /// Several virtual hosts share the connection's address (name-based).
    pub name_based: bool,
    /// The connection answers a tls-alpn-01 challenge: it serves no requests.
    pub challenge: bool,
    /// The SNI-selected host has only a fallback certificate (its real one is not there yet).
    pub service_unavailable: bool,
}

/// How the request's virtual host (chosen by `Host`) relates to the SNI-selected one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFit {
    /// The same host, or one with the same certificates and TLS settings.
    Compatible,
    /// A host whose certificates or settings differ (or that has no TLS here).
    Incompatible,
}

/// The status to answer instead of serving the request, if any:
/// 503 for challenge connections and hosts on a fallback certificate, 403 for a
/// connection without SNI on a name-based address (as mod_tls), 421 when `Host` names a
/// host the connection's TLS session does not fit.
pub fn request_status(conn: ConnFacts, fit: HostFit) -> Option<u16> {
    if conn.challenge || conn.service_unavailable {
        return Some(503);
    }
    if !conn.has_sni && conn.name_based {
        return Some(403);
    }
    (fit == HostFit::Incompatible).then_some(421)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: ConnFacts = ConnFacts {
        has_sni: true,
        name_based: true,
        challenge: false,
        service_unavailable: false,
    };

    #[test]
    fn outcomes() {
        assert_eq!(request_status(OK, HostFit::Compatible), None);
        assert_eq!(request_status(OK, HostFit::Incompatible), Some(421));
        assert_eq!(
            request_status(
                ConnFacts {
                    has_sni: false,
                    ..OK
                },
                HostFit::Compatible
            ),
            Some(403)
        );
        assert_eq!(
            request_status(
                ConnFacts {
                    has_sni: false,
                    name_based: false,
                    ..OK
                },
                HostFit::Compatible
            ),
            None
        );
        assert_eq!(
            request_status(
                ConnFacts {
                    challenge: true,
                    ..OK
                },
                HostFit::Compatible
            ),
            Some(503)
        );
        assert_eq!(
            request_status(
                ConnFacts {
                    service_unavailable: true,
                    ..OK
                },
                HostFit::Incompatible
            ),
            Some(503)
        );
    }
}
