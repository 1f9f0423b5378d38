//! The TLS connection filters: bytes from the network into rustls, plaintext up to httpd;
//! plaintext from httpd into rustls, TLS records down to the network.
//!
//! The handshake runs in the input filter when process_connection asks for `AP_MODE_INIT`
//! (before mod_http2 or HTTP/1.1 read anything). rustls' `Acceptor` reads the ClientHello
//! once; SNI picks the virtual host; ALPN is settled with httpd's protocol hooks; the host's
//! prebuilt config accepts the connection. Nothing is built per connection.

use super::Vhost;
use crate::httpd::brigade::{Brigade, Bucket, Kind, rv};
use crate::httpd::ffi::apr_status_t;
use crate::httpd::filter::{Filter, FilterRef, Mode};
use crate::httpd::{Conn, Server, ssl};
use rustls::server::{Accepted, Acceptor};
use std::ffi::CString;
use std::io::{BufRead, Write};
use std::sync::Arc;

/// The largest plaintext of one TLS record.
const RECORD_PLAIN: usize = 16 * 1024;
/// How much to ask the network for at once.
const NET_READ: i64 = 4 * (16 * 1024 + 1024);
/// Pass TLS records down once this many bytes are pending.
const OUT_CHUNK: usize = 64 * 1024;
/// The longest line `AP_MODE_GETLINE` returns without a newline.
const MAX_LINE: usize = 8192;

enum Phase {
    /// Server side, waiting for the ClientHello.
    Hello(Box<Acceptor>),
    /// Client side (to a backend), before the first byte goes out: the connection is made
    /// then, when mod_proxy has noted the backend's host name.
    ClientPending(bastion_tls::client::ClientSpec),
    /// A TLS connection, either side.
    Tls(Box<rustls::Connection>),
    Failed,
}

/// What the handshake settled, for variables and request checks.
#[derive(Clone, Debug, Default)]
pub struct Settled {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// Several hosts share this address (name-based virtual hosting).
    pub name_based: bool,
    /// A tls-alpn-01 challenge connection (serves no requests).
    pub challenge: bool,
    /// The negotiated protocol version.
    pub version: Option<rustls::ProtocolVersion>,
    /// The negotiated cipher suite.
    pub suite: Option<rustls::CipherSuite>,
    /// Whether the session was resumed.
    pub resumed: bool,
    /// The certificate served (chain, key, the facts for `SSL_SERVER_*`), as selected for
    /// this handshake: a later replacement of the host's set does not change it.
    pub cert: Option<bastion_tls::resolver::Selected>,
}

/// One TLS connection.
pub struct TlsConn {
    phase: Phase,
    /// The virtual host chosen by SNI.
    pub vhost: Option<Arc<Vhost>>,
    /// What the handshake settled.
    pub settled: Settled,
    out_filter: FilterRef,
    net: Brigade,
    out: Brigade,
    out_bytes: usize,
    /// Decrypted plaintext not yet read by httpd, in heap buckets (empty when idle).
    pending: Brigade,
    /// An HTTP/1.x response head held back for one output call, so that it goes out in the
    /// same record as the start of the body (see [`TlsConn::output`]).
    held: Brigade,
    /// A request was read on this connection and its response head has not been seen.
    may_hold: bool,
    eof: bool,
    /// Where the network bytes fed so far stand in the TLS record framing.
    framing: Framing,
    first_bytes: bool,
    /// The client side of a connection to a backend.
    client: bool,
    /// The variables every request on this connection gets (`HTTPS`, `SSL_TLS_SNI`,
    /// `SSL_PROTOCOL`, `SSL_CIPHER`), made once for the connection.
    pub always_env: Option<Vec<(CString, CString)>>,
}

/// Appends what rustls writes to a brigade, as heap buckets.
struct BrigadeWriter<'a> {
    bb: &'a mut Brigade,
    written: &'a mut usize,
}

impl Write for BrigadeWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bb.push_copy(buf);
        *self.written += buf.len();
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            n += self.write(b)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The TLS record framing of the bytes read from the network, so that an established
/// connection asks the network for no more than the record it is in: httpd's core input
/// filter, asked for more than it has, tries a further non-blocking `read()` (which fails
/// with EAGAIN after every small request).
#[derive(Default)]
struct Framing {
    /// Header bytes of the next record seen so far (0..5).
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current record's body still to come.
    body_left: usize,
    /// How many of the header bytes seen last (the end of `header[..header_len]`, or of the
    /// whole `header` once complete) have not been given to rustls yet (see [`TlsConn::feed`]).
    held: usize,
}

impl Framing {
    /// Notes that `data` was read.
    fn advance(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                self.header_len = 0;
                self.body_left = u16::from_be_bytes([self.header[3], self.header[4]]) as usize;
            }
        }
    }

    /// Whether the bytes read so far end exactly at the end of a record.
    fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.body_left == 0
    }

    /// Whether `data`, read next, holds nothing but (the rest of) the next record's header.
    fn header_only(&self, data: &[u8]) -> bool {
        self.body_left == 0 && data.len() <= 5 - self.header_len
    }

    /// The header bytes held back from rustls.
    fn held(&self) -> &[u8] {
        let end = if self.header_len > 0 {
            self.header_len
        } else {
            5
        };
        &self.header[end - self.held..end]
    }

    /// How many bytes complete the current record (or its header).
    fn want(&self) -> usize {
        if self.body_left > 0 {
            self.body_left
        } else {
            5 - self.header_len
        }
    }
}

/// A reader with nothing to give yet. rustls sizes its receive buffer before each read and,
/// when that buffer holds no partial record, shrinks it to its minimum; reading from this
/// triggers the shrink without feeding bytes (and, unlike an empty read, does not mean EOF).
struct NothingYet;

impl std::io::Read for NothingYet {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

/// Reads a stashed record header, then the bytes that follow it, in one `read` call.
struct Parts<'h, 't> {
    head: &'h [u8],
    tail: &'t [u8],
}

impl std::io::Read for Parts<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let h = self.head.len().min(buf.len());
        buf[..h].copy_from_slice(&self.head[..h]);
        self.head = &self.head[h..];
        let t = self.tail.len().min(buf.len() - h);
        buf[h..h + t].copy_from_slice(&self.tail[..t]);
        self.tail = &self.tail[t..];
        Ok(h + t)
    }
}

/// A failed connection: the status to return (the connection is aborted).
type Fail = apr_status_t;

impl TlsConn {
    /// A new connection waiting for its ClientHello.
    pub fn new(c: &Conn<'_>, out_filter: FilterRef) -> TlsConn {
        TlsConn {
            phase: Phase::Hello(Box::default()),
            vhost: None,
            settled: Settled::default(),
            out_filter,
            net: Brigade::for_conn(c),
            out: Brigade::for_conn(c),
            out_bytes: 0,
            pending: Brigade::for_conn(c),
            held: Brigade::for_conn(c),
            may_hold: false,
            eof: false,
            framing: Framing::default(),
            first_bytes: true,
            client: false,
            always_env: None,
        }
    }

    /// A connection to a backend, made TLS when it is first used.
    pub fn new_client(
        c: &Conn<'_>,
        out_filter: FilterRef,
        spec: bastion_tls::client::ClientSpec,
    ) -> TlsConn {
        let mut t = TlsConn::new(c, out_filter);
        t.phase = Phase::ClientPending(spec);
        t.first_bytes = false;
        t.client = true;
        t
    }

    /// Starts the client side: SNI and ALPN from the notes mod_proxy left on the connection.
    fn start_client(&mut self, c: &Conn<'_>) -> Result<(), Fail> {
        let Phase::ClientPending(spec) = &self.phase else {
            return Ok(());
        };
        let notes = c.notes();
        let host = notes
            .get("proxy-request-hostname")
            .unwrap_or("")
            .to_string();
        let alpn: Vec<Vec<u8>> = notes
            .get("proxy-request-alpn-protos")
            .map(|a| {
                a.split([',', ' '])
                    .filter(|p| !p.is_empty())
                    .map(|p| p.as_bytes().to_vec())
                    .collect()
            })
            .unwrap_or_default();
        let config = match super::client_config(spec, &alpn) {
            Ok(cfg) => cfg,
            Err(e) => return Err(self.fail(c, &format!("backend TLS: {e}"))),
        };
        let name = match rustls::pki_types::ServerName::try_from(host.clone()) {
            Ok(n) => n,
            Err(_) => {
                return Err(self.fail(c, &format!("backend TLS: no usable host name ({host:?})")));
            }
        };
        match rustls::ClientConnection::new(config, name) {
            Ok(conn) => {
                self.settled.sni = Some(host);
                self.phase = Phase::Tls(Box::new(rustls::Connection::Client(conn)));
                Ok(())
            }
            Err(e) => Err(self.fail(c, &format!("backend TLS: {e}"))),
        }
    }

    /// An HTTP/1.x request was read on this connection (not a tunnel: no `CONNECT`, no
    /// `Upgrade`): its response head may be held back for one output call.
    pub fn expect_response(&mut self) {
        self.may_hold = !self.client;
    }

    /// Whether the handshake is complete.
    pub fn is_established(&self) -> bool {
        matches!(&self.phase, Phase::Tls(t) if !t.is_handshaking())
    }

    /// The length of the first line of pending plaintext (up to and with its LF), or of
    /// what is pending, at most [`MAX_LINE`] bytes.
    fn line_len(&self) -> Result<usize, Fail> {
        let mut n = 0;
        let mut cur = self.pending.first();
        while let Some(b) = cur {
            let data = b.read(true)?;
            if let Some(i) = data.iter().position(|&x| x == b'\n') {
                return Ok((n + i + 1).min(MAX_LINE));
            }
            n += data.len();
            if n >= MAX_LINE {
                return Ok(MAX_LINE);
            }
            cur = self.pending.next(b);
        }
        Ok(n)
    }

    /// Sends raw bytes (alerts, a plain-HTTP answer) below our output filter, flushed.
    fn send_raw(&mut self, data: &[u8]) -> apr_status_t {
        self.out.push_copy(data);
        self.out.push_flush();
        let rv = self.out_filter.pass_below(&mut self.out);
        self.out.clear();
        rv
    }

    /// Moves pending TLS records from rustls to `self.out`.
    fn collect_tls(&mut self) -> Result<(), Fail> {
        let TlsConn {
            phase,
            out,
            out_bytes,
            ..
        } = self;
        let Phase::Tls(conn) = phase else {
            return Ok(());
        };
        // Records go from rustls' buffer straight into heap buckets: one copy, no scratch
        // buffer kept per connection.
        let mut w = BrigadeWriter {
            bb: out,
            written: out_bytes,
        };
        while conn.wants_write() {
            if conn.write_tls(&mut w).is_err() {
                return Err(rv::EGENERAL);
            }
        }
        Ok(())
    }

    /// Sends whatever rustls has pending, flushed (handshake flights, alerts, tickets).
    fn flush_tls(&mut self) -> Result<(), Fail> {
        self.collect_tls()?;
        if self.out.is_empty() {
            return Ok(());
        }
        self.out.push_flush();
        let r = self.out_filter.pass_below(&mut self.out);
        self.out.clear();
        self.out_bytes = 0;
        if r == rv::SUCCESS { Ok(()) } else { Err(r) }
    }

    fn fail(&mut self, c: &Conn<'_>, why: &str) -> Fail {
        if self.client {
            // A backend the proxy cannot reach securely: the administrator needs to know why.
            tracing::error!(
                "TLS to backend {} failed: {why}",
                self.settled.sni.as_deref().unwrap_or("?")
            );
        } else {
            tracing::debug!("TLS connection failed: {why}");
        }
        let _ = self.flush_tls();
        self.phase = Phase::Failed;
        c.set_aborted();
        rv::ECONNABORTED
    }

    /// Reads from the network and feeds rustls. `Ok(false)` when nothing came (EOF or, for
    /// non-blocking reads, EAGAIN is returned as an error).
    fn pull_net(&mut self, f: &Filter, block: bool) -> Result<(), Fail> {
        let c = f.conn();
        self.net.clear();
        // Once established, ask for the rest of the current record only (see Framing); the
        // core reads the socket in large chunks anyway and keeps what we did not take.
        let want = if self.is_established() {
            (self.framing.want() as i64).min(NET_READ)
        } else {
            NET_READ
        };
        let r = f.get_next(&mut self.net, Mode::ReadBytes, block, want);
        if r != rv::SUCCESS {
            if r == rv::EOF {
                self.eof = true;
            }
            return Err(r);
        }
        if self.net.is_empty() {
            return Err(if block {
                self.eof = true;
                rv::EOF
            } else {
                rv::EAGAIN
            });
        }
        while let Some(b) = self.net.first() {
            match b.kind() {
                Kind::Eos => {
                    self.eof = true;
                    b.delete();
                }
                Kind::Data => {
                    let data = b.read(true)?;
                    self.feed(&c, data)?;
                    b.delete();
                }
                _ => b.delete(),
            }
        }
        Ok(())
    }

    /// Feeds network bytes to the acceptor or the connection.
    fn feed(&mut self, c: &Conn<'_>, mut data: &[u8]) -> Result<(), Fail> {
        // An established connection reads a record's header on its own (see `pull_net`). Given
        // to rustls alone, it would make rustls grow its 4 KiB receive buffer for the body (to
        // 8 KiB, a realloc) and shrink it at the next record (another): per request. The header
        // waits here for its body instead, and rustls gets the record in one read.
        let stash = self.is_established() && self.framing.header_only(data);
        // What is held goes to rustls first (copied out: `advance` may start the next header).
        let mut held_buf = [0u8; 5];
        let held_len = self.framing.held;
        held_buf[..held_len].copy_from_slice(self.framing.held());
        let mut held = &held_buf[..held_len];
        self.framing.advance(data);
        if stash && (self.framing.body_left > 0 || self.framing.header_len > 0) {
            // The bytes are in `framing.header` already.
            self.framing.held += data.len();
            return Ok(());
        }
        if self.first_bytes && !data.is_empty() {
            self.first_bytes = false;
            if looks_like_plain_http(data) {
                tracing::info!("plain HTTP request on a TLS port from {}", c.client_ip());
                let _ = self.send_raw(PLAIN_HTTP_ANSWER);
                self.phase = Phase::Failed;
                c.set_aborted();
                return Err(rv::ECONNABORTED);
            }
        }
        while !data.is_empty() {
            match &mut self.phase {
                Phase::Failed | Phase::ClientPending(_) => return Err(rv::ECONNABORTED),
                Phase::Hello(acc) => {
                    if acc.read_tls(&mut data).is_err() {
                        return Err(self.fail(c, "reading the ClientHello"));
                    }
                    match acc.accept() {
                        Ok(None) => continue,
                        Ok(Some(accepted)) => self.on_hello(c, accepted)?,
                        Err((e, mut alert)) => {
                            let mut buf = Vec::new();
                            let _ = alert.write_all(&mut buf);
                            let _ = self.send_raw(&buf);
                            return Err(self.fail(c, &format!("bad ClientHello: {e}")));
                        }
                    }
                }
                Phase::Tls(conn) => {
                    let mut rd = Parts {
                        head: held,
                        tail: data,
                    };
                    let read = conn.read_tls(&mut rd);
                    // rustls makes room for 4 KiB before a read, so the header is taken.
                    (held, data) = (rd.head, rd.tail);
                    self.framing.held = 0;
                    if read.is_err() || !held.is_empty() {
                        return Err(self.fail(c, "rustls read_tls"));
                    }
                    match conn.process_new_packets() {
                        Ok(state) => {
                            let closed = state.peer_has_closed();
                            if data.is_empty() && self.framing.at_boundary() {
                                // Every record fed is processed, so rustls' receive buffer is
                                // empty: let it shrink back to its 4 KiB minimum now, not at
                                // the next read (an idle keep-alive connection would keep
                                // what the last record grew it to: 8 KiB after a header and a
                                // body read apart, up to 16 KiB after a large record).
                                let _ = conn.read_tls(&mut NothingYet);
                            }
                            self.drain_plain(c)?;
                            if closed {
                                self.eof = true;
                            }
                        }
                        Err(e) => return Err(self.fail(c, &format!("TLS error: {e}"))),
                    }
                }
            }
        }
        // Answers rustls owes the peer (key updates, alerts, the end of the handshake).
        if let Phase::Tls(conn) = &self.phase
            && conn.wants_write()
            && !conn.is_handshaking()
        {
            self.flush_tls()?;
        }
        Ok(())
    }

    fn drain_plain(&mut self, c: &Conn<'_>) -> Result<(), Fail> {
        let Phase::Tls(conn) = &mut self.phase else {
            return Ok(());
        };
        // Plaintext goes from rustls' buffer straight into heap buckets: one copy.
        loop {
            let mut reader = conn.reader();
            match reader.fill_buf() {
                Ok([]) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(chunk) => {
                    let n = chunk.len();
                    self.pending.push_copy(chunk);
                    reader.consume(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(self.fail(c, &format!("reading plaintext: {e}"))),
            }
        }
    }

    /// The ClientHello is in: choose the host by SNI, settle ALPN, accept.
    fn on_hello<'c>(&mut self, c: &Conn<'c>, accepted: Accepted) -> Result<(), Fail> {
        let hello = accepted.client_hello();
        let sni = hello.server_name().map(str::to_ascii_lowercase);
        let offered: Vec<String> = hello
            .alpn()
            .map(|it| {
                it.filter_map(|p| std::str::from_utf8(p).ok().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let schemes = hello.signature_schemes().to_vec();

        // Every host on this address, the first whose names match the SNI.
        let mut candidates = 0usize;
        let mut chosen: Option<(Server<'c>, Arc<Vhost>)> = None;
        c.for_each_vhost(|s| {
            candidates += 1;
            if chosen.is_none()
                && let (Some(name), Some(v)) = (sni.as_deref(), super::vhost_of(&s))
                && server_matches(&s, name)
            {
                chosen = Some((s, v));
            }
            false
        });
        self.settled.name_based = candidates > 1;
        self.settled.sni = sni.clone();
        let base = c.base_server();
        let (server, vhost) = match chosen {
            Some(x) => x,
            None => {
                let base_v = super::vhost_of(&base);
                let strict = base_v.as_ref().is_none_or(|v| v.strict_sni);
                match (sni.as_deref(), base_v) {
                    (Some(name), _) if strict => {
                        // unrecognized_name (112), fatal.
                        let _ = self.send_raw(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]);
                        tracing::info!("TLS: no virtual host for SNI \"{name}\" (TLSStrictSNI on)");
                        return Err(self.fail(c, "unknown SNI"));
                    }
                    (_, Some(v)) => (base, v),
                    (_, None) => {
                        // handshake_failure (40), fatal.
                        let _ = self.send_raw(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40]);
                        tracing::info!("TLS: the server for this address has no TLS certificate");
                        return Err(self.fail(c, "no TLS host"));
                    }
                }
            }
        };

        // tls-alpn-01: answered with the challenge certificate mod_md (or our ACME) provides.
        if offered
            .iter()
            .any(|p| p.as_bytes() == bastion_tls::config::ACME_TLS_ALPN)
            && let Some(name) = sni.as_deref()
            && let Some((cert, key)) = ssl::answer_challenge(c, name)
        {
            {
                let loaded = bastion_tls::certs::load_pem(
                    cert.as_bytes(),
                    Some(key.as_bytes()),
                    "tls-alpn-01 challenge",
                    &bastion_tls::base_provider(),
                );
                match loaded.map_err(|e| e.to_string()).and_then(|l| {
                    bastion_tls::config::challenge_config(l.certified_key)
                        .map_err(|e| e.to_string())
                }) {
                    Ok(cfg) => {
                        self.settled.challenge = true;
                        self.vhost = Some(vhost);
                        return self.accept(c, accepted, cfg);
                    }
                    Err(e) => tracing::error!(
                        "tls-alpn-01 challenge for {name}: the provider's certificate is unusable: {e}"
                    ),
                }
            }
        }

        let config = if offered.is_empty() {
            vhost.alpn.get(None)
        } else {
            let choices: Vec<&str> = offered.iter().map(String::as_str).collect();
            match c.select_protocol(&server, &choices) {
                Some(p) if choices.contains(&p.as_str()) => {
                    if p != c.protocol() && c.switch_protocol(&server, &p).is_err() {
                        return Err(self.fail(c, &format!("switching to protocol {p} failed")));
                    }
                    vhost.alpn.get(Some(p.as_bytes()))
                }
                _ => vhost.alpn.get(None),
            }
        };
        if let Some(r) = &vhost.built.resolver
            && let Some(sel) = r.select_entry(&schemes)
        {
            // OCSP stapling: the provider's current response; the resolver's key is replaced
            // only when the response changed (never cloned per handshake), and only for
            // the certificate it was fetched for (the set may have been replaced meanwhile).
            if let Some(id) = &sel.ocsp_id
                && let Some(der) = ssl::ocsp_get_resp(&server, c, id)
                && sel.key.ocsp.as_deref() != Some(der.as_slice())
                && let Some(leaf) = sel.key.cert.first()
            {
                tracing::debug!(
                    "TLS: new OCSP response ({} bytes) for certificate {} of {}",
                    der.len(),
                    sel.index,
                    vhost.name
                );
                let _ = r.set_ocsp_for_leaf(leaf.as_ref(), Some(der));
            }
            self.settled.cert = Some(sel);
        }
        self.vhost = Some(vhost);
        self.accept(c, accepted, config)
    }

    fn accept(
        &mut self,
        c: &Conn<'_>,
        accepted: Accepted,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<(), Fail> {
        match accepted.into_connection(config) {
            Ok(conn) => {
                self.phase = Phase::Tls(Box::new(rustls::Connection::Server(conn)));
                Ok(())
            }
            Err((e, mut alert)) => {
                let mut buf = Vec::new();
                let _ = alert.write_all(&mut buf);
                let _ = self.send_raw(&buf);
                Err(self.fail(c, &format!("handshake refused: {e}")))
            }
        }
    }

    /// Drives the handshake to completion (blocking; bounded by the server's timeouts,
    /// e.g. `RequestReadTimeout handshake=`).
    fn handshake(&mut self, f: &Filter) -> Result<(), Fail> {
        let c = f.conn();
        loop {
            match &self.phase {
                Phase::Failed => return Err(rv::ECONNABORTED),
                Phase::Tls(conn) if !conn.is_handshaking() => break,
                Phase::Tls(conn) if conn.wants_write() => self.flush_tls()?,
                _ => {
                    if let Err(e) = self.pull_net(f, true) {
                        if matches!(self.phase, Phase::Failed) {
                            return Err(e); // already logged and aborted
                        }
                        if self.eof || e == rv::EOF {
                            return Err(self.fail(&c, "client closed during the handshake"));
                        }
                        return Err(self.fail(
                            &c,
                            &format!("network read failed during the handshake ({e})"),
                        ));
                    }
                }
            }
        }
        self.flush_tls()?;
        if let Phase::Tls(conn) = &self.phase {
            self.settled.version = conn.protocol_version();
            self.settled.suite = conn.negotiated_cipher_suite().map(|s| s.suite());
            self.settled.resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            tracing::debug!(
                "TLS handshake done: {:?} {:?} sni={:?} resumed={} alpn={:?}",
                self.settled.version,
                self.settled.suite,
                self.settled.sni,
                self.settled.resumed,
                conn.alpn_protocol().map(String::from_utf8_lossy)
            );
        }
        Ok(())
    }

    /// The input filter's work.
    pub fn input(
        &mut self,
        f: &Filter,
        bb: &mut Brigade,
        mode: Mode,
        block: bool,
        readbytes: i64,
    ) -> apr_status_t {
        if matches!(self.phase, Phase::Failed) {
            return rv::ECONNABORTED;
        }
        if let Err(e) = self.start_client(&f.conn()) {
            return e;
        }
        if !self.is_established()
            && let Err(e) = self.handshake(f)
        {
            return e;
        }
        match mode {
            Mode::Init => return rv::SUCCESS,
            Mode::EatCrlf => return rv::ENOTIMPL,
            _ => {}
        }
        // A speculative read with nothing decrypted (httpd's ap_check_pipeline after each
        // request) still asks the network: the core input filter may hold the next request's
        // record, read from the socket with the one before it, and only a read finds it there.
        while self.pending.is_empty() {
            if self.eof {
                return rv::EOF;
            }
            if let Err(e) = self.pull_net(f, block) {
                if !self.pending.is_empty() {
                    break;
                }
                if e == rv::EOF || self.eof {
                    return rv::EOF;
                }
                return e;
            }
        }
        let want = if readbytes > 0 {
            readbytes as u64
        } else {
            u64::MAX
        };
        // The buckets themselves go up: no copy of the plaintext here.
        let r = match mode {
            Mode::Exhaustive => {
                // Everything there is: read on to the end of the stream (or, non-blocking,
                // until the network has nothing more).
                while !self.eof && self.pull_net(f, block).is_ok() {}
                bb.append(&mut self.pending);
                Ok(())
            }
            Mode::Speculative => self.pending.copy_front(want, bb),
            Mode::GetLine => match self.line_len() {
                Ok(n) => self.pending.take_front(n as u64, bb),
                Err(e) => Err(e),
            },
            _ => self.pending.take_front(want, bb),
        };
        match r {
            Ok(()) => rv::SUCCESS,
            Err(e) => e,
        }
    }

    /// The output filter's work.
    pub fn output(&mut self, f: &Filter, bb: &mut Brigade) -> apr_status_t {
        if let Err(e) = self.start_client(&f.conn()) {
            return e;
        }
        if !matches!(self.phase, Phase::Tls(_)) {
            // No TLS session (failed or never started): nothing may go out in the clear.
            self.held.clear();
            while let Some(b) = bb.first() {
                if b.kind() == Kind::Eoc {
                    self.out.push_bucket(b);
                } else {
                    b.delete();
                }
            }
            if !self.out.is_empty() {
                let r = f.pass_next(&mut self.out);
                self.out.clear();
                return r;
            }
            return rv::ECONNABORTED;
        }
        if !self.held.is_empty() {
            // The response head held back by the previous call goes first.
            self.held.append(bb);
            bb.append(&mut self.held);
        }
        // httpd's HTTP/1.x header filter passes the response head in a brigade of its own and
        // the body (or at least the rest of the handler's first brigade, with EOS for a small
        // response) in the very next call, from the same function. Holding the head back for
        // that one call seals a small response in one record, as mod_ssl's coalescing does.
        // Nothing else is held across calls: a tunnel (WebSocket, CONNECT) or a streaming
        // response may pass data and then wait, and httpd 2.4 has no way for a connection
        // filter above the core to tell it that output is pending.
        if self.may_hold {
            match response_head(bb) {
                Head::Yes => {
                    self.may_hold = false;
                    let pool = f.conn().pool();
                    while let Some(b) = bb.first() {
                        if let Err(e) = b.setaside(&pool) {
                            return e;
                        }
                        self.held.push_bucket(b);
                    }
                    return rv::SUCCESS;
                }
                // The first data of a response is its head: a later brigade that looks like
                // one is body (an HTTP message served as content) and is never held.
                Head::No if !bb.is_empty() => self.may_hold = false,
                Head::No => {}
                Head::Never => self.may_hold = false,
            }
        }
        while let Some(b) = bb.first() {
            match b.kind() {
                Kind::Data => {
                    if b.known_len().is_none()
                        && let Err(e) = self.before_blocking_read(f, b)
                    {
                        return e;
                    }
                    if let Err(e) = self.write_run(f, bb, b) {
                        return e;
                    }
                }
                Kind::Flush => {
                    if let Err(e) = self.collect_tls() {
                        return e;
                    }
                    self.out.push_bucket(b);
                    if let Err(e) = self.pass_out(f) {
                        return e;
                    }
                }
                Kind::Eoc => {
                    if let Phase::Tls(conn) = &mut self.phase {
                        conn.send_close_notify();
                    }
                    if let Err(e) = self.collect_tls() {
                        return e;
                    }
                    self.out.push_bucket(b);
                    if let Err(e) = self.pass_out(f) {
                        return e;
                    }
                }
                Kind::Eos | Kind::OtherMeta => {
                    if let Err(e) = self.collect_tls() {
                        return e;
                    }
                    self.out.push_bucket(b);
                }
            }
        }
        if let Err(e) = self.collect_tls() {
            return e;
        }
        match self.pass_out(f) {
            Ok(()) => rv::SUCCESS,
            Err(e) => e,
        }
    }

    /// Before a bucket of unknown length (a CGI's pipe, a backend's socket) is read, blocking:
    /// if it has nothing yet, what is encrypted so far (a response head) goes out flushed
    /// first, as httpd's core output filter does, so the client does not wait on the producer.
    fn before_blocking_read(&mut self, f: &Filter, b: Bucket) -> Result<(), Fail> {
        match b.read(false) {
            Err(e) if e == rv::EAGAIN => {
                self.collect_tls()?;
                if self.out.is_empty() {
                    return Ok(());
                }
                self.out.push_flush();
                self.pass_out(f)
            }
            // Read (the bucket now holds data of known length) or failed (write_run's blocking
            // read reports it).
            _ => Ok(()),
        }
    }

    fn pass_out(&mut self, f: &Filter) -> Result<(), Fail> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = f.pass_next(&mut self.out);
        self.out.clear();
        self.out_bytes = 0;
        if r == rv::SUCCESS { Ok(()) } else { Err(r) }
    }

    /// Encrypts the run of data buckets that starts at `first` (up to one record's worth of
    /// small buckets, e.g. response headers and a small body, go into one record, as mod_ssl
    /// coalesces them) and deletes them.
    fn write_run(&mut self, f: &Filter, bb: &Brigade, first: Bucket) -> Result<(), Fail> {
        const MAX_RUN: usize = 16;
        let mut run: [Option<Bucket>; MAX_RUN] = [None; MAX_RUN];
        let mut count = 0;
        let mut total = 0;
        let mut cur = Some(first);
        while let Some(b) = cur {
            // A bucket of unknown length (a pipe, a socket) is not read ahead: reading it may
            // block while the data before it could go out.
            if count == MAX_RUN || b.kind() != Kind::Data || (count > 0 && b.known_len().is_none())
            {
                break;
            }
            let len = b.read(true)?.len();
            if count > 0 && total + len > RECORD_PLAIN {
                break;
            }
            run[count] = Some(b);
            count += 1;
            total += len;
            cur = bb.next(b);
        }
        if count == 1 || total >= RECORD_PLAIN {
            // Nothing to coalesce.
            let data = first.read(true)?;
            self.write_plain(f, data)?;
            first.delete();
            return Ok(());
        }
        let mut slices = [std::io::IoSlice::new(&[]); MAX_RUN];
        for (i, b) in run[..count].iter().flatten().enumerate() {
            slices[i] = std::io::IoSlice::new(b.read(true)?);
        }
        let Phase::Tls(conn) = &mut self.phase else {
            return Err(rv::ECONNABORTED);
        };
        let n = conn
            .writer()
            .write_vectored(&slices[..count])
            .map_err(|_| rv::EGENERAL)?;
        // rustls takes everything unless its buffer of unsent records is full (it is drained
        // after every write, so it is not); whatever it did not take goes the long way.
        let mut done = n;
        for b in run[..count].iter().flatten() {
            let data = b.read(true)?;
            if done >= data.len() {
                done -= data.len();
            } else {
                let rest = &data[done..];
                done = 0;
                self.collect_tls()?;
                self.write_plain(f, rest)?;
            }
            b.delete();
        }
        self.collect_tls()?;
        if self.out_bytes >= OUT_CHUNK {
            self.pass_out(f)?;
        }
        Ok(())
    }

    fn write_plain(&mut self, f: &Filter, mut data: &[u8]) -> Result<(), Fail> {
        while !data.is_empty() {
            let Phase::Tls(conn) = &mut self.phase else {
                return Err(rv::ECONNABORTED);
            };
            // rustls takes what fits under its 64 KiB limit of unsent records.
            let n = conn.writer().write(data).map_err(|_| rv::EGENERAL)?;
            data = &data[n..];
            self.collect_tls()?;
            if n == 0 || self.out_bytes >= OUT_CHUNK {
                self.pass_out(f)?;
            }
        }
        Ok(())
    }
}

/// What an output brigade is, for holding back a response head.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A complete HTTP/1.x final response head (not 1xx) alone, in memory.
    Yes,
    /// Something else, with no metadata bucket (the head may still come).
    No,
    /// It holds a metadata bucket (FLUSH, EOS, EOR, ...): this request's output is under
    /// way or done; nothing is held for it any more.
    Never,
}

/// Whether `bb` is exactly one HTTP/1.x final response head in memory buckets.
fn response_head(bb: &Brigade) -> Head {
    let mut total = 0usize;
    let mut cur = bb.first();
    let mut in_memory = true;
    while let Some(b) = cur {
        if b.kind() != Kind::Data {
            return Head::Never;
        }
        match b.known_len() {
            Some(n) if !b.is_file() => total += n,
            _ => in_memory = false,
        }
        cur = bb.next(b);
    }
    let (Some(first), Some(last)) = (bb.first(), bb.last()) else {
        return Head::No;
    };
    if !in_memory || total > RECORD_PLAIN {
        return Head::No;
    }
    // In-memory buckets (heap, pool, transient, immortal): reading them neither blocks nor
    // changes them.
    let (Ok(head), Ok(tail)) = (first.read(false), last.read(false)) else {
        return Head::No;
    };
    let status_line = head.len() >= 13
        && head.starts_with(b"HTTP/1.")
        && head[8] == b' '
        && (b'2'..=b'5').contains(&head[9]);
    let ends = if tail.len() >= 4 || first == last {
        tail.ends_with(b"\r\n\r\n")
    } else {
        // The header filter writes the final CRLF after the last field; it may sit in a
        // bucket of its own.
        tail == b"\r\n"
            && bb
                .prev(last)
                .is_some_and(|p| p.read(false).is_ok_and(|d| d.ends_with(b"\r\n")))
    };
    if status_line && ends {
        Head::Yes
    } else {
        Head::No
    }
}

fn server_matches(s: &Server<'_>, name: &str) -> bool {
    use bastion_tls::sni::{server_name_matches, wildcard_match};
    s.hostname().is_some_and(|h| server_name_matches(h, name))
        || s.aliases().iter().any(|a| server_name_matches(a, name))
        || s.wild_aliases().iter().any(|a| wildcard_match(a, name))
}

const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 71\r\nConnection: close\r\n\r\nThis port speaks HTTPS: the request came as plain HTTP. Use https://.\n\n";

/// An HTTP request line starts with an upper-case method and a space; a TLS record never does.
fn looks_like_plain_http(data: &[u8]) -> bool {
    let method: Vec<u8> = data
        .iter()
        .take(8)
        .take_while(|b| b.is_ascii_uppercase())
        .copied()
        .collect();
    !method.is_empty() && data.get(method.len()) == Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn framing_tells_a_lone_header() {
        let mut f = Framing::default();
        // A record of 3 body bytes, its header in two pieces.
        assert!(f.header_only(&[23, 3]));
        f.advance(&[23, 3]);
        assert!(f.header_only(&[3, 0, 3]));
        assert!(!f.header_only(&[3, 0, 3, 1]));
        f.held = 2;
        assert_eq!(f.held(), &[23, 3]);
        f.advance(&[3, 0, 3]);
        f.held += 3;
        assert_eq!(f.held(), &[23, 3, 3, 0, 3]);
        f.held = 0;
        assert_eq!((f.body_left, f.want()), (3, 3));
        assert!(!f.header_only(&[1]));
        f.advance(&[1, 2, 3]);
        assert!(f.at_boundary());
        // A header and the start of the body together is not a lone header.
        assert!(!f.header_only(&[23, 3, 3, 0, 1, 9]));
    }

    #[test]
    fn parts_read_head_then_tail_in_one_call() {
        let mut p = Parts {
            head: &[1, 2, 3, 4, 5],
            tail: &[6, 7],
        };
        let mut buf = [0u8; 16];
        assert_eq!(p.read(&mut buf).unwrap(), 7);
        assert_eq!(&buf[..7], &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(p.read(&mut buf).unwrap(), 0);
        // A buffer smaller than the head: the rest of the head stays first.
        let mut p = Parts {
            head: &[1, 2, 3],
            tail: &[4],
        };
        let mut small = [0u8; 2];
        assert_eq!(p.read(&mut small).unwrap(), 2);
        assert_eq!((p.head, p.tail), (&[3u8][..], &[4u8][..]));
    }
}
