"""The FastCGI blob store (tests/apps/fcgi_store.py) behind stock mod_proxy_fcgi: the baseline the
encrypt-script handler is compared with (tests/test_31_fcgi_encrypt.py, bench/fcgi.py). No
mod_bastion is loaded here. A second class talks FastCGI to the application directly for what
mod_proxy_fcgi never sends (FCGI_GET_VALUES, FCGI_ABORT_REQUEST, several requests per connection
without httpd in between)."""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import time

import pytest

from harness import curl
from harness.fcgi import FcgiApp

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, GET_VALUES, GET_VALUES_RESULT = 1, 2, 3, 4, 5, 6, 7, 9, 10


@pytest.fixture(scope="class")
def proxied(httpd_factory):
    """apache2 with mod_proxy_fcgi: /store/ (TCP, enablereuse=on), /noreuse/ (TCP, no reuse),
    /sock/ (Unix socket)."""
    s = httpd_factory(with_bastion=False)
    s.add_modules("proxy_fcgi")
    app = FcgiApp(s.root / "store-tcp").start()
    sock_dir = s.root / "app-sock"
    sock_dir.mkdir(mode=0o755)
    sock_app = FcgiApp(s.root / "store-unix", unix_socket=sock_dir / "app.sock").start()
    s.add_conf(f"""
# Its own worker (URL .../nr/, defined first): a ProxyPass to /store/'s URL, or to a URL under
# it defined after it, would share /store/'s worker and its connection pool.
ProxyPass "/noreuse/" "fcgi://127.0.0.1:{app.port}/nr/"
ProxyPass "/store/" "fcgi://127.0.0.1:{app.port}/" enablereuse=on
ProxyPass "/sock/" "unix:{sock_app.socket}|fcgi://localhost/" enablereuse=on
""")
    s.start()
    yield s, app, sock_app
    s.stop()
    app.stop()
    sock_app.stop()


def last(app: FcgiApp) -> dict:
    """The last line of the application's request log as a dict."""
    return _parse(app.requests()[-1])


class TestBehindModProxyFcgi:
    @pytest.mark.parametrize("size", [0, 1024, 10 << 20])
    @pytest.mark.parametrize("prefix", ["store", "sock"])
    def test_put_get_byte_exact(self, proxied, prefix, size):
        s, tcp_app, sock_app = proxied
        app = tcp_app if prefix == "store" else sock_app
        data = os.urandom(size)
        r = curl(s.url(f"/{prefix}/obj-{size}"), data=data, method="PUT", timeout=60)
        assert r.status == 201 and r.body == b"stored\n"
        rec = last(app)
        assert rec["method"] == "PUT" and rec["received"] == size
        assert app.stored(rec["name"]) == data
        params = app.last_params()
        assert params["REQUEST_METHOD"] == "PUT" and params["CONTENT_LENGTH"] == str(size)
        r = curl(s.url(f"/{prefix}/obj-{size}"), timeout=60)
        assert r.status == 200 and r.body == data, r.header_list
        # mod_proxy_fcgi forwards the body as it comes and may answer chunked instead of
        # passing the application's Content-Length on (httpd 2.4.x does so here for 1 KiB).
        assert (r.headers.get("content-length") == str(size)
                or r.headers.get("transfer-encoding") == "chunked"), r.header_list
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["etag"].startswith('"')

    def test_request_headers_reach_the_application(self, proxied):
        s, app, _ = proxied
        r = curl(s.url("/store/hdr"), data=b"x", method="POST", headers={"X-Tenant": "acme"})
        assert r.status == 201
        params = app.last_params()
        assert params["HTTP_X_TENANT"] == "acme" and params["REQUEST_METHOD"] == "POST"

    def test_chunked_upload(self, proxied, tmp_path):
        s, app, _ = proxied
        data = os.urandom(300_000)
        f = tmp_path / "body"
        f.write_bytes(data)
        r = curl(s.url("/store/chunked"), "-T", str(f), "-H", "Transfer-Encoding: chunked", timeout=30)
        assert r.status == 201
        assert app.last_params().get("CONTENT_LENGTH", "") == ""
        rec = last(app)
        assert rec["received"] == len(data) and app.stored(rec["name"]) == data
        assert curl(s.url("/store/chunked")).body == data

    def test_100_mib_is_streamed_with_bounded_application_memory(self, proxied, tmp_path):
        s, app, _ = proxied
        src = tmp_path / "big"
        with open(src, "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1 << 20))
        r = curl(s.url("/store/big"), "-T", str(src), timeout=120)
        assert r.status == 201
        name = last(app)["name"]
        assert (app.dir / name).stat().st_size == 100 << 20
        r = curl(s.url("/store/big"), timeout=120)
        assert r.status == 200 and len(r.body) == 100 << 20
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(src.read_bytes()).digest()
        hwm = _vm_hwm(app.proc.pid)
        assert hwm < 64 << 20, f"fcgi_store.py peaked at {hwm >> 20} MiB for a 100 MiB object"
        (app.dir / name).unlink()

    def test_head_missing_and_delete(self, proxied):
        s, app, _ = proxied
        assert curl(s.url("/store/hd"), data=b"0123456789", method="PUT").status == 201
        r = curl(s.url("/store/hd"), "-I")
        # The application sends Content-Length: 10 (TestFastCgiDirect checks); stock
        # mod_proxy_fcgi does not pass it on for HEAD.
        assert r.status == 200 and r.body.endswith(b"\r\n\r\n"), r.body  # -I: curl writes the head
        assert r.headers["etag"].startswith('"')
        assert r.headers["content-type"] == "application/octet-stream"
        assert last(app)["method"] == "HEAD"
        assert curl(s.url("/store/nothing-here")).status == 404
        assert curl(s.url("/store/nothing-here"), "-I").status == 404
        assert curl(s.url("/store/hd"), method="DELETE").status == 204
        assert not (app.dir / last(app)["name"]).exists()
        assert curl(s.url("/store/hd")).status == 404

    def test_connection_reuse(self, proxied):
        """enablereuse=on: mod_proxy_fcgi sets FCGI_KEEP_CONN and the application serves the
        next request on the same connection; without it each request has its own connection."""
        s, app, _ = proxied
        for prefix, reused in (("store", True), ("noreuse", False)):
            urls = [s.url(f"/{prefix}/reuse-{i}") for i in range(4)]
            # One client connection: the same httpd child and thread serve all four requests.
            r = curl(urls[0], *urls[1:])
            assert r.returncode == 0
            recs = [_parse(line) for line in app.requests()[-4:]]
            assert sorted(x["name"] for x in recs) == [f"{prefix}_reuse-{i}" for i in range(4)], recs
            assert all(x["keep"] is reused for x in recs), recs
            conns = {x["conn"] for x in recs}
            if reused:
                assert len(conns) == 1, recs
            else:
                assert len(conns) == 4, recs

    @pytest.mark.log_allow(r"AH01067: Failed to read FastCGI header", r"AH01075: Error dispatching request")
    def test_application_dies_mid_response(self, proxied):
        """The client sees a cut response (never a complete 200); httpd logs the failure."""
        s, _, _ = proxied
        r = curl(s.url("/store/__die_midway"))
        assert r.status == 200 and r.returncode == 18, r  # curl: outstanding read data
        assert len(r.body) == 10000
        s.wait_for_log(r"\[proxy_fcgi:error\].*AH01075: Error dispatching request")

    @pytest.mark.log_allow(r"AH01071: Got error 'fcgi_store: a line on stderr")
    def test_stderr_goes_to_the_error_log(self, proxied):
        s, _, _ = proxied
        r = curl(s.url("/store/__stderr"))
        assert r.status == 200 and r.body == b"ok\n"
        s.wait_for_log(r"\[proxy_fcgi:error\].*AH01071: Got error 'fcgi_store: a line on stderr")


def _parse(line: str) -> dict:
    """A line of .requests.log: "METHOD name bytes conn=N keep=0|1"."""
    method, name, received, conn, keep = line.split()
    return {"method": method, "name": name, "received": int(received),
            "conn": int(conn.removeprefix("conn=")), "keep": keep == "keep=1"}


def _vm_hwm(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# -- FastCGI spoken directly to the application -------------------------------------------------

def _rec(rtype: int, rid: int, content: bytes = b"") -> bytes:
    pad = (-len(content)) % 8
    return struct.pack(">BBHHBB", 1, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def _nv(pairs: dict[str, str]) -> bytes:
    out = b""
    for k, v in pairs.items():
        for x in (k, v):
            out += bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
        out += k.encode() + v.encode()
    return out


class Client:
    def __init__(self, app: FcgiApp):
        self.sock = socket.create_connection(("127.0.0.1", app.port), timeout=10)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def record(self) -> tuple[int, int, bytes] | None:
        while True:
            if len(self.buf) >= 8:
                _, t, rid, clen, plen, _ = struct.unpack(">BBHHBB", self.buf[:8])
                if len(self.buf) >= 8 + clen + plen:
                    content = self.buf[8:8 + clen]
                    self.buf = self.buf[8 + clen + plen:]
                    return t, rid, content
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def begin(self, rid: int, env: dict[str, str], keep: bool) -> None:
        self.send(_rec(BEGIN, rid, struct.pack(">HB5x", 1, 1 if keep else 0))
                  + _rec(PARAMS, rid, _nv(env)) + _rec(PARAMS, rid))

    def response(self, rid: int) -> tuple[bytes, bytes, int]:
        """(stdout, stderr, appStatus) up to FCGI_END_REQUEST."""
        out, err = b"", b""
        while True:
            r = self.record()
            assert r is not None, "connection closed before FCGI_END_REQUEST"
            t, got, content = r
            assert got == rid
            if t == STDOUT:
                out += content
            elif t == STDERR:
                err += content
            elif t == END:
                return out, err, struct.unpack(">IB3x", content)[0]

    def closed(self) -> bool:
        self.sock.settimeout(3)
        try:
            return self.sock.recv(1) == b""
        except TimeoutError:
            return False


class TestFastCgiDirect:
    @pytest.fixture(scope="class")
    @classmethod
    def app(cls, tmp_path_factory):
        a = FcgiApp(tmp_path_factory.mktemp("fcgi-direct") / "store").start()
        yield a
        a.stop()

    def test_get_values(self, app):
        c = Client(app)
        c.send(_rec(GET_VALUES, 0, _nv({"FCGI_MAX_CONNS": "", "FCGI_MPXS_CONNS": "", "X_UNKNOWN": ""})))
        t, rid, content = c.record()
        assert (t, rid) == (GET_VALUES_RESULT, 0)
        assert b"FCGI_MPXS_CONNS" in content and b"FCGI_MAX_CONNS" in content and b"X_UNKNOWN" not in content

    def test_keep_conn_serves_several_requests_then_close_without_it(self, app):
        c = Client(app)
        for rid, keep in ((1, True), (2, True), (3, False)):
            data = os.urandom(70_000)
            c.begin(rid, {"REQUEST_METHOD": "PUT", "PATH_INFO": f"/k{rid}"}, keep)
            c.send(b"".join(_rec(STDIN, rid, data[i:i + 30000]) for i in range(0, len(data), 30000))
                   + _rec(STDIN, rid))
            out, _, status = c.response(rid)
            assert status == 0 and out.startswith(b"Status: 201")
            assert (app.dir / f"k{rid}").read_bytes() == data
        assert c.closed()
        conns = {_parse(line)["conn"] for line in app.requests()[-3:]}
        assert len(conns) == 1

    def test_get_streams_in_records(self, app):
        data = os.urandom(300_000)
        (app.dir / "g").write_bytes(data)
        c = Client(app)
        c.begin(1, {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/g"}, False)
        c.send(_rec(STDIN, 1))
        out, _, _ = c.response(1)
        head, _, body = out.partition(b"\r\n\r\n")
        assert b"Content-Length: 300000" in head and body == data

    def test_abort_request(self, app):
        c = Client(app)
        c.begin(1, {"REQUEST_METHOD": "PUT", "PATH_INFO": "/aborted"}, True)
        c.send(_rec(STDIN, 1, b"partial"))
        c.send(_rec(ABORT, 1))
        _, _, status = c.response(1)
        assert status != 0
        assert not (app.dir / "aborted").exists()
        # The connection (FCGI_KEEP_CONN) still serves the next request.
        c.begin(2, {"REQUEST_METHOD": "GET", "PATH_INFO": "/aborted"}, False)
        c.send(_rec(STDIN, 2))
        out, _, _ = c.response(2)
        assert out.startswith(b"Status: 404")

    def test_die_midway_and_slow(self, app):
        c = Client(app)
        c.begin(1, {"REQUEST_METHOD": "GET", "PATH_INFO": "/__die_midway"}, True)
        c.send(_rec(STDIN, 1))
        got = b""
        while (r := c.record()) is not None:
            assert r[0] == STDOUT
            got += r[2]
        assert b"Content-Length: 1000000" in got and len(got.partition(b"\r\n\r\n")[2]) == 10000
        c = Client(app)
        t0 = time.monotonic()
        c.begin(1, {"REQUEST_METHOD": "GET", "PATH_INFO": "/__slow"}, False)
        c.send(_rec(STDIN, 1))
        out, _, _ = c.response(1)
        assert time.monotonic() - t0 >= 5 and out.startswith(b"Status: 404")
