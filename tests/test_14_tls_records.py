"""How responses are cut into TLS records: a small response (head and 1 KiB body) goes out in
ONE application-data record over http/1.1 and h2 (as mod_ssl sends it), while a response head
that waits on its producer still goes out at once (CGI that sleeps before its body) and
WebSocket tunnels through mod_proxy keep working with small frames (nothing waits for a later
write that never comes)."""

import asyncio
import os
import socket
import ssl
import struct
import time

import pytest
import websockets
from websockets.asyncio.client import connect

BODY = bytes(range(256)) * 4  # 1 KiB

SLOW_CGI = """#!/usr/bin/python3
import sys, time
sys.stdout.write("Content-Type: text/plain\\r\\n\\r\\n")
sys.stdout.flush()
time.sleep(2)
sys.stdout.write("late body\\n")
"""


class RecordClient:
    """A TLS client over a raw socket that sees the TLS records the server sends (type and
    length) and which plaintext each application-data record carried."""

    def __init__(self, port, sni, ca, alpn):
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.check_hostname = False
        ctx.set_alpn_protocols([alpn])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=sni)
        self.raw = b""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send()
                data = self.sock.recv(65536)
                assert data, "closed during the handshake"
                self.inc.write(data)
        self._send()
        assert self.tls.selected_alpn_protocol() == alpn
        # Session tickets (application-data records in TLS 1.3) come right after the
        # handshake: read them before the request so that they are not counted.
        self.sock.settimeout(0.5)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.inc.write(data)
                self._plain()
        except (TimeoutError, socket.timeout):
            pass
        self.sock.settimeout(10)

    def _send(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _plain(self):
        out = b""
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                return out
            if not chunk:
                return out
            out += chunk

    def send(self, data):
        self.tls.write(data)
        self._send()

    def records_until(self, complete, timeout=10):
        """Reads records until complete(plaintext so far) is true; returns a list of
        (record type, length, plaintext of that record) of the records read."""
        records, plain = [], b""
        deadline = time.monotonic() + timeout
        while not complete(plain):
            assert time.monotonic() < deadline, f"incomplete after {timeout}s: {plain[:200]!r}"
            data = self.sock.recv(65536)
            assert data, f"closed; got {plain[:200]!r}"
            self.raw += data
            while len(self.raw) >= 5:
                typ, _ver, n = struct.unpack(">BHH", self.raw[:5])
                if len(self.raw) < 5 + n:
                    break
                rec, self.raw = self.raw[: 5 + n], self.raw[5 + n:]
                self.inc.write(rec)
                p = self._plain()
                plain += p
                records.append((typ, n, p))
        return records

    def close(self):
        self.sock.close()


def h1_complete(plain):
    if b"\r\n\r\n" not in plain:
        return False
    head, body = plain.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def h2_frames(plain):
    """(type, flags, stream, payload) of the complete frames in plain."""
    frames, i = [], 0
    while len(plain) - i >= 9:
        n = int.from_bytes(plain[i:i + 3], "big")
        if len(plain) - i < 9 + n:
            break
        typ, flags = plain[i + 3], plain[i + 4]
        stream = int.from_bytes(plain[i + 5:i + 9], "big") & 0x7FFFFFFF
        frames.append((typ, flags, stream, plain[i + 9:i + 9 + n]))
        i += 9 + n
    return frames


def hpack_literal(index, value):
    """A header field 'literal without indexing, indexed name' (no Huffman)."""
    v = value.encode()
    assert index < 15 and len(v) < 127
    return bytes([index, len(v)]) + v


class TestRecords:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, cert_authority, ws_backend):
        c = cert_authority.issue(["rec.test"], key_type="ec")
        s = httpd_factory()
        s.add_modules("proxy", "proxy_http", "http2")
        port = s.port("https")
        s.https_port = port
        s.ca = cert_authority.cert_path
        s.write_file("rec.test/1k.bin", BODY)
        s.write_cgi("slow.py", SLOW_CGI)
        s.add_conf(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName rec.test
  Protocols h2 http/1.1
  DocumentRoot "htdocs/rec.test"
  <Directory "htdocs/rec.test">
    Require all granted
  </Directory>
  TLSCertificate {c.cert} {c.key}
  ProxyPass "/ws/" "http://127.0.0.1:{ws_backend}/" upgrade=websocket
</VirtualHost>
""")
        s.start()
        yield s
        s.stop()

    def test_small_response_is_one_record_http11(self, server):
        cl = RecordClient(server.https_port, "rec.test", server.ca, "http/1.1")
        try:
            for _ in range(3):  # on a kept-alive connection too
                cl.send(b"GET /1k.bin HTTP/1.1\r\nHost: rec.test\r\n\r\n")
                recs = cl.records_until(h1_complete)
                plain = b"".join(p for _, _, p in recs)
                assert plain.startswith(b"HTTP/1.1 200 ") and plain.endswith(BODY)
                app = [(t, n) for t, n, _ in recs if t == 23]
                assert len(app) == 1, f"response came in {len(app)} records: {app}"
        finally:
            cl.close()

    def test_small_response_is_one_record_h2(self, server):
        cl = RecordClient(server.https_port, "rec.test", server.ca, "h2")
        try:
            headers = (b"\x82\x87" + hpack_literal(4, "/1k.bin") + hpack_literal(1, "rec.test"))
            cl.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                    + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # SETTINGS (empty)
                    + len(headers).to_bytes(3, "big") + b"\x01\x05" + (1).to_bytes(4, "big") + headers)

            def done(plain):
                return any(t == 0 and s == 1 and fl & 1 for t, fl, s, _ in h2_frames(plain))

            recs = cl.records_until(done)
            plain = b"".join(p for _, _, p in recs)
            frames = h2_frames(plain)
            data = b"".join(p for t, _, s, p in frames if t == 0 and s == 1)
            assert data == BODY
            # Which records carried the response's frames (HEADERS and DATA of stream 1)?
            carrying, off = [], 0
            bounds = []
            for _t, _n, p in recs:
                bounds.append((off, off + len(p)))
                off += len(p)
            i = 0
            for t, _fl, s, p in frames:
                start, end = i, i + 9 + len(p)
                i = end
                if s == 1 and t in (0, 1):
                    carrying += [k for k, (a, b) in enumerate(bounds) if a < end and start < b]
            assert len(set(carrying)) == 1, f"HEADERS and DATA of a 1 KiB response in records {sorted(set(carrying))}"
        finally:
            cl.close()

    def test_request_records_in_pieces(self, server):
        """Request records that arrive cut anywhere (inside the 5-byte header, between header
        and body, inside the body), pipelined requests in one segment, and a record that arrives
        with the start of the next one: every request is answered, in order, on one kept-alive
        connection. (The server holds a record header back until its body is there; a pipelined
        request already read from the socket by the core used to wait for more input.)"""
        cl = RecordClient(server.https_port, "rec.test", server.ca, "http/1.1")
        cl.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def record_of(path):
            cl.tls.write(f"GET {path} HTTP/1.1\r\nHost: rec.test\r\n\r\n".encode())
            return cl.out.read()

        def dribble(data, cuts):
            last = 0
            for c in [*cuts, len(data)]:
                cl.sock.sendall(data[last:c])
                last = c
                time.sleep(0.05)

        def responses(plain):
            out = []
            while h1_complete(plain):
                head, rest = plain.split(b"\r\n\r\n", 1)
                n = next(int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length:"))
                out.append((head, rest[:n]))
                plain = rest[n:]
            return out

        def answer(n=1):
            plain = b"".join(p for _, _, p in cl.records_until(lambda p: len(responses(p)) >= n))
            got = responses(plain)
            assert len(got) == n, got
            for head, body in got:
                assert head.startswith(b"HTTP/1.1 200 ") and body == BODY, head

        try:
            rec = record_of("/1k.bin")
            assert rec[0] == 23 and len(rec) > 20
            dribble(rec, [1, 3, 5, 6, len(rec) - 1])  # header in 3 pieces, body in 3
            answer()
            dribble(record_of("/1k.bin"), [5])  # header, then body
            answer()
            # Two pipelined requests in one segment: the second is read from what the core
            # input filter kept, not from the socket.
            first, second = record_of("/1k.bin"), record_of("/1k.bin?1")
            dribble(first + second, [])
            answer(2)
            # One record and the first 3 header bytes of the next in one segment.
            first, second = record_of("/1k.bin"), record_of("/1k.bin?2")
            dribble(first + second, [len(first) + 3])
            answer(2)
            # A lone header, then its body with the whole next record.
            first, second = record_of("/1k.bin"), record_of("/1k.bin?3")
            dribble(first + second, [5])
            answer(2)
        finally:
            cl.close()
        server.check_log()

    def test_head_goes_out_while_the_body_waits(self, server):
        """A CGI that sends its head and then sleeps: the head arrives before the body."""
        cl = RecordClient(server.https_port, "rec.test", server.ca, "http/1.1")
        try:
            t0 = time.monotonic()
            cl.send(b"GET /cgi-bin/slow.py HTTP/1.1\r\nHost: rec.test\r\n\r\n")
            cl.records_until(lambda p: b"\r\n\r\n" in p, timeout=10)
            t_head = time.monotonic() - t0
            cl.records_until(lambda p: b"late body" in p, timeout=10)
            t_body = time.monotonic() - t0
            assert t_head < 1.5 <= t_body, (t_head, t_body)
        finally:
            cl.close()

    def test_websocket_small_frames(self, server):
        ctx = ssl.create_default_context(cafile=str(server.ca))
        ctx.check_hostname = False

        async def go():
            async with connect(f"wss://127.0.0.1:{server.https_port}/ws/", ssl=ctx, server_hostname="rec.test",
                               open_timeout=10, close_timeout=5) as ws:
                for n in (1, 2, 10, 100, 1000, 5000):
                    data = os.urandom(n)
                    await ws.send(data)
                    got = await asyncio.wait_for(ws.recv(), 5)
                    assert got == data, n
                for i in range(20):  # text frames, one at a time, each answered before the next
                    await ws.send(f"ping {i}")
                    assert await asyncio.wait_for(ws.recv(), 5) == f"ping {i}"
        asyncio.run(go())
