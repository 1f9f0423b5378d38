"""TLS through rustls: SNI, transfers, protocols, ciphers, ALPN, variables, timeouts,
resumption, configuration errors, coexistence with mod_ssl, and mod_tls's known bugs."""

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from harness import REPO_ROOT, curl, openssl_s_client, raw_request

ENV_CGI = """#!/usr/bin/python3
import json, os
print("Content-Type: application/json")
print()
print(json.dumps({k: v for k, v in os.environ.items()}))
"""

UPLOAD_CGI = """#!/usr/bin/python3
import hashlib, os, sys
n = 0
h = hashlib.sha256()
while True:
    b = sys.stdin.buffer.read(65536)
    if not b:
        break
    n += len(b)
    h.update(b)
print("Content-Type: text/plain")
print()
print(n, h.hexdigest())
"""

SIZES = [1024, 64 * 1024 - 1, 100 * 1024, 1024 * 1024, 10 * 1024 * 1024]


def _vhost(name, port, cert, extra=""):
    return f"""
<VirtualHost 127.0.0.1:{port}>
  ServerName {name}
  DocumentRoot "htdocs/{name}"
  <Directory "htdocs/{name}">
    Require all granted
  </Directory>
  TLSCertificate {cert.cert} {cert.key}
{extra}
</VirtualHost>
"""


@pytest.fixture(scope="module")
def certs(cert_authority):
    return {
        "a": cert_authority.issue(["a.test", "*.wild.test"], key_type="ec"),
        "b": cert_authority.issue(["b.test"], key_type="rsa"),
        "c": cert_authority.issue(["c.test"], key_type="ec"),
    }


class TlsServer:
    """Two name-based TLS vhosts (a.test: ECDSA, b.test: RSA) and c.test with stricter settings."""

    @staticmethod
    def make(httpd_factory, certs, mpm="event", extra_global="", name=None, extra_modules=()):
        s = httpd_factory(mpm=mpm, name=name)
        if extra_modules:
            s.add_modules(*extra_modules)
        port = s.port("https")
        s.https_port = port
        s.set_log_level("bastion", "debug")
        for n in ("a.test", "b.test", "c.test"):
            s.write_file(f"{n}/index.html", f"<h1>{n}</h1>\n")
        for size in SIZES:
            data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
            s.write_file(f"a.test/data-{size}.bin", data[:size])
        s.write_cgi("env.py", ENV_CGI)
        s.write_cgi("upload.py", UPLOAD_CGI)
        s.add_conf(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
LimitRequestBody 0
{extra_global}
""")
        s.add_conf(_vhost("a.test", port, certs["a"], """
  ServerAlias *.wild.test
  <Location "/vars-std">
    TLSOptions +StdEnvVars
  </Location>
  Header always set X-Proto "%{SSL_PROTOCOL}s"
  Header always set X-Expr-Proto "expr=%{SSL:SSL_PROTOCOL}"
  <Location "/tls13-only">
    Require expr "%{SSL_PROTOCOL} == 'TLSv1.3'"
  </Location>
  RewriteEngine on
  RewriteCond %{HTTPS} =on
  RewriteCond %{SSL:SSL_PROTOCOL} ^(TLSv1\\.[23])$
  RewriteRule ^/rewrite-check$ /index.html?proto=%1 [R=302,L]
"""))
        s.add_conf(_vhost("b.test", port, certs["b"], "  TLSOptions +ExportCertData +StdEnvVars"))
        s.add_conf(_vhost("c.test", port, certs["c"], """
  TLSProtocol TLSv1.3+
  TLSHonorClientOrder off
  TLSCiphersPrefer TLS_CHACHA20_POLY1305_SHA256
"""))
        return s


@pytest.fixture(scope="class")
def server(httpd_factory, certs, cert_authority):
    """The default TLS server of a test class (classes with other settings override it)."""
    s = TlsServer.make(httpd_factory, certs)
    s.ca = cert_authority.cert_path
    s.start()
    yield s
    s.stop()


def get(server, host, path, **kw):
    kw.setdefault("cacert", server.ca)
    return curl(f"https://{host}:{server.https_port}{path}", resolve=True, **kw)


class TestSniAndRequests:
    def test_sni_selects_vhost_and_certificate(self, server):
        for host in ("a.test", "b.test", "c.test"):
            r = get(server, host, "/index.html")
            assert r.status == 200, r
            assert r.text == f"<h1>{host}</h1>\n"
        sa = openssl_s_client("a.test", server.https_port, input=b"")
        assert sa.handshake_ok and "CN = a.test" in sa.subject
        sb = openssl_s_client("b.test", server.https_port, input=b"")
        assert sb.handshake_ok and "CN = b.test" in sb.subject

    def test_wildcard_alias(self, server):
        r = get(server, "x.wild.test", "/index.html")
        assert r.status == 200 and r.text == "<h1>a.test</h1>\n"

    def test_unknown_sni_is_refused_with_alert(self, server):
        s = openssl_s_client("unknown.test", server.https_port, input=b"")
        assert not s.handshake_ok
        assert re.search(r"unrecognized name|alert number 112", s.stdout + s.stderr), s.stderr

    def test_host_not_matching_sni_gets_421(self, server):
        r = get(server, "a.test", "/index.html", headers={"Host": "b.test"})
        assert r.status == 421

    def test_no_sni_on_name_based_port_gets_403(self, server):
        r = curl(f"https://127.0.0.1:{server.https_port}/index.html", insecure=True)
        assert r.status == 403

    def test_head(self, server):
        r = get(server, "a.test", "/data-1024.bin", method="HEAD")
        assert r.status == 200 and r.body == b"" and r.headers["content-length"] == "1024"

    @pytest.mark.parametrize("size", SIZES)
    def test_download_byte_exact(self, server, size):
        r = get(server, "a.test", f"/data-{size}.bin", timeout=30)
        assert r.status == 200
        expect = (server.htdocs / "a.test" / f"data-{size}.bin").read_bytes()
        assert len(r.body) == size and r.body == expect

    def test_several_requests_per_connection(self, server):
        u = f"https://a.test:{server.https_port}"
        p = subprocess.run(["curl", "-sS", "--resolve", f"a.test:{server.https_port}:127.0.0.1",
                            "--cacert", str(server.ca), "-w", "%{http_code} %{num_connects}\n",
                            "-o", "/dev/null", "-o", "/dev/null", f"{u}/index.html", f"{u}/data-1024.bin"],
                           capture_output=True, text=True, timeout=20)
        # Both 200; the second transfer made no new connection.
        assert p.stdout.split("\n")[:2] == ["200 1", "200 0"], p.stdout + p.stderr
        log = "\n".join(server.read_access_log())
        assert "/index.html" in log and "/data-1024.bin" in log

    def test_upload_10mib(self, server):
        data = os.urandom(10 * 1024 * 1024)
        r = get(server, "a.test", "/cgi-bin/upload.py", data=data, timeout=60)
        assert r.status == 200, r
        n, digest = r.text.split()
        assert int(n) == len(data) and digest == hashlib.sha256(data).hexdigest()

    def test_chunked_upload(self, server):
        data = os.urandom(300_000)
        r = get(server, "a.test", "/cgi-bin/upload.py", data=data, headers={"Transfer-Encoding": "chunked"})
        assert r.status == 200, r
        n, digest = r.text.split()
        assert int(n) == len(data) and digest == hashlib.sha256(data).hexdigest()

    def test_pipelined_requests_in_one_record(self, server):
        # Several requests arrive in one TLS record: the later ones wait decrypted in the filter,
        # and must be served without waiting for more network input.
        ctx = ssl.create_default_context(cafile=str(server.ca))
        with socket.create_connection(("127.0.0.1", server.https_port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as t:
                req = b"GET /index.html HTTP/1.1\r\nHost: a.test\r\n\r\n"
                t.sendall(req * 3 + req.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
                t.settimeout(5)
                data, t0 = b"", time.monotonic()
                while True:
                    chunk = t.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 4, data[:500]
        assert time.monotonic() - t0 < 3

    def test_plain_http_on_tls_port_gets_400(self, server):
        out = raw_request(server.https_port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", timeout=5)
        assert out.startswith(b"HTTP/1.1 400 Bad Request"), out
        assert b"HTTPS" in out

    def test_garbage_client_is_closed(self, server):
        t0 = time.monotonic()
        out = raw_request(server.https_port, b"\x16\x03\x01\x00\x05hello-not-tls" * 10, timeout=5)
        assert time.monotonic() - t0 < 4
        assert not out.startswith(b"HTTP/")

    def test_next_request_works_after_errors(self, server):
        assert get(server, "a.test", "/index.html").status == 200


def test_421_unless_the_request_host_accepts_the_session(httpd_factory, certs, cert_authority):
    """A request whose Host selects another vhost than SNI is served only if that vhost serves the
    certificate the client got and allows the negotiated version and cipher (mod_tls' rule)."""
    s = httpd_factory(name="misdirected")
    port = s.port("https")
    for n in ("a.test", "same.test", "strict.test", "b.test"):
        s.write_file(f"{n}/index.html", f"<h1>{n}</h1>\n")
    s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine 127.0.0.1:{port}\n"
               + _vhost("a.test", port, certs["a"])
               + _vhost("same.test", port, certs["a"])
               + _vhost("strict.test", port, certs["a"], "  TLSProtocol TLSv1.3+")
               + _vhost("b.test", port, certs["b"]))
    s.start()
    try:
        def on_a(host, *args):
            return curl(f"https://a.test:{port}/index.html", *args, resolve=True,
                        cacert=cert_authority.cert_path, headers={"Host": host})
        # Same certificate, version and cipher allowed: served by the Host's vhost.
        r = on_a("same.test")
        assert r.status == 200 and r.text == "<h1>same.test</h1>\n", r
        r = on_a("strict.test")
        assert r.status == 200 and r.text == "<h1>strict.test</h1>\n", r
        # Same certificate, but TLS 1.2 is below strict.test's minimum: 421.
        r = on_a("strict.test", "--tls-max", "1.2")
        assert r.status == 421, r
        r = on_a("same.test", "--tls-max", "1.2")
        assert r.status == 200 and r.text == "<h1>same.test</h1>\n", r
        # Another certificate: 421.
        assert on_a("b.test").status == 421
    finally:
        s.stop()


def _half_closed_tls_exchange(port, host, cafile, payload, timeout=15):
    """Sends `payload` over TLS, then closes the TCP write side (no close_notify) and reads the
    answer until the server closes."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=host)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        def flush():
            data = out.read()
            if data:
                sock.sendall(data)

        def fill():
            d = sock.recv(65536)
            if not d:
                inc.write_eof()
                return False
            inc.write(d)
            return True

        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                fill()
        flush()
        obj.write(payload)
        flush()
        sock.shutdown(socket.SHUT_WR)
        resp = b""
        while True:
            try:
                resp += obj.read(65536)
            except ssl.SSLWantReadError:
                if not fill():
                    break
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
        return resp


def test_exhaustive_mode_returns_all_remaining_plaintext(httpd_factory, certs, cert_authority):
    """AP_MODE_EXHAUSTIVE (no stock module uses it): a test handler reads the connection's input
    filters in that mode after the request line and headers; it must get every byte the client
    sent after them, across many TLS records, up to the client's end of stream."""
    so = REPO_ROOT / "build" / "mod_bastion-test-hooks.so"
    assert so.exists(), f"{so} is missing: run `make build-test-hooks`"
    s = httpd_factory(name="exhaustive", module_path=so)
    port = s.port("https")
    s.write_file("a.test/index.html", "a\n")
    s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine 127.0.0.1:{port}\n"
               + _vhost("a.test", port, certs["a"],
                        '  <Location "/exhaustive">\n    SetHandler bastion-test-exhaustive\n  </Location>'))
    s.start()
    try:
        extra = os.urandom(200_000)
        req = b"GET /exhaustive HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        resp = _half_closed_tls_exchange(port, "a.test", cert_authority.cert_path, req + extra)
        head, _, body = resp.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), resp[:300]
        if b"chunked" in head.lower():
            out, rest = b"", body
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                n = int(size_line.split(b";")[0], 16)
                if n == 0:
                    break
                out, rest = out + rest[:n], rest[n + 2:]
            body = out
        assert len(body) == len(extra) and body == extra
    finally:
        s.stop()


class TestVariables:
    def test_always_set(self, server):
        env = get(server, "a.test", "/cgi-bin/env.py").json()
        assert env["HTTPS"] == "on"
        assert env["SSL_TLS_SNI"] == "a.test"
        assert env["SSL_PROTOCOL"] == "TLSv1.3"
        assert env["SSL_CIPHER"].startswith("TLS_")
        assert "SSL_SESSION_ID" not in env
        assert "SSL_SERVER_CERT" not in env
        assert "SSL_SESSION_RESUMED" not in env

    def test_std_env_vars(self, server):
        env = get(server, "b.test", "/cgi-bin/env.py").json()
        assert env["SSL_SESSION_RESUMED"] == "Initial"

        assert env["SSL_VERSION_LIBRARY"].startswith("rustls/")
        assert env["SSL_CIPHER_USEKEYSIZE"] in ("128", "256")
        assert env["SSL_CIPHER_ALGKEYSIZE"] in ("128", "256")
        assert "CN=b.test" in env["SSL_SERVER_S_DN"]
        assert "CN=mod_bastion Test CA" in env["SSL_SERVER_I_DN"]
        assert re.fullmatch(r"[0-9A-F]+", env["SSL_SERVER_M_SERIAL"])
        assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT", env["SSL_SERVER_V_END"])
        assert env["SSL_SERVER_CERT"].startswith("-----BEGIN CERTIFICATE-----")
        assert "SSL_SESSION_ID" not in env

    def test_tlsoptions_per_location(self, server):
        env = get(server, "a.test", "/vars-std/../cgi-bin/env.py").json()
        assert "SSL_SESSION_RESUMED" not in env

    def test_ap_expr_sees_ssl_variables(self, server):
        r = get(server, "a.test", "/index.html")
        assert r.headers["x-expr-proto"] == "TLSv1.3"
        # Require expr on SSL_PROTOCOL: allowed with TLS 1.3 (then 404: no such file), denied with 1.2.
        assert get(server, "a.test", "/tls13-only").status == 404
        r12 = curl(f"https://a.test:{server.https_port}/tls13-only", "--tls-max", "1.2", resolve=True, cacert=server.ca)
        assert r12.status == 403
        server.log_allow(r"AH01630")  # authz denial log line

    def test_mod_headers_and_rewrite_see_tls(self, server):
        r = get(server, "a.test", "/rewrite-check")
        assert r.status == 302
        assert r.headers["location"].endswith("/index.html?proto=TLSv1.3")
        assert r.headers["location"].startswith(f"https://a.test:{server.https_port}/")
        assert r.headers["x-proto"] == "TLSv1.3"


class TestProtocolsAndCiphers:
    def test_tls12_allowed_by_default(self, server):
        s = openssl_s_client("a.test", server.https_port, args=("-tls1_2",))
        assert s.handshake_ok and s.protocol == "TLSv1.2"

    def test_tls13_minimum_refuses_tls12(self, server):
        s = openssl_s_client("c.test", server.https_port, args=("-tls1_2",))
        assert not s.handshake_ok
        s = openssl_s_client("c.test", server.https_port, args=("-tls1_3",))
        assert s.handshake_ok and s.protocol == "TLSv1.3"

    def test_server_order_prefers_chacha(self, server):
        s = openssl_s_client("c.test", server.https_port, args=(
            "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"))
        assert s.cipher == "TLS_CHACHA20_POLY1305_SHA256"

    def test_quoted_cipher_list(self, httpd_factory, certs):
        s = httpd_factory(name="quoted")
        port = s.port("https")
        s.write_file("a.test/index.html", "a\n")
        s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\n" + _vhost("a.test", port, certs["a"],
                   '  TLSHonorClientOrder off\n  TLSCiphersPrefer "TLS13_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"'))
        s.start()
        try:
            r = openssl_s_client("a.test", port, args=("-ciphersuites", "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"))
            assert r.cipher == "TLS_CHACHA20_POLY1305_SHA256"
        finally:
            s.stop()

    def test_client_order_honoured_by_default(self, server):
        s = openssl_s_client("a.test", server.https_port, args=(
            "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"))
        assert s.cipher == "TLS_AES_128_GCM_SHA256"


@pytest.mark.parametrize("name", [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",   # IANA
    "ECDHE-ECDSA-AES128-GCM-SHA256",             # OpenSSL
    "TLS_CIPHER_0xc02b",                         # numeric
])
def test_cipher_suppress_by_every_name_form(httpd_factory, certs, cert_authority, name):
    s = httpd_factory(name="sup-" + name[-8:].replace("_", "").lower())
    port = s.port("https")
    s.write_file("a.test/index.html", "a\n")
    s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\n" + _vhost("a.test", port, certs["a"], f"  TLSCiphersSuppress {name}"))
    s.start()
    try:
        r = openssl_s_client("a.test", port, args=("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"))
        assert not r.handshake_ok
        r = openssl_s_client("a.test", port, args=("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"))
        assert r.handshake_ok and r.cipher == "ECDHE-ECDSA-AES256-GCM-SHA384"
        r = openssl_s_client("a.test", port, args=("-tls1_3",))
        assert r.handshake_ok
    finally:
        s.stop()


class TestConfigErrors:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_factory):
        return httpd_factory()

    @pytest.mark.parametrize("line,expect", [
        ("TLSProtocol TLSv1.1", 'TLSProtocol: expected one of default, TLSv1.2+, TLSv1.3+, TLSv0x0303+, TLSv0x0304+; got "TLSv1.1"'),
        ("TLSProtocol TLSv1.1+", "TLSProtocol: "),
        ("TLSEngine https", 'TLSEngine: expected [addr:]port'),
        ("TLSCiphersPrefer TLS_NO_SUCH_CIPHER", "TLSCiphersPrefer: "),
        ("TLSCiphersSuppress TLS_CIPHER_0xZZ", "TLSCiphersSuppress: "),
        ("TLSCertificate /nonexistent/cert.pem", "TLSCertificate: expected a readable PEM file, but /nonexistent/cert.pem does not exist"),
        ("TLSOptions +Bogus", 'TLSOptions: expected [+|-]StdEnvVars, ExportCertData or Defaults, got "+Bogus"'),
        ("TLSStrictSNI maybe", "TLSStrictSNI must be On or Off"),
        ("TLSSessionCache bad spec!", "TLSSessionCache "),
        ("<VirtualHost 127.0.0.1:9>\nTLSSessionCache none\n</VirtualHost>", "\nTLSSessionCache cannot occur within <VirtualHost> section"),
        ("TLSCertificate /tmp", "TLSCertificate: expected a readable PEM file, but /tmp is a directory"),
        ("TLSCiphersPrefer", "TLSCiphersPrefer: expected cipher names"),
    ])
    def test_bad_values_fail_configtest(self, server, line, expect):
        server.clear_conf()
        server.add_conf(line)
        server.write_config()
        rc, out = server.configtest()
        assert rc != 0, out
        assert re.search(r"Syntax error on line \d+ of \S+httpd.conf:", out), out
        assert expect in out, out

    def test_vhost_without_certificate_fails_start(self, server):
        port = server.port("https")
        server.clear_conf()
        server.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\n<VirtualHost 127.0.0.1:{port}>\n  ServerName nocert.test\n</VirtualHost>")
        with pytest.raises(Exception) as e:
            server.start()
        assert "nocert.test" in str(e.value) and "has no certificate" in str(e.value)
        server.log_allow(r"nocert\.test.*has no certificate", r"AH00016", r"AH00020")

    def test_unsupported_cipher_is_a_warning(self, server, certs):
        port = server.port("https")
        server.clear_conf()
        server.write_file("a.test/index.html", "a\n")
        server.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\n" + _vhost(
            "a.test", port, certs["a"], "  TLSCiphersPrefer TLS_RSA_WITH_AES_128_CBC_SHA TLS13_AES_256_GCM_SHA384"))
        server.log_allow(r"\[bastion:warn\].*TLS_RSA_WITH_AES_128_CBC_SHA")
        server.start()
        try:
            server.wait_for_log(r"\[bastion:warn\].*a\.test.*TLS_RSA_WITH_AES_128_CBC_SHA")
        finally:
            server.stop()


class TestAlpnAndH2:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, certs, cert_authority):
        s = TlsServer.make(httpd_factory, certs, extra_modules=("http2",),
                           extra_global="Protocols h2 http/1.1")
        s.add_conf(f"<VirtualHost 127.0.0.1:{s.https_port}>\n  ServerName h1only.test\n  Protocols http/1.1\n"
                   f"  TLSCertificate {certs['a'].cert} {certs['a'].key}\n</VirtualHost>")
        s.ca = cert_authority.cert_path
        s.start()
        yield s
        s.stop()

    def test_h2_negotiated(self, server):
        r = get(server, "a.test", "/data-1048576.bin", http2=True)
        assert r.status == 200 and r.http_version == "2"
        assert r.body == (server.htdocs / "a.test" / "data-1048576.bin").read_bytes()

    def test_http11_when_asked(self, server):
        r = get(server, "a.test", "/index.html")
        assert r.status == 200 and r.http_version == "1.1"

    def test_alpn_seen_by_openssl(self, server):
        s = openssl_s_client("a.test", server.https_port, args=("-alpn", "h2,http/1.1"))
        assert s.alpn == "h2"

    def test_h2_variables(self, server):
        # The four made once per connection reach the stream, on a worker's thread.
        env = get(server, "b.test", "/cgi-bin/env.py", http2=True).json()
        assert env["HTTPS"] == "on" and env["SSL_PROTOCOL"] == "TLSv1.3"
        assert env["SSL_TLS_SNI"] == "b.test" and env["SSL_CIPHER"].startswith("TLS_"), env


class TestTimeoutsAndResumption:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, certs, cert_authority):
        s = TlsServer.make(httpd_factory, certs, mpm="prefork", extra_modules=("reqtimeout",),
                           extra_global="RequestReadTimeout handshake=1 header=5 body=10")
        s.ca = cert_authority.cert_path
        s.start()
        yield s
        s.stop()

    def test_stalled_handshake_is_cut(self, server):
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", server.https_port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01")  # the start of a record, then nothing
            try:
                data = sock.recv(100)
            except (ConnectionResetError, socket.timeout):
                data = b""
        took = time.monotonic() - t0
        assert data == b"" and took < 4, (data, took)

    def test_tls12_session_resumes(self, server):
        s = openssl_s_client("a.test", server.https_port, args=("-tls1_2", "-reconnect"), timeout=20)
        assert s.stdout.count("Reused,") >= 4, s.stdout[-2000:]

    def test_tls13_tickets_resume_across_children(self, server, tmp_path):
        sess = tmp_path / "sess.pem"
        first = openssl_s_client("a.test", server.https_port, args=("-tls1_3", "-ign_eof", "-sess_out", str(sess)),
                                 input=b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        assert first.handshake_ok and sess.exists()
        reused = 0
        for _ in range(6):  # prefork: reconnects land on several children
            again = openssl_s_client("a.test", server.https_port, args=("-tls1_3", "-ign_eof", "-sess_in", str(sess)),
                                     input=b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            reused += again.reused is True
        assert reused == 6
        env = get(server, "b.test", "/cgi-bin/env.py").json()
        assert env["SSL_SESSION_RESUMED"] == "Initial"

    def test_tickets_resume_after_graceful_restart(self, server, tmp_path):
        # The ticket secret lives in the process pool: a graceful restart keeps tickets valid.
        sess = tmp_path / "sess-graceful.pem"
        req = b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        first = openssl_s_client("a.test", server.https_port, args=("-tls1_3", "-ign_eof", "-sess_out", str(sess)), input=req)
        assert first.handshake_ok and sess.exists()
        server.graceful()
        again = openssl_s_client("a.test", server.https_port, args=("-tls1_3", "-ign_eof", "-sess_in", str(sess)), input=req)
        assert again.reused is True


class TestBugsOfModTls:
    """Regression tests for the mod_tls bugs listed in the reference."""

    def test_strict_sni_is_inherited_by_every_vhost(self, httpd_factory, certs):
        # mod_tls forgot to merge TLSStrictSNI: vhosts ended up accepting unknown names.
        s = httpd_factory(name="strict")
        port = s.port("https")
        s.write_file("a.test/index.html", "a\n")
        s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\nTLSStrictSNI on\n"
                   + _vhost("a.test", port, certs["a"]) + _vhost("b.test", port, certs["b"]))
        s.start()
        try:
            assert not openssl_s_client("unknown.test", port).handshake_ok
        finally:
            s.stop()

    def test_strict_sni_off_falls_back_to_default_vhost(self, httpd_factory, certs):
        s = httpd_factory(name="lax")
        port = s.port("https")
        s.write_file("a.test/index.html", "a\n")
        s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\nTLSStrictSNI off\n"
                   + _vhost("a.test", port, certs["a"]) + _vhost("b.test", port, certs["b"]))
        s.start()
        try:
            r = openssl_s_client("unknown.test", port)
            assert r.handshake_ok and "CN = a.test" in r.subject
        finally:
            s.stop()

    def test_tlsengine_address_matters(self, httpd_factory, certs):
        # mod_tls compared only the port and the address length: 127.0.0.2 was TLS too.
        s = httpd_factory(name="addr")
        port = s.port("https")
        s.write_file("plain.html", "plain\n")
        s.add_conf(f"Listen 127.0.0.1:{port}\nListen 127.0.0.2:{port}\nTLSEngine 127.0.0.1:{port}\n"
                   f"<VirtualHost 127.0.0.1:{port}>\n  ServerName a.test\n  TLSCertificate {certs['a'].cert} {certs['a'].key}\n</VirtualHost>\n"
                   f"<VirtualHost 127.0.0.2:{port}>\n  ServerName plain.test\n</VirtualHost>\n")
        s.start()
        try:
            r = curl(f"http://127.0.0.2:{port}/plain.html")
            assert r.status == 200 and r.text == "plain\n"
            assert openssl_s_client("a.test", port).handshake_ok
        finally:
            s.stop()

    def test_exportcertdata_survives_a_signed_option_below(self, httpd_factory, certs, cert_authority):
        # mod_tls dropped an inherited ExportCertData in per-dir configs.
        s = httpd_factory(name="opts")
        port = s.port("https")
        s.write_cgi("env.py", ENV_CGI)
        s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\nTLSOptions +ExportCertData\n"
                   f"<Location /cgi-bin/>\n  TLSOptions +StdEnvVars\n</Location>\n"
                   + _vhost("a.test", port, certs["a"]))
        s.start()
        try:
            env = curl(f"https://a.test:{port}/cgi-bin/env.py", resolve=True, cacert=cert_authority.cert_path).json()
            assert env["SSL_SERVER_CERT"].startswith("-----BEGIN CERTIFICATE-----")
            assert env["SSL_SESSION_RESUMED"] == "Initial"
        finally:
            s.stop()


def test_coexists_with_mod_ssl(httpd_factory, certs, cert_authority):
    s = httpd_factory(name="ssl")
    s.add_modules("ssl")
    tls_port, ssl_port = s.port("https"), s.port("ssl")
    s.write_file("a.test/index.html", "a\n")
    s.add_conf(f"Listen 127.0.0.1:{tls_port}\nListen 127.0.0.1:{ssl_port}\nTLSEngine {tls_port}\n"
               + _vhost("a.test", tls_port, certs["a"])
               + f"<VirtualHost 127.0.0.1:{ssl_port}>\n  ServerName b.test\n  SSLEngine on\n"
                 f"  SSLCertificateFile {certs['b'].cert}\n  SSLCertificateKeyFile {certs['b'].key}\n</VirtualHost>\n")
    s.start()
    try:
        r = curl(f"https://a.test:{tls_port}/index.html", resolve=True, cacert=cert_authority.cert_path)
        assert r.status == 200 and r.text == "a\n"
        r = curl(f"https://b.test:{ssl_port}/", resolve=True, cacert=cert_authority.cert_path)
        assert r.returncode == 0 and r.status in (200, 403, 404)
        env_ssl = openssl_s_client("b.test", ssl_port)
        assert env_ssl.handshake_ok and "CN = b.test" in env_ssl.subject
    finally:
        s.stop()


class TestSharedSessionCache:
    """TLS 1.2 session ids (no tickets) resume on any child: the cache is shared (shmcb)."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, certs, cert_authority):
        s = TlsServer.make(httpd_factory, certs, mpm="prefork", name="shmcb",
                           extra_global="TLSSessionTickets off")
        s.ca = cert_authority.cert_path
        s.start()
        yield s
        s.stop()

    def test_session_ids_resume_across_children(self, server, tmp_path):
        sess = tmp_path / "sess12.pem"
        req = b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        first = openssl_s_client("a.test", server.https_port, args=("-tls1_2", "-no_ticket", "-ign_eof", "-sess_out", str(sess)), input=req)
        assert first.handshake_ok and sess.exists()
        pids = set()
        reused = 0
        for _ in range(8):
            r = openssl_s_client("a.test", server.https_port, args=("-tls1_2", "-no_ticket", "-ign_eof", "-sess_in", str(sess)), input=req)
            reused += r.reused is True
        assert reused == 8
        # Several children served them (prefork starts more than one).
        assert len(server.child_pids()) > 1

    def test_tls13_stateful_tickets_resume(self, server, tmp_path):
        sess = tmp_path / "sess13.pem"
        req = b"GET /index.html HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
        first = openssl_s_client("a.test", server.https_port, args=("-tls1_3", "-ign_eof", "-sess_out", str(sess)), input=req)
        assert first.handshake_ok and sess.exists()
        results = [openssl_s_client("a.test", server.https_port, args=("-tls1_3", "-ign_eof", "-sess_in", str(sess)), input=req).reused
                   for _ in range(3)]
        assert results[0] is True  # stateful tickets are single use (rustls takes them)


def test_session_cache_spec_errors(httpd_factory, certs):
    s = httpd_factory(name="cachespec")
    port = s.port("https")
    s.add_conf(f"Listen 127.0.0.1:{port}\nTLSEngine {port}\nTLSSessionCache nosuchprovider:x\n" + _vhost("a.test", port, certs["a"]))
    with pytest.raises(Exception) as e:
        s.start()
    assert 'TLSSessionCache nosuchprovider:x: no socache provider "nosuchprovider" is loaded' in str(e.value)
    s.log_allow(r"TLSSessionCache nosuchprovider", r"AH00016", r"AH00020")


TLSPROBE = REPO_ROOT / "target" / "release" / "bastion-tlsprobe"


class TestPostQuantum:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, certs, cert_authority):
        s = TlsServer.make(httpd_factory, certs, name="pq", extra_modules=("http2",), extra_global="Protocols h2 http/1.1")
        s.ca = cert_authority.cert_path
        s.start()
        yield s
        s.stop()

    def _probe(self, server, *args):
        assert TLSPROBE.exists(), f"{TLSPROBE} is missing: run `make build-tools`"
        p = subprocess.run([str(TLSPROBE), "--port", str(server.https_port), "--ca", str(server.ca), *args],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def test_x25519mlkem768_negotiated(self, server):
        r = self._probe(server, "--sni", "a.test", "--path", "/index.html")
        assert r["group"] == "X25519MLKEM768", r
        assert r["protocol"] == "TLSv1_3" and r["status"] == "HTTP/1.1 200 OK", r

    def test_pq_with_rsa_certificate_and_alpn(self, server):
        r = self._probe(server, "--sni", "b.test", "--alpn", "http/1.1", "--path", "/index.html")
        assert r["group"] == "X25519MLKEM768" and r["alpn"] == "http/1.1" and r["status"] == "HTTP/1.1 200 OK", r

    def test_classic_clients_still_get_x25519(self, server):
        s = openssl_s_client("a.test", server.https_port, args=("-groups", "X25519"))
        assert s.handshake_ok and re.search(r"Server Temp Key: X25519", s.stdout), s.stdout[-1500:]


class TestStatusPage:
    def test_server_status_over_tls(self, server):
        # mod_status served on a TLS connection, listing the request it is answering.
        r = get(server, "a.test", "/server-status?auto")
        assert r.status == 200 and "BusyWorkers:" in r.text
        r = get(server, "a.test", "/server-status")
        assert r.status == 200 and "GET /server-status HTTP/1.1" in r.text


class TestTlsRestarts:
    def test_ten_graceful_restarts_with_tls_leak_nothing(self, server):
        def parent_stats():
            st = server.process_stats()
            return st.threads[st.parent], st.fds[st.parent]

        assert get(server, "a.test", "/index.html").status == 200
        before = parent_stats()
        for _ in range(10):
            server.graceful()
            assert get(server, "a.test", "/index.html").status == 200
        assert parent_stats() == before
        # No child died on the way.
        assert "exit signal" not in server.read_log()
