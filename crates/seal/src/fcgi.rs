//! FastCGI 1.0 client-side codec: pure byte transforms, no sockets.
//!
//! * Encoders for the records a web server sends: `BEGIN_REQUEST`,
//!   `PARAMS` (name-value pairs, split across records), `STDIN`,
//!   `ABORT_REQUEST`.
//! * [`Decoder`]: an incremental decoder of the application's records into
//!   [`Event`]s, tolerant of records split across reads.
//! * [`ResponseHeadParser`]: the CGI response header block at the start of
//!   STDOUT (`Status`, `Location`, `Content-Type`, others).
//! * [`Client`]: a small blocking helper over `Read + Write`.

use std::io::{Read, Write};

/// The protocol version byte.
pub const FCGI_VERSION_1: u8 = 1;
/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 8;
/// Largest record content.
pub const MAX_CONTENT_LEN: usize = 65535;
/// Largest name or value length in a name-value pair (31 bits).
pub const MAX_NV_LEN: usize = 0x7fff_ffff;
/// Default limit on the CGI response header block.
pub const DEFAULT_HEADER_LIMIT: usize = 64 * 1024;

/// Record types (FastCGI 1.0 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    /// `FCGI_BEGIN_REQUEST`
    BeginRequest = 1,
    /// `FCGI_ABORT_REQUEST`
    AbortRequest = 2,
    /// `FCGI_END_REQUEST`
    EndRequest = 3,
    /// `FCGI_PARAMS`
    Params = 4,
    /// `FCGI_STDIN`
    Stdin = 5,
    /// `FCGI_STDOUT`
    Stdout = 6,
    /// `FCGI_STDERR`
    Stderr = 7,
    /// `FCGI_DATA`
    Data = 8,
    /// `FCGI_GET_VALUES`
    GetValues = 9,
    /// `FCGI_GET_VALUES_RESULT`
    GetValuesResult = 10,
    /// `FCGI_UNKNOWN_TYPE`
    UnknownType = 11,
}

/// Application roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Role {
    /// `FCGI_RESPONDER`: the role used for HTTP requests.
    Responder = 1,
    /// `FCGI_AUTHORIZER`
    Authorizer = 2,
    /// `FCGI_FILTER`
    Filter = 3,
}

/// The protocol status of an `END_REQUEST` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE`
    RequestComplete,
    /// `FCGI_CANT_MPX_CONN`
    CantMpxConn,
    /// `FCGI_OVERLOADED`
    Overloaded,
    /// `FCGI_UNKNOWN_ROLE`
    UnknownRole,
    /// Any other value.
    Other(u8),
}

impl From<u8> for ProtocolStatus {
    fn from(v: u8) -> Self {
        match v {
            0 => ProtocolStatus::RequestComplete,
            1 => ProtocolStatus::CantMpxConn,
            2 => ProtocolStatus::Overloaded,
            3 => ProtocolStatus::UnknownRole,
            o => ProtocolStatus::Other(o),
        }
    }
}

/// FastCGI protocol and response-header errors.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FcgiError {
    /// A record header had a version other than 1.
    #[error("FastCGI record with unsupported version {0}")]
    BadVersion(u8),
    /// A record for another request arrived.
    #[error("FastCGI record for request {got}, expected {expected}")]
    WrongRequestId {
        /// Our request id.
        expected: u16,
        /// The id received.
        got: u16,
    },
    /// The application sent a record type a responder never sends.
    #[error("unexpected FastCGI record type {0} from the application")]
    UnexpectedRecord(u8),
    /// An `END_REQUEST` record whose body is not 8 bytes.
    #[error("malformed FastCGI END_REQUEST record ({0} bytes)")]
    BadEndRequest(usize),
    /// Data arrived after `END_REQUEST`.
    #[error("data after FastCGI END_REQUEST")]
    AfterEnd,
    /// A name or value longer than 2^31 - 1 bytes.
    #[error("FastCGI parameter too long ({0} bytes)")]
    ParamTooLong(usize),
    /// The CGI response header block exceeded the limit.
    #[error("CGI response headers exceed {0} bytes")]
    HeaderTooLarge(usize),
    /// A malformed CGI response header line.
    #[error("malformed CGI response header line {0:?}")]
    MalformedHeader(String),
    /// An invalid `Status:` header.
    #[error("invalid CGI Status header {0:?}")]
    BadStatus(String),
    /// STDOUT ended before the blank line that ends the headers.
    #[error("CGI response ended inside the headers")]
    IncompleteHeaders,
}

fn push_header(
    out: &mut Vec<u8>,
    rtype: RecordType,
    request_id: u16,
    content_len: usize,
    pad: usize,
) {
    out.push(FCGI_VERSION_1);
    out.push(rtype as u8);
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&(content_len as u16).to_be_bytes());
    out.push(pad as u8);
    out.push(0);
}

/// Appends one record; content is padded to a multiple of 8 bytes.
///
/// # Panics
/// If `content` is longer than 65535 bytes (use the splitting encoders).
pub fn encode_record(out: &mut Vec<u8>, rtype: RecordType, request_id: u16, content: &[u8]) {
    assert!(content.len() <= MAX_CONTENT_LEN, "record content too long");
    let pad = (8 - content.len() % 8) % 8;
    push_header(out, rtype, request_id, content.len(), pad);
    out.extend_from_slice(content);
    out.extend_from_slice(&[0u8; 8][..pad]);
}

/// Appends a `BEGIN_REQUEST` record.
pub fn encode_begin_request(out: &mut Vec<u8>, request_id: u16, role: Role, keep_conn: bool) {
    let role = (role as u16).to_be_bytes();
    let body = [role[0], role[1], u8::from(keep_conn), 0, 0, 0, 0, 0];
    encode_record(out, RecordType::BeginRequest, request_id, &body);
}

/// Appends an `ABORT_REQUEST` record.
pub fn encode_abort_request(out: &mut Vec<u8>, request_id: u16) {
    encode_record(out, RecordType::AbortRequest, request_id, &[]);
}

fn nv_len(out: &mut Vec<u8>, len: usize) -> Result<(), FcgiError> {
    if len > MAX_NV_LEN {
        return Err(FcgiError::ParamTooLong(len));
    }
    if len < 128 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
    Ok(())
}

/// Appends one name-value pair (1-byte lengths below 128, else 4-byte
/// lengths with the high bit set) to a params stream.
pub fn encode_name_value(out: &mut Vec<u8>, name: &[u8], value: &[u8]) -> Result<(), FcgiError> {
    nv_len(out, name.len())?;
    nv_len(out, value.len())?;
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    Ok(())
}

/// Appends the `PARAMS` stream for `params`, then the empty `PARAMS` record
/// that ends it.
///
/// Whole pairs are packed into records of at most 65535 bytes; only a pair
/// larger than that is split across records (the protocol allows it; the
/// params are one byte stream).
pub fn encode_params<I, N, V>(
    out: &mut Vec<u8>,
    request_id: u16,
    params: I,
) -> Result<(), FcgiError>
where
    I: IntoIterator<Item = (N, V)>,
    N: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let mut pending = Vec::new();
    let mut pair = Vec::new();
    for (n, v) in params {
        pair.clear();
        encode_name_value(&mut pair, n.as_ref(), v.as_ref())?;
        if pending.len() + pair.len() > MAX_CONTENT_LEN {
            for c in pending.chunks(MAX_CONTENT_LEN) {
                encode_record(out, RecordType::Params, request_id, c);
            }
            pending.clear();
        }
        if pair.len() > MAX_CONTENT_LEN {
            for c in pair.chunks(MAX_CONTENT_LEN) {
                encode_record(out, RecordType::Params, request_id, c);
            }
        } else {
            pending.extend_from_slice(&pair);
        }
    }
    if !pending.is_empty() {
        encode_record(out, RecordType::Params, request_id, &pending);
    }
    encode_record(out, RecordType::Params, request_id, &[]);
    Ok(())
}

/// Decodes a params stream back into pairs (for tests and for applications).
pub fn decode_params(mut s: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    fn len(s: &mut &[u8]) -> Option<usize> {
        let b = *s.first()?;
        if b < 128 {
            *s = &s[1..];
            Some(b as usize)
        } else {
            let v = u32::from_be_bytes(s.get(..4)?.try_into().ok()?) & 0x7fff_ffff;
            *s = &s[4..];
            Some(v as usize)
        }
    }
    let mut out = Vec::new();
    while !s.is_empty() {
        let nl = len(&mut s)?;
        let vl = len(&mut s)?;
        let n = s.get(..nl)?.to_vec();
        s = &s[nl..];
        let v = s.get(..vl)?.to_vec();
        s = &s[vl..];
        out.push((n, v));
    }
    Some(out)
}

/// Appends `STDIN` records carrying `data` (nothing for empty data: use
/// [`encode_stdin_end`] to end the stream).
pub fn encode_stdin(out: &mut Vec<u8>, request_id: u16, data: &[u8]) {
    for c in data.chunks(MAX_CONTENT_LEN) {
        encode_record(out, RecordType::Stdin, request_id, c);
    }
}

/// Appends the empty `STDIN` record that ends the request body.
pub fn encode_stdin_end(out: &mut Vec<u8>, request_id: u16) {
    encode_record(out, RecordType::Stdin, request_id, &[]);
}

/// What the application said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Bytes of the STDOUT stream (a record may arrive as several events).
    Stdout(Vec<u8>),
    /// Bytes of the STDERR stream (for the error log).
    Stderr(Vec<u8>),
    /// The request is over.
    EndRequest {
        /// The application's exit status.
        app_status: u32,
        /// The protocol status.
        protocol_status: ProtocolStatus,
    },
}

/// Incremental decoder of the application's records for one request.
///
/// Memory use is constant: stream content is passed on as it arrives.
#[derive(Debug)]
pub struct Decoder {
    request_id: u16,
    header: [u8; RECORD_HEADER_LEN],
    header_len: usize,
    rtype: u8,
    skip_content: bool,
    content_left: usize,
    padding_left: usize,
    end_body: Vec<u8>,
    ended: bool,
}

impl Decoder {
    /// A decoder for records of `request_id`.
    pub fn new(request_id: u16) -> Self {
        Self {
            request_id,
            header: [0; RECORD_HEADER_LEN],
            header_len: 0,
            rtype: 0,
            skip_content: false,
            content_left: 0,
            padding_left: 0,
            end_body: Vec::new(),
            ended: false,
        }
    }

    /// True once `END_REQUEST` has been decoded.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// True when no record is partly decoded (a clean place for EOF).
    pub fn at_record_boundary(&self) -> bool {
        self.header_len == 0
    }

    /// Decodes `input`, appending events.
    pub fn push(&mut self, mut input: &[u8], events: &mut Vec<Event>) -> Result<(), FcgiError> {
        while !input.is_empty() {
            if self.ended {
                return Err(FcgiError::AfterEnd);
            }
            if self.header_len < RECORD_HEADER_LEN {
                let take = (RECORD_HEADER_LEN - self.header_len).min(input.len());
                self.header[self.header_len..self.header_len + take]
                    .copy_from_slice(&input[..take]);
                self.header_len += take;
                input = &input[take..];
                if self.header_len == RECORD_HEADER_LEN {
                    self.start_record()?;
                    self.maybe_finish_record(events)?;
                }
                continue;
            }
            if self.content_left > 0 {
                let take = self.content_left.min(input.len());
                let chunk = &input[..take];
                input = &input[take..];
                self.content_left -= take;
                if !self.skip_content {
                    match self.rtype {
                        6 => push_stream(events, chunk, true),
                        7 => push_stream(events, chunk, false),
                        3 => self.end_body.extend_from_slice(chunk),
                        _ => {}
                    }
                }
            } else {
                let take = self.padding_left.min(input.len());
                input = &input[take..];
                self.padding_left -= take;
            }
            self.maybe_finish_record(events)?;
        }
        Ok(())
    }

    fn start_record(&mut self) -> Result<(), FcgiError> {
        let h = self.header;
        if h[0] != FCGI_VERSION_1 {
            return Err(FcgiError::BadVersion(h[0]));
        }
        self.rtype = h[1];
        let id = u16::from_be_bytes([h[2], h[3]]);
        self.content_left = u16::from_be_bytes([h[4], h[5]]) as usize;
        self.padding_left = h[6] as usize;
        self.skip_content = false;
        match self.rtype {
            // management records (request id 0): ignore
            10 | 11 if id == 0 => self.skip_content = true,
            6 | 7 | 3 if id == self.request_id => {}
            6 | 7 | 3 => {
                return Err(FcgiError::WrongRequestId {
                    expected: self.request_id,
                    got: id,
                });
            }
            other => return Err(FcgiError::UnexpectedRecord(other)),
        }
        if self.rtype == 3 {
            if self.content_left != 8 {
                return Err(FcgiError::BadEndRequest(self.content_left));
            }
            self.end_body.clear();
        }
        Ok(())
    }

    fn maybe_finish_record(&mut self, events: &mut Vec<Event>) -> Result<(), FcgiError> {
        if self.header_len == RECORD_HEADER_LEN && self.content_left == 0 && self.padding_left == 0
        {
            self.header_len = 0;
            if self.rtype == 3 && !self.skip_content {
                let b = &self.end_body;
                events.push(Event::EndRequest {
                    app_status: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    protocol_status: ProtocolStatus::from(b[4]),
                });
                self.ended = true;
            }
        }
        Ok(())
    }
}

fn push_stream(events: &mut Vec<Event>, chunk: &[u8], stdout: bool) {
    // Merge with the previous event of the same stream from this push.
    match (events.last_mut(), stdout) {
        (Some(Event::Stdout(v)), true) | (Some(Event::Stderr(v)), false) => {
            v.extend_from_slice(chunk)
        }
        _ => events.push(if stdout {
            Event::Stdout(chunk.to_vec())
        } else {
            Event::Stderr(chunk.to_vec())
        }),
    }
}

/// The CGI response header block of an application's STDOUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// From `Status:`; 302 when only `Location:` is given; else 200.
    pub status: u16,
    /// The reason phrase of `Status:`, if any.
    pub reason: Option<String>,
    /// The `Location:` header. A value starting with `/` asks for a local
    /// redirect (CGI/1.1 §6.2.2), which the glue handles.
    pub location: Option<String>,
    /// The `Content-Type:` header.
    pub content_type: Option<String>,
    /// All headers except `Status`, in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of a header, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Incremental parser of the CGI header block at the start of STDOUT:
/// lines until a blank line, `\n` or `\r\n` endings.
#[derive(Debug)]
pub struct ResponseHeadParser {
    buf: Vec<u8>,
    scanned: usize,
    limit: usize,
}

impl Default for ResponseHeadParser {
    fn default() -> Self {
        Self::new(DEFAULT_HEADER_LIMIT)
    }
}

impl ResponseHeadParser {
    /// A parser that fails once the header block exceeds `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            limit,
        }
    }

    /// Feeds STDOUT bytes. Returns `None` until the blank line, then the
    /// parsed head and the body bytes that followed it.
    pub fn push(&mut self, input: &[u8]) -> Result<Option<(ResponseHead, Vec<u8>)>, FcgiError> {
        self.buf.extend_from_slice(input);
        // Find the end of the header block: an empty line.
        let mut line_start = self.scanned;
        while let Some(off) = self.buf[line_start..].iter().position(|&b| b == b'\n') {
            let nl = line_start + off;
            let line = &self.buf[line_start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if nl + 1 > self.limit {
                    return Err(FcgiError::HeaderTooLarge(self.limit));
                }
                let head = parse_head(&self.buf[..line_start])?;
                let body = self.buf.split_off(nl + 1);
                self.buf.clear();
                return Ok(Some((head, body)));
            }
            line_start = nl + 1;
        }
        self.scanned = line_start;
        if self.buf.len() > self.limit {
            return Err(FcgiError::HeaderTooLarge(self.limit));
        }
        Ok(None)
    }

    /// Call at the end of STDOUT if [`push`](Self::push) never returned a head.
    pub fn finish(self) -> Result<(), FcgiError> {
        Err(FcgiError::IncompleteHeaders)
    }
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn parse_head(block: &[u8]) -> Result<ResponseHead, FcgiError> {
    let mut head = ResponseHead {
        status: 200,
        reason: None,
        location: None,
        content_type: None,
        headers: Vec::new(),
    };
    let mut saw_status = false;
    for raw in block.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let bad = || FcgiError::MalformedHeader(String::from_utf8_lossy(line).into_owned());
        let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(bad());
        }
        let value = value.trim_ascii();
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(bad());
        }
        let name = String::from_utf8(name.to_vec()).map_err(|_| bad())?;
        let value = String::from_utf8(value.to_vec()).map_err(|_| bad())?;
        if name.eq_ignore_ascii_case("status") {
            let code = value.get(..3).and_then(|c| {
                if c.bytes().all(|b| b.is_ascii_digit()) {
                    c.parse::<u16>().ok()
                } else {
                    None
                }
            });
            let rest = &value[value.len().min(3)..];
            match code {
                Some(c)
                    if (100..=999).contains(&c) && (rest.is_empty() || rest.starts_with(' ')) =>
                {
                    head.status = c;
                    let r = rest.trim();
                    head.reason = (!r.is_empty()).then(|| r.to_string());
                    saw_status = true;
                }
                _ => return Err(FcgiError::BadStatus(value)),
            }
            continue;
        }
        if name.eq_ignore_ascii_case("location") && head.location.is_none() {
            head.location = Some(value.clone());
        } else if name.eq_ignore_ascii_case("content-type") && head.content_type.is_none() {
            head.content_type = Some(value.clone());
        }
        head.headers.push((name, value));
    }
    if !saw_status && head.location.is_some() {
        head.status = 302;
    }
    Ok(head)
}

/// Errors of the blocking [`Client`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Reading or writing the connection failed.
    #[error("FastCGI connection: {0}")]
    Io(#[from] std::io::Error),
    /// The application broke the protocol.
    #[error(transparent)]
    Protocol(#[from] FcgiError),
    /// The connection closed before `END_REQUEST`.
    #[error("FastCGI application closed the connection before END_REQUEST")]
    UnexpectedEof,
}

/// A small blocking FastCGI client for one request over any `Read + Write`
/// (a `TcpStream` or `UnixStream`). It does not interleave reading and
/// writing: send the whole body, then read the events (what FastCGI
/// responders expect; a responder that answers before reading all of STDIN
/// may deadlock if both socket buffers fill).
#[derive(Debug)]
pub struct Client<S> {
    stream: S,
    request_id: u16,
    decoder: Decoder,
    out: Vec<u8>,
    read_buf: Vec<u8>,
}

impl<S: Read + Write> Client<S> {
    /// Sends `BEGIN_REQUEST` (responder) and the params.
    pub fn begin<I, N, V>(
        mut stream: S,
        request_id: u16,
        keep_conn: bool,
        params: I,
    ) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = (N, V)>,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut out = Vec::new();
        encode_begin_request(&mut out, request_id, Role::Responder, keep_conn);
        encode_params(&mut out, request_id, params)?;
        stream.write_all(&out)?;
        out.clear();
        Ok(Self {
            stream,
            request_id,
            decoder: Decoder::new(request_id),
            out,
            read_buf: vec![0; 16 * 1024],
        })
    }

    /// Sends body bytes as STDIN records.
    pub fn write_stdin(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.out.clear();
        encode_stdin(&mut self.out, self.request_id, data);
        self.stream.write_all(&self.out)?;
        Ok(())
    }

    /// Ends STDIN and flushes.
    pub fn end_stdin(&mut self) -> Result<(), ClientError> {
        self.out.clear();
        encode_stdin_end(&mut self.out, self.request_id);
        self.stream.write_all(&self.out)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Sends `ABORT_REQUEST`.
    pub fn abort(&mut self) -> Result<(), ClientError> {
        self.out.clear();
        encode_abort_request(&mut self.out, self.request_id);
        self.stream.write_all(&self.out)?;
        self.stream.flush()?;
        Ok(())
    }

    /// Reads once from the connection and appends the decoded events.
    /// Returns `false` once `END_REQUEST` has been seen.
    pub fn read_events(&mut self, events: &mut Vec<Event>) -> Result<bool, ClientError> {
        if self.decoder.is_ended() {
            return Ok(false);
        }
        let n = loop {
            match self.stream.read(&mut self.read_buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            return Err(ClientError::UnexpectedEof);
        }
        self.decoder.push(&self.read_buf[..n], events)?;
        Ok(!self.decoder.is_ended())
    }

    /// Gives the connection back (for keep-alive reuse after END_REQUEST).
    pub fn into_inner(self) -> S {
        self.stream
    }
}

#[cfg(test)]
mod tests;
