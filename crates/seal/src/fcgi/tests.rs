use super::*;

/// Splits an encoded stream into records: (type, request id, content).
fn records(mut s: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
    let mut out = Vec::new();
    while !s.is_empty() {
        assert_eq!(s[0], 1);
        let len = u16::from_be_bytes([s[4], s[5]]) as usize;
        let pad = s[6] as usize;
        assert_eq!((len + pad) % 8, 0, "padded to 8");
        out.push((
            s[1],
            u16::from_be_bytes([s[2], s[3]]),
            s[8..8 + len].to_vec(),
        ));
        s = &s[8 + len + pad..];
    }
    out
}

fn app_record(t: u8, id: u16, content: &[u8], pad: u8) -> Vec<u8> {
    let mut v = vec![1, t];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&(content.len() as u16).to_be_bytes());
    v.push(pad);
    v.push(0);
    v.extend_from_slice(content);
    v.extend(std::iter::repeat_n(0xee, pad as usize));
    v
}

fn end_request(id: u16, app: u32, proto: u8) -> Vec<u8> {
    let mut body = app.to_be_bytes().to_vec();
    body.extend_from_slice(&[proto, 0, 0, 0]);
    app_record(3, id, &body, 0)
}

#[test]
fn begin_abort_stdin() {
    let mut out = Vec::new();
    encode_begin_request(&mut out, 1, Role::Responder, true);
    assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    out.clear();
    encode_begin_request(&mut out, 258, Role::Responder, false);
    assert_eq!(&out[2..4], &[1, 2]);
    assert_eq!(out[10], 0);
    out.clear();
    encode_abort_request(&mut out, 7);
    assert_eq!(out, [1, 2, 0, 7, 0, 0, 0, 0]);
    out.clear();
    let data = vec![0xab; 200_000];
    encode_stdin(&mut out, 1, &data);
    encode_stdin_end(&mut out, 1);
    let recs = records(&out);
    assert_eq!(recs.len(), 5);
    assert!(recs.iter().all(|r| r.0 == 5 && r.1 == 1));
    assert_eq!(recs[0].2.len(), 65535);
    assert!(recs[4].2.is_empty());
    let joined: Vec<u8> = recs.iter().flat_map(|r| r.2.clone()).collect();
    assert_eq!(joined, data);
    out.clear();
    encode_stdin(&mut out, 1, b"");
    assert!(out.is_empty());
}

#[test]
fn name_value_lengths() {
    let mut v = Vec::new();
    encode_name_value(&mut v, b"A", &[b'x'; 127]).unwrap();
    assert_eq!(&v[..2], &[1, 127]);
    v.clear();
    encode_name_value(&mut v, &[b'N'; 128], b"").unwrap();
    assert_eq!(&v[..5], &[0x80, 0, 0, 128, 0]);
    v.clear();
    encode_name_value(&mut v, b"K", &vec![b'v'; 70_000]).unwrap();
    assert_eq!(&v[..5], &[1, 0x80, 0x01, 0x11, 0x70]);
}

#[test]
fn params_long_names_and_values() {
    let long_value = vec![b'v'; 200_000];
    let long_name = vec![b'n'; 300];
    let mut params: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"SCRIPT_FILENAME".to_vec(), b"/srv/app.fcgi".to_vec()),
        (b"REQUEST_METHOD".to_vec(), b"PUT".to_vec()),
        (long_name.clone(), b"x".to_vec()),
        (b"HTTP_X_BIG".to_vec(), long_value.clone()),
        (b"EMPTY".to_vec(), Vec::new()),
    ];
    for i in 0..2000 {
        params.push((format!("HTTP_X_H{i}").into_bytes(), vec![b'z'; 40]));
    }
    let mut out = Vec::new();
    encode_params(&mut out, 3, params.iter().map(|(n, v)| (n, v))).unwrap();
    let recs = records(&out);
    assert!(
        recs.iter()
            .all(|r| r.0 == 4 && r.1 == 3 && r.2.len() <= 65535)
    );
    assert!(recs.last().unwrap().2.is_empty());
    assert!(recs[..recs.len() - 1].iter().all(|r| !r.2.is_empty()));
    let stream: Vec<u8> = recs.iter().flat_map(|r| r.2.clone()).collect();
    assert_eq!(decode_params(&stream).unwrap(), params);
    // pairs that fit in a record are never split across records
    let small: Vec<(String, String)> = (0..5000)
        .map(|i| (format!("HTTP_X_{i}"), "w".repeat(i % 300)))
        .collect();
    out.clear();
    encode_params(&mut out, 3, small.iter().map(|(n, v)| (n, v))).unwrap();
    let recs = records(&out);
    assert!(recs.len() > 3);
    let mut n = 0;
    for r in &recs {
        n += decode_params(&r.2).unwrap().len();
    }
    assert_eq!(n, small.len());
    // empty params: just the terminator
    out.clear();
    encode_params(&mut out, 1, Vec::<(&str, &str)>::new()).unwrap();
    assert_eq!(out, [1, 4, 0, 1, 0, 0, 0, 0]);
}

fn app_output() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend(app_record(
        6,
        1,
        b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno",
        6,
    ));
    s.extend(app_record(7, 1, b"warning: x", 0));
    s.extend(app_record(6, 1, b"pe!", 5));
    s.extend(app_record(10, 0, b"\x03abcdef", 1)); // management record, ignored
    s.extend(app_record(6, 1, b"", 0));
    s.extend(end_request(1, 7, 0));
    s
}

fn collect(events: &[Event]) -> (Vec<u8>, Vec<u8>, Option<(u32, ProtocolStatus)>) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut end = None;
    for e in events {
        match e {
            Event::Stdout(b) => out.extend_from_slice(b),
            Event::Stderr(b) => err.extend_from_slice(b),
            Event::EndRequest {
                app_status,
                protocol_status,
            } => end = Some((*app_status, *protocol_status)),
        }
    }
    (out, err, end)
}

#[test]
fn decoder_one_byte_at_a_time() {
    let stream = app_output();
    let mut whole = Vec::new();
    Decoder::new(1).push(&stream, &mut whole).unwrap();
    let mut d = Decoder::new(1);
    let mut events = Vec::new();
    for b in &stream {
        assert!(!d.is_ended());
        d.push(std::slice::from_ref(b), &mut events).unwrap();
    }
    assert!(d.is_ended());
    assert!(d.at_record_boundary());
    let a = collect(&whole);
    let b = collect(&events);
    assert_eq!(a, b);
    assert_eq!(
        a.0,
        b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope!"
    );
    assert_eq!(a.1, b"warning: x");
    assert_eq!(a.2, Some((7, ProtocolStatus::RequestComplete)));
    // data after END_REQUEST
    let mut more = stream.clone();
    more.push(1);
    assert_eq!(
        Decoder::new(1).push(&more, &mut Vec::new()).unwrap_err(),
        FcgiError::AfterEnd
    );
}

#[test]
fn decoder_errors() {
    let mut ev = Vec::new();
    assert_eq!(
        Decoder::new(1)
            .push(&app_record(6, 2, b"x", 0), &mut ev)
            .unwrap_err(),
        FcgiError::WrongRequestId {
            expected: 1,
            got: 2
        }
    );
    let mut bad = app_record(6, 1, b"x", 0);
    bad[0] = 2;
    assert_eq!(
        Decoder::new(1).push(&bad, &mut ev).unwrap_err(),
        FcgiError::BadVersion(2)
    );
    assert_eq!(
        Decoder::new(1)
            .push(&app_record(5, 1, b"x", 0), &mut ev)
            .unwrap_err(),
        FcgiError::UnexpectedRecord(5)
    );
    assert_eq!(
        Decoder::new(1)
            .push(&app_record(3, 1, b"abc", 0), &mut ev)
            .unwrap_err(),
        FcgiError::BadEndRequest(3)
    );
    let mut ev = Vec::new();
    Decoder::new(1)
        .push(&end_request(1, 0, 3), &mut ev)
        .unwrap();
    assert_eq!(
        ev,
        vec![Event::EndRequest {
            app_status: 0,
            protocol_status: ProtocolStatus::UnknownRole
        }]
    );
    // a partial record is not a boundary
    let mut d = Decoder::new(1);
    d.push(&app_record(6, 1, b"abc", 0)[..5], &mut ev).unwrap();
    assert!(!d.at_record_boundary());
}

fn parse_all(s: &[u8]) -> Result<(ResponseHead, Vec<u8>), FcgiError> {
    let mut p = ResponseHeadParser::default();
    for b in s {
        if let Some(r) = p.push(std::slice::from_ref(b))? {
            // the remaining bytes of the input are body
            return Ok(r);
        }
    }
    p.finish().map(|_| unreachable!())
}

#[test]
fn response_head_parsing() {
    let (h, body) =
        parse_all(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A:  b \r\n\r\nbody")
            .unwrap();
    assert_eq!(h.status, 404);
    assert_eq!(h.reason.as_deref(), Some("Not Found"));
    assert_eq!(h.content_type.as_deref(), Some("text/plain"));
    assert_eq!(h.get("x-a"), Some("b"));
    assert_eq!(h.headers.len(), 2);
    assert!(body.is_empty()); // fed byte by byte: body comes in later pushes

    let mut p = ResponseHeadParser::default();
    let (h, body) = p
        .push(b"Content-type: text/html\nLocation: http://x/y\n\nhello")
        .unwrap()
        .unwrap();
    assert_eq!(h.status, 302);
    assert_eq!(h.location.as_deref(), Some("http://x/y"));
    assert_eq!(body, b"hello");

    let mut p = ResponseHeadParser::default();
    let (h, body) = p.push(b"Status: 201\r\n\n").unwrap().unwrap();
    assert_eq!((h.status, h.reason, body.len()), (201, None, 0));

    let (h, _) = ResponseHeadParser::default()
        .push(b"Location: /other\r\nStatus: 200 OK\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(h.status, 200);

    // no headers at all
    let (h, body) = ResponseHeadParser::default()
        .push(b"\r\nraw")
        .unwrap()
        .unwrap();
    assert_eq!((h.status, body), (200, b"raw".to_vec()));

    for bad in [
        &b"Status: abc\n\n"[..],
        b"Status: 99\n\n",
        b"Status: 4040\n\n",
        b"no colon here\n\n",
        b"Bad Name: x\n\n",
        b": x\n\n",
        b"X: a\x01b\n\n",
    ] {
        assert!(ResponseHeadParser::default().push(bad).is_err(), "{bad:?}");
    }

    let mut p = ResponseHeadParser::new(100);
    assert!(p.push(&[b'a'; 60]).unwrap().is_none());
    assert_eq!(
        p.push(&[b'a'; 60]).unwrap_err(),
        FcgiError::HeaderTooLarge(100)
    );
    let mut p = ResponseHeadParser::new(100);
    let long = format!("X: {}\r\n\r\n", "v".repeat(120));
    assert!(matches!(
        p.push(long.as_bytes()),
        Err(FcgiError::HeaderTooLarge(100))
    ));
    assert_eq!(
        ResponseHeadParser::default().finish(),
        Err(FcgiError::IncompleteHeaders)
    );
}

/// An in-memory duplex: reads from `input`, records writes.
struct Duplex {
    input: std::io::Cursor<Vec<u8>>,
    written: Vec<u8>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // at most 3 bytes per read, to exercise split records
        let n = buf.len().min(3);
        self.input.read(&mut buf[..n])
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn blocking_client() {
    let conn = Duplex {
        input: std::io::Cursor::new(app_output()),
        written: Vec::new(),
    };
    let mut c = Client::begin(conn, 1, false, [("REQUEST_METHOD", "GET")]).unwrap();
    c.write_stdin(b"abc").unwrap();
    c.end_stdin().unwrap();
    let mut events = Vec::new();
    while c.read_events(&mut events).unwrap() {}
    let (out, _, end) = collect(&events);
    assert!(out.ends_with(b"nope!"));
    assert_eq!(end, Some((7, ProtocolStatus::RequestComplete)));
    let written = c.into_inner().written;
    let recs = records(&written);
    let types: Vec<u8> = recs.iter().map(|r| r.0).collect();
    assert_eq!(types, [1, 4, 4, 5, 5]);

    // EOF before END_REQUEST
    let conn = Duplex {
        input: std::io::Cursor::new(app_record(6, 1, b"x", 0)),
        written: Vec::new(),
    };
    let mut c = Client::begin(conn, 1, false, [("A", "B")]).unwrap();
    let mut events = Vec::new();
    let err = loop {
        match c.read_events(&mut events) {
            Ok(true) => continue,
            Ok(false) => panic!("ended"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ClientError::UnexpectedEof));
}
