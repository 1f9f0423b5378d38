"""Encrypted FastCGI (issue #5): the encrypt-script handler in front of a real FastCGI
application (tests/apps/fcgi_store.py, TCP and Unix socket), with our key server in role both
and a real memcached. Stored bytes are checked to be ciphertext and decrypted independently
with Python's cryptography and the key fetched from the key server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from harness import curl
from harness.fcgi import FcgiApp, KeyServer, Memcached, menc_decrypt, menc_header

MODULE_PW = "module password 1"
ALICE_PW = "alice-password"
BOB_PW = "bob-password-2"


def put(server, path, data, host="ctr.test", **kw):
    return curl(server.url(path), data=data, method="PUT", headers={"Host": host, **kw.pop("headers", {})},
                timeout=60, **kw)


def get(server, path, host="ctr.test", *args, **kw):
    return curl(server.url(path), *args, headers={"Host": host, **kw.pop("headers", {})}, timeout=60, **kw)


def base_conf(s, ks, mc, app, sock_app, *, password=MODULE_PW, extra=""):
    port = s.http_port
    htpasswd = s.root / "conf" / "users"
    subprocess.run(["htpasswd", "-cbB", str(htpasswd), "alice", ALICE_PW], check=True, capture_output=True)
    subprocess.run(["htpasswd", "-bB", str(htpasswd), "bob", BOB_PW], check=True, capture_output=True)
    return f"""
FastCgiExternalServer {s.htdocs}/store {app.address_args} -masterkeyserver {ks.url} -datakeyserver {ks.url} -pass-header X-Pass-Me
FastCgiExternalServer {s.htdocs}/slow {app.address_args} -masterkeyserver {ks.url} -datakeyserver {ks.url} -idle-timeout 1
FastCgiExternalServer {s.htdocs}/sock {sock_app.address_args} -masterkeyserver {ks.url} -datakeyserver 127.0.0.1:{ks.port}
FastCgiMemcachedServer {mc.address}
FastCgiUserName module
FastCgiPassword "{password}"
FastCgiKeyServerCA {ks.ca_path}
FastCgiLogpath logs/keys.log
{extra}
<VirtualHost *:{port}>
  ServerName ctr.test
  FastCgiCipher aes-256-ctr
</VirtualHost>
<VirtualHost *:{port}>
  ServerName gcm.test
  FastCgiCipher aes-256-gcm
</VirtualHost>
<VirtualHost *:{port}>
  ServerName plain.test
  FastCgiEncrypt Off
  FastCgiDecrypt Off
</VirtualHost>
<VirtualHost *:{port}>
  ServerName users.test
  FastCgiCipher aes-256-gcm
  FastCgiEncryptKeyScope user
  <Location /store>
    AuthType Basic
    AuthName store
    AuthBasicProvider file
    AuthUserFile {htpasswd}
    Require valid-user
  </Location>
</VirtualHost>
<VirtualHost *:{port}>
  ServerName tenant.test
  FastCgiEncryptKeyScope header X-Tenant
</VirtualHost>
"""


@pytest.fixture(scope="class")
def parts(httpd_factory):
    s = httpd_factory()
    s.add_modules("auth_basic", "authn_file", "authz_user")
    s.set_log_level("bastion", "debug")
    ks = KeyServer(s.root / "keyserver")
    ks.add_user("module", MODULE_PW)
    ks.start()
    mc = Memcached().start()
    app = FcgiApp(s.root / "store-tcp").start()
    sock_app = FcgiApp(s.root / "store-unix", unix_socket=s.root / "run" / "app.sock").start()
    yield s, ks, mc, app, sock_app
    s.stop()
    for p in (app, sock_app, mc, ks):
        p.stop()


class TestRoundTrip:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, parts):
        s, ks, mc, app, sock_app = parts
        s.add_conf(base_conf(s, ks, mc, app, sock_app))
        s.start()
        yield s

    @pytest.mark.parametrize("host,cipher", [("ctr.test", "aes-256-ctr"), ("gcm.test", "aes-256-gcm")])
    def test_seed_check_both_ciphers(self, parts, host, cipher):
        """The seed's own check: PUT teststring, then GET; the app holds ciphertext that
        Python decrypts with the key from the key server."""
        s, ks, mc, app, _ = parts
        name = f"seed-{cipher}"
        r = put(s, f"/store/{name}", b"teststring", host=host)
        assert r.status == 201, r
        stored = app.stored(name)
        assert b"teststring" not in stored
        h = menc_header(stored)
        assert h["cipher"] == cipher and h["client"] == "module" and h["key_version"] == 1
        version, dk = ks.data_key("module", h["key_version"])
        assert menc_decrypt(stored, dk) == b"teststring"
        # What the application was told: the ciphertext's length, not the plaintext's.
        params = app.last_params()
        assert int(params["CONTENT_LENGTH"]) == len(stored)
        assert params["SCRIPT_NAME"] == "/store" and params["PATH_INFO"] == f"/{name}"
        r = get(s, f"/store/{name}", host)
        assert r.status == 200 and r.body == b"teststring"
        assert r.headers["content-length"] == "10"

    @pytest.mark.parametrize("size", [0, 1, 1024, 65535, 65536, 65537, 3 * 65536, 1 << 20, 10 << 20])
    @pytest.mark.parametrize("host", ["ctr.test", "gcm.test"])
    def test_sizes(self, parts, host, size):
        s, ks, _, app, _ = parts
        data = os.urandom(size)
        name = f"size-{host}-{size}"
        assert put(s, f"/store/{name}", data, host=host).status == 201
        stored = app.stored(name)
        _, dk = ks.data_key("module", menc_header(stored)["key_version"])
        assert menc_decrypt(stored, dk) == data
        r = get(s, f"/store/{name}", host)
        assert r.status == 200 and len(r.body) == size and r.body == data

    @pytest.mark.parametrize("host", ["ctr.test", "gcm.test"])
    def test_100_mib_streams_with_bounded_memory(self, parts, host, tmp_path):
        """100 MiB up and down: byte-exact, and no child grows by more than a few MiB."""
        s, _, _, app, _ = parts
        src = tmp_path / "src"
        with open(src, "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1 << 20))
        before = s.rss_bytes()
        r = curl(s.url("/store/big"), "-T", str(src), headers={"Host": host}, timeout=120)
        assert r.status == 201
        assert app.stored("big")[:4] == b"MENC"
        r = curl(s.url("/store/big"), headers={"Host": host}, timeout=120)
        assert r.status == 200 and len(r.body) == 100 << 20
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(src.read_bytes()).digest()
        after = s.rss_bytes()
        growth = max((after[p] - before.get(p, after[p])) for p in after)
        assert growth < 16 << 20, f"a child grew by {growth >> 20} MiB"
        (app.dir / "big").unlink()

    def test_unix_socket_application(self, parts):
        s, ks, _, _, sock_app = parts
        data = os.urandom(200_000)
        assert put(s, "/sock/obj", data, host="gcm.test").status == 201
        stored = sock_app.stored("obj")
        assert menc_decrypt(stored, ks.data_key("module", 1)[1]) == data
        assert get(s, "/sock/obj", "gcm.test").body == data

    @pytest.mark.parametrize("host", ["ctr.test", "gcm.test"])
    def test_chunked_upload(self, parts, host, tmp_path):
        s, ks, _, app, _ = parts
        data = os.urandom(300_000)
        f = tmp_path / "body"
        f.write_bytes(data)
        r = curl(s.url("/store/chunked"), "-T", str(f), "-H", "Transfer-Encoding: chunked",
                 headers={"Host": host}, timeout=30)
        assert r.status == 201
        assert "CONTENT_LENGTH" not in app.last_params() or app.last_params()["CONTENT_LENGTH"] == ""
        stored = app.stored("chunked")
        assert menc_decrypt(stored, ks.data_key("module", 1)[1]) == data
        assert get(s, "/store/chunked", host).body == data

    @pytest.mark.parametrize("host", ["ctr.test", "gcm.test"])
    def test_ranges(self, parts, host):
        s, _, _, app, _ = parts
        data = os.urandom(200_000)
        put(s, "/store/ranged", data, host=host)
        for spec, lo, hi in [("0-0", 0, 1), ("10-19", 10, 20), ("65530-65545", 65530, 65546),
                             ("150000-", 150000, 200000), ("-1000", 199000, 200000),
                             ("199999-300000", 199999, 200000)]:
            r = get(s, "/store/ranged", host, headers={"Range": f"bytes={spec}"})
            assert r.status == 206, (spec, r)
            assert r.body == data[lo:hi], spec
            assert r.headers["content-range"] == f"bytes {lo}-{hi - 1}/200000"
        # The application never saw a Range header: it cannot serve a part of an object.
        assert "HTTP_RANGE" not in app.last_params()
        r = get(s, "/store/ranged", host, headers={"Range": "bytes=200000-"})
        assert r.status == 416 and r.headers["content-range"] == "bytes */200000"
        r = get(s, "/store/ranged", host, headers={"Range": "bytes=0-1,5-6"})
        assert r.status == 200 and r.body == data

    def test_head_and_missing(self, parts):
        s, _, _, _, _ = parts
        put(s, "/store/h", b"x" * 5000, host="gcm.test")
        r = curl(s.url("/store/h"), "-I", headers={"Host": "gcm.test"})
        assert r.status == 200
        r = get(s, "/store/does-not-exist", "gcm.test")
        assert r.status == 404

    def test_encryption_off_passes_plaintext(self, parts):
        s, _, _, app, _ = parts
        put(s, "/store/plain", b"hello plain", host="plain.test")
        assert app.stored("plain") == b"hello plain"
        assert get(s, "/store/plain", "plain.test").body == b"hello plain"

    def test_keys_per_user(self, parts):
        """Scope `user`: alice and bob get different data keys; bob cannot read alice's object
        even when the application hands it out."""
        s, ks, _, app, _ = parts
        ks.users.setdefault("module", MODULE_PW)
        r = put(s, "/store/alice-doc", b"alice's secret", host="users.test", )
        assert r.status == 401
        r = curl(s.url("/store/alice-doc"), "-u", f"alice:{ALICE_PW}", data=b"alice's secret",
                 method="PUT", headers={"Host": "users.test"})
        assert r.status == 201
        r = curl(s.url("/store/bob-doc"), "-u", f"bob:{BOB_PW}", data=b"bob's secret",
                 method="PUT", headers={"Host": "users.test"})
        assert r.status == 201
        ha, hb = menc_header(app.stored("alice-doc")), menc_header(app.stored("bob-doc"))
        assert ha["client"] == "alice" and hb["client"] == "bob"
        ka, kb = ks.data_key("alice")[1], ks.data_key("bob")[1]
        assert ka != kb
        assert menc_decrypt(app.stored("alice-doc"), ka) == b"alice's secret"
        assert menc_decrypt(app.stored("bob-doc"), kb) == b"bob's secret"
        r = curl(s.url("/store/alice-doc"), "-u", f"alice:{ALICE_PW}", headers={"Host": "users.test"})
        assert r.status == 200 and r.body == b"alice's secret"
        s.log_allow(r"encrypted for key scope \"alice\", not the request's \"bob\"")
        r = curl(s.url("/store/alice-doc"), "-u", f"bob:{BOB_PW}", headers={"Host": "users.test"})
        assert r.status == 403 and b"alice's secret" not in r.body

    def test_header_scope(self, parts):
        s, ks, _, app, _ = parts
        r = put(s, "/store/t1", b"tenant data", host="tenant.test", headers={"X-Tenant": "acme"})
        assert r.status == 201
        assert menc_header(app.stored("t1"))["client"] == "acme"
        s.log_allow(r"has no key scope \(request header X-Tenant is not set\)")
        r = put(s, "/store/t2", b"tenant data", host="tenant.test")
        assert r.status == 403
        assert not (app.dir / "t2").exists()

    def test_pass_header_and_hidden_headers(self, parts):
        s, _, _, app, _ = parts
        put(s, "/store/ph", b"abc", host="ctr.test", headers={"X-Pass-Me": "yes", "Content-MD5": "bogus"})
        p = app.last_params()
        assert p.get("HTTP_X_PASS_ME") == "yes"
        assert "HTTP_CONTENT_MD5" not in p

    def test_tampered_gcm_object_is_detected(self, parts):
        s, _, _, app, _ = parts
        data = os.urandom(3 * 65536 + 100)
        put(s, "/store/tamper", data, host="gcm.test")
        p = app.dir / "tamper"
        b = bytearray(p.read_bytes())
        b[-50] ^= 1  # in the last segment: the first segments are sent, then the cut
        p.write_bytes(bytes(b))
        s.log_allow(r"/store/tamper: the object failed verification")
        r = get(s, "/store/tamper", "gcm.test")
        assert r.returncode != 0 or r.status != 200 or r.body != data
        assert len(r.body) < len(data)
        assert data[-100:] not in r.body
        s.wait_for_log(r"/store/tamper: the object failed verification")
        # Tampering with the first segment: nothing is released, 502.
        b = bytearray(p.read_bytes())
        b[200] ^= 1
        p.write_bytes(bytes(b))
        r = get(s, "/store/tamper", "gcm.test")
        assert r.status == 502 and data[:100] not in r.body

    def test_truncated_gcm_object_is_detected(self, parts):
        s, _, _, app, _ = parts
        data = os.urandom(2 * 65536 + 10)
        put(s, "/store/trunc", data, host="gcm.test")
        p = app.dir / "trunc"
        p.write_bytes(p.read_bytes()[:-(10 + 16)])  # drop the final segment
        s.log_allow(r"/store/trunc: the object failed verification")
        r = get(s, "/store/trunc", "gcm.test")
        assert r.body != data and len(r.body) <= 2 * 65536
        assert r.returncode != 0 or r.status == 502

    def test_application_dies_mid_response(self, parts):
        s, _, _, _, _ = parts
        s.log_allow(r"FastCGI application .* closed the connection before the end of the response")
        r = get(s, "/store/__die_midway", "plain.test")
        # A cut connection: curl reports the missing bytes, never a complete 200.
        assert r.returncode != 0, r
        assert len(r.body) < 1_000_000

    def test_application_stderr_goes_to_error_log(self, parts):
        s, _, _, _, _ = parts
        s.log_allow(r"\(stderr\)")
        r = get(s, "/store/__stderr", "plain.test")
        assert r.status == 200
        s.wait_for_log(r"FastCGI application 127\.0\.0\.1:\d+ \(stderr\): ")

    def test_no_plaintext_key_in_memcached(self, parts):
        s, ks, mc, _, _ = parts
        put(s, "/store/mc", b"x", host="ctr.test")
        items = mc.items()
        assert any(k.startswith("menc2:dk:module:") for k in items), items.keys()
        secrets = [ks.data_key(c)[1] for c in ("module", "alice", "bob")]
        masters = [bytes.fromhex(h) for h in ks.master_keys_hex()]
        for k, v in items.items():
            for sec in secrets + masters:
                for form in (sec, sec.hex().encode(), __import__("base64").b64encode(sec)):
                    assert form not in v, f"plaintext key material in memcached under {k}"

    def test_audit_log(self, parts):
        s, ks, _, _, _ = parts
        put(s, "/store/audited", b"audit me", host="gcm.test")
        get(s, "/store/audited", "gcm.test")
        lines = [json.loads(l) for l in (s.logs_dir / "keys.log").read_text().splitlines()]
        ops = [(l["op"], l["uri"], l["result"]) for l in lines]
        assert ("encrypt", "/store/audited", "ok") in ops and ("decrypt", "/store/audited", "ok") in ops
        for l in lines:
            assert set(l) >= {"time", "op", "client_ip", "uri", "key_scope", "key_version", "result"}
        text = (s.logs_dir / "keys.log").read_text()
        for c in ("module", "alice", "bob"):
            dk = ks.data_key(c)[1]
            assert dk.hex() not in text and __import__("base64").b64encode(dk).decode() not in text
        assert oct((s.logs_dir / "keys.log").stat().st_mode & 0o777) == "0o640"

class TestFailures:
    """Key servers, memcached and the application going away."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, parts):
        s, ks, mc, app, sock_app = parts
        s.add_conf(base_conf(s, ks, mc, app, sock_app, extra="FastCgiKeyCacheTTL 1"))
        s.start()
        yield s

    def test_memcached_down_keeps_serving(self, parts):
        s, ks, mc, app, _ = parts
        assert put(s, "/store/m1", b"one", host="gcm.test").status == 201
        mc.stop()
        s.log_allow(r"memcached")
        for i in range(5):
            assert put(s, f"/store/m{i + 2}", b"more", host="gcm.test").status == 201
            assert get(s, "/store/m1", "gcm.test").body == b"one"
        mc.start()

    def test_key_servers_down_gives_503_and_nothing_reaches_the_app(self, parts):
        s, ks, mc, app, _ = parts
        assert put(s, "/store/k1", b"one", host="ctr.test").status == 201
        ks.stop()
        time.sleep(1.5)  # the process cache (TTL 1 s) is empty now
        before = app.requests()
        s.log_allow(r"no data key to (encrypt|decrypt)", r"key server unavailable", r"memcached")
        try:
            r = put(s, "/store/k2", b"secret while down", host="ctr.test")
            assert r.status == 503 and r.headers.get("retry-after") == "30"
            assert app.requests() == before
            assert not (app.dir / "k2").exists()
            r = get(s, "/store/k1", "ctr.test")
            assert r.status == 503 and b"one" not in r.body
        finally:
            ks.start()
        assert put(s, "/store/k3", b"back", host="ctr.test").status == 201

    def test_application_down_gives_503(self, parts):
        s, _, _, app, _ = parts
        app.stop()
        s.log_allow(r"FastCGI application 127\.0\.0\.1:\d+ for .* is unreachable")
        try:
            r = put(s, "/store/x", b"data", host="ctr.test")
            assert r.status == 503
        finally:
            app.start()

    def test_idle_timeout_gives_504(self, parts):
        s, _, _, _, _ = parts
        s.log_allow(r"did not answer within 1s \(-idle-timeout\)")
        t = time.monotonic()
        r = get(s, "/slow/__slow", "plain.test")
        assert r.status == 504
        assert time.monotonic() - t < 4

    def test_key_rotation(self, parts):
        """New objects use the newest data key once the cached "current version" expires
        (FastCgiKeyCacheTTL, 1 s here); old objects still decrypt."""
        s, ks, _, app, _ = parts
        put(s, "/store/before-rotation", b"old object", host="ctr.test")
        v1 = menc_header(app.stored("before-rotation"))["key_version"]
        ks.rotate_data("module")
        time.sleep(1.5)
        put(s, "/store/after-rotation", b"new object", host="ctr.test")
        assert menc_header(app.stored("after-rotation"))["key_version"] == v1 + 1
        assert get(s, "/store/before-rotation", "ctr.test").body == b"old object"
        assert get(s, "/store/after-rotation", "ctr.test").body == b"new object"


class TestWrongPassword:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, parts):
        s, ks, mc, app, sock_app = parts
        s.add_conf(base_conf(s, ks, mc, app, sock_app, password="not the password"))
        s.start()
        yield s

    def test_wrong_password_503_and_clear_log(self, parts):
        s, _, _, app, _ = parts
        s.log_allow(r"key server rejected the credentials of \"module\"")
        before = app.requests()
        r = put(s, "/store/wp", b"data", host="ctr.test")
        assert r.status == 503
        assert app.requests() == before
        s.wait_for_log(r"key server rejected the credentials of \"module\"")
        text = s.read_log()
        assert "not the password" not in text


class TestConfigErrors:
    @pytest.mark.parametrize("snippet,expect", [
        ("FastCgiExternalServer /x -host 127.0.0.1:9",
         r"no -masterkeyserver URL and -datakeyserver URL"),
        ("FastCgiExternalServer /x -host nope", r"FastCgiExternalServer: -host \"nope\": expected host:port"),
        ("FastCgiExternalServer /x -host h:1 -masterkeyserver http://k", r"HTTPS only"),
        ("FastCgiCipher aes-128-cbc", r"FastCgiCipher: \"aes-128-cbc\": expected aes-256-ctr or aes-256-gcm"),
        ("FastCgiEncryptKeyScope ip", r"expected FastCgiEncryptKeyScope account\|user\|header NAME\|env NAME"),
        ("FastCgiMemcachedServer localhost", r"expected host:port or none"),
        ("FastCgiExternalServer /x -host h:1 -masterkeyserver k:1 -datakeyserver k:1\n"
         "FastCgiUserName m\nFastCgiPassword p", r"needs FastCgiKeyServerCA"),
    ])
    def test_bad_directive_fails_configtest(self, httpd_factory, snippet, expect):
        import re
        s = httpd_factory(name=hashlib.sha1(snippet.encode()).hexdigest()[:8])
        s.add_conf(snippet)
        rc, out = s.configtest()
        assert rc != 0 and re.search(expect, out), out
