"""OCSP stapling by the module (issue #6: MDStapling, MDStapleOthers): a test CA whose
certificates name an OCSP responder on 127.0.0.1; responses are fetched by the watchdog task,
kept in md/ocsp/, stapled by the TLS filter (and by mod_ssl through the same httpd hooks),
refreshed before they expire, and a revocation shows in the next staple.

The responder is a small HTTP server built on `cryptography`'s OCSP builder, bound to
127.0.0.1: `openssl ocsp -port` (OpenSSL 3.0) takes only a port number and listens on every
interface. Clients are real: `openssl s_client -status` shows the staple and `curl
--cert-status` verifies it (signature by the CA's delegated responder, status, freshness)."""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness import curl, openssl_s_client
from harness.ports import free_port

#: Lifetime of each response (nextUpdate - thisUpdate); with MDStaplingRenewWindow 50% the
#: module fetches a new one every ~10 s.
RESPONSE_LIFE = datetime.timedelta(seconds=20)

DOWN_RE = r"OCSP stapling: no response for CN=(stapled|other)\.test \((stapled\.test|other)\): responder http://127\.0\.0\.1:\d+/: .*[Cc]onnection refused"
REVOKED_RE = r"OCSP stapling: the certificate CN=stapled\.test \(stapled\.test\) is REVOKED"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _pem(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.PEM)


def _key_pem(k) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


class Pki:
    """A CA, its delegated OCSP responder certificate (id-kp-OCSPSigning) and leaf
    certificates whose AIA names the responder URL."""

    def __init__(self, d: Path, url: str):
        self.dir = d
        self.url = url
        d.mkdir(parents=True, exist_ok=True)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stapling Test CA")])
        self.ca = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(days=1))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_path = d / "ca.pem"
        self.ca_path.write_bytes(_pem(self.ca))
        self.responder_key = ec.generate_private_key(ec.SECP256R1())
        self.responder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test OCSP Responder")]))
            .issuer_name(self.ca.subject)
            .public_key(self.responder_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(days=1))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.leaves: dict[int, x509.Certificate] = {}

    def issue(self, name: str) -> tuple[Path, Path, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(days=1))
            .not_valid_after(_now() + datetime.timedelta(days=10))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(self.url))]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.leaves[cert.serial_number] = cert
        chain, keyf = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        chain.write_bytes(_pem(cert) + _pem(self.ca))
        keyf.write_bytes(_key_pem(key))
        keyf.chmod(0o600)
        return chain, keyf, cert


class Responder:
    """An OCSP responder on 127.0.0.1:port: good for every leaf of the PKI unless revoked."""

    def __init__(self, pki: Pki, port: int):
        self.pki, self.port = pki, port
        self.revoked: set[int] = set()
        self.requests = 0
        self.httpd: ThreadingHTTPServer | None = None

    def answer(self, der: bytes) -> bytes:
        req = ocsp.load_der_ocsp_request(der)
        self.requests += 1
        cert = self.pki.leaves.get(req.serial_number)
        if cert is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
        now = _now()
        revoked = req.serial_number in self.revoked
        b = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=self.pki.ca, algorithm=req.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
            this_update=now, next_update=now + RESPONSE_LIFE,
            revocation_time=now - datetime.timedelta(seconds=5) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        ).responder_id(ocsp.OCSPResponderEncoding.NAME, self.pki.responder
        ).certificates([self.pki.responder])
        return b.sign(self.pki.responder_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def start(self) -> "Responder":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                out = outer.answer(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


def staple(port: int, name: str, ca: Path):
    r = openssl_s_client(name, port, args=("-status", "-CAfile", str(ca)))
    assert r.handshake_ok, r.output[-2000:]
    return r


def wait_staple(port: int, name: str, ca: Path, want: str, timeout: float = 30.0):
    """Polls until the staple for `name` says `Cert Status: <want>`."""
    deadline = time.monotonic() + timeout
    while True:
        r = staple(port, name, ca)
        if f"Cert Status: {want}" in r.stdout:
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"no '{want}' staple for {name} within {timeout}s:\n{r.stdout[-3000:]}")
        time.sleep(0.5)


def store_file(root: Path, group: str, cert: x509.Certificate) -> Path:
    der = cert.public_bytes(serialization.Encoding.DER)
    return root / "md" / "ocsp" / group / f"ocsp-{hashlib.sha1(der).hexdigest()}.json"


def cert_status_ok(port: int, name: str, ca: Path):
    """curl --cert-status: curl (OpenSSL) verifies the stapled response."""
    return curl(f"https://{name}:{port}/", "--cert-status", cacert=ca, resolve=True)


class TestStapling:
    """The TLS filter: a managed domain with a static certificate (MDStapling on) and a plain
    TLS host (MDStapleOthers); responder down at start, then up, then a revocation."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def env(cls, httpd_factory):
        s = httpd_factory(log_levels={"bastion": "info"})
        ocsp_port = free_port()
        pki = Pki(s.root / "conf" / "pki", f"http://127.0.0.1:{ocsp_port}/")
        md_chain, md_key, md_cert = pki.issue("stapled.test")
        other_chain, other_key, other_cert = pki.issue("other.test")
        https = s.port("https")
        # MDMessageCmd runs in the watchdog child, as User: it writes under logs/.
        cls.messages = s.root / "logs" / "messages.txt"
        message = s.write_file("message.sh", f'#!/bin/sh\necho "$@" >> "{cls.messages}"\n',
                               mode=0o755, base=s.root / "conf")
        (s.root / "logs").chmod(0o777)
        s.add_conf(f"""
Listen 127.0.0.1:{https}
TLSEngine 127.0.0.1:{https}
MDMessageCmd {message}
MDStapling on
MDStaplingRenewWindow 50%
<MDomain stapled.test>
  MDCertificateFile {md_chain}
  MDCertificateKeyFile {md_key}
</MDomain>
<Location /md-status>
  SetHandler md-status
</Location>
<VirtualHost 127.0.0.1:{https}>
  ServerName stapled.test
</VirtualHost>
<VirtualHost 127.0.0.1:{https}>
  ServerName other.test
  TLSCertificate {other_chain} {other_key}
</VirtualHost>
""")
        # Failed fetches while the responder is down (and while it is started) are warnings.
        s.log_allow(DOWN_RE, persistent=True)
        cls.s, cls.pki, cls.https = s, pki, https
        cls.md_cert, cls.other_cert = md_cert, other_cert
        cls.responder = Responder(pki, ocsp_port)
        yield
        cls.responder.stop()

    def test_01_responder_down_at_start(self):
        s = self.s
        s.start()
        s.wait_for_log(DOWN_RE, timeout=15)
        r = staple(self.https, "stapled.test", self.pki.ca_path)
        assert "OCSP response: no response sent" in r.stdout, r.stdout[-2000:]
        assert r.verify_code == 0
        # A client that requires a staple refuses; one that does not is served.
        assert cert_status_ok(self.https, "stapled.test", self.pki.ca_path).returncode != 0
        assert curl(f"https://stapled.test:{self.https}/", cacert=self.pki.ca_path,
                    resolve=True).status == 200
        # The failure is recorded for the certificate in the store.
        f = store_file(s.root, "stapled.test", self.md_cert)
        st = json.loads(f.read_text())
        assert st["errors"] >= 1 and "refused" in st["error"].lower(), st
        assert "response" not in st
        # MDMessageCmd ocsp-errored, for the managed domain only, at most once an hour.
        s.wait_for_log(r"OCSP stapling: no response for CN=stapled\.test .*2 failures", timeout=20)
        time.sleep(0.5)
        assert self.messages.read_text().splitlines() == ["ocsp-errored stapled.test"]

    def test_02_good_response_stapled_and_verified(self):
        s, ca = self.s, self.pki.ca_path
        self.responder.start()
        # The watchdog retries with a backoff of 5 s, 10 s, ...
        s.wait_for_log(r"OCSP stapling: response for CN=stapled\.test \(stapled\.test\) from "
                       r"http://127\.0\.0\.1:\d+/: good", timeout=40)
        s.wait_for_log(r"OCSP stapling: response for CN=other\.test \(other\) from .*: good", timeout=40)
        r = wait_staple(self.https, "stapled.test", ca, "good")
        assert "OCSP Response Status: successful" in r.stdout
        assert "Responder Id: CN = Test OCSP Responder" in r.stdout, r.stdout[-3000:]
        wait_staple(self.https, "other.test", ca, "good")
        for name in ("stapled.test", "other.test"):
            res = cert_status_ok(self.https, name, ca)
            assert res.returncode == 0 and res.status == 200, res.stderr
        # Store files, mod_md's layout: ocsp/<md>/ and ocsp/other/, readable by the children.
        for group, cert in (("stapled.test", self.md_cert), ("other", self.other_cert)):
            f = store_file(s.root, group, cert)
            st = json.loads(f.read_text())
            assert st["status"] == "good" and st["errors"] == 0, st
            assert st["url"] == self.pki.url
            assert f.stat().st_mode & 0o777 == 0o644
            der = ocsp.load_der_ocsp_response(
                __import__("base64").urlsafe_b64decode(st["response"] + "=" * (-len(st["response"]) % 4)))
            assert der.certificate_status == ocsp.OCSPCertStatus.GOOD
            assert der.serial_number == cert.serial_number
        one = curl(s.url("/md-status/stapled.test")).json()
        assert one["stapling"] is True, one
        deadline = time.monotonic() + 5
        while "ocsp-renewed stapled.test" not in self.messages.read_text():
            assert time.monotonic() < deadline, self.messages.read_text()
            time.sleep(0.2)

    def test_03_refreshed_before_expiry_then_revoked(self):
        s, ca = self.s, self.pki.ca_path
        f = store_file(s.root, "stapled.test", self.md_cert)
        good = re.compile(r"OCSP stapling: response for CN=stapled\.test \(stapled\.test\) .*: good")
        # Responses live 20 s; with a 50% renew window a new one is fetched after ~10 s.
        deadline = time.monotonic() + 30
        while sum(1 for line in s.log_lines(0) if good.search(line)) < 2:
            assert time.monotonic() < deadline, "no refresh within 30 s"
            time.sleep(0.5)
        assert json.loads(f.read_text())["status"] == "good"
        wait_staple(self.https, "stapled.test", ca, "good")
        s.log_allow(REVOKED_RE)
        self.responder.revoked.add(self.md_cert.serial_number)
        s.wait_for_log(REVOKED_RE, timeout=30)
        r = wait_staple(self.https, "stapled.test", ca, "revoked")
        assert "Revocation Reason: keyCompromise" in r.stdout, r.stdout[-3000:]
        res = cert_status_ok(self.https, "stapled.test", ca)
        assert res.returncode != 0 and "revocation reason: keycompromise" in res.stderr.lower(), res.stderr
        # The other certificate is still good.
        assert cert_status_ok(self.https, "other.test", ca).returncode == 0
        assert json.loads(f.read_text())["status"] == "revoked"
        # Several responses, one message a day.
        assert self.messages.read_text().splitlines() == [
            "ocsp-errored stapled.test", "ocsp-renewed stapled.test"], self.messages.read_text()


class TestModSsl:
    """mod_ssl (SSLUseStapling on) asks the same hooks: our responses are stapled there too."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def env(cls, httpd_factory):
        s = httpd_factory(log_levels={"bastion": "info"}, extra_modules=("ssl",))
        ocsp_port = free_port()
        pki = Pki(s.root / "conf" / "pki", f"http://127.0.0.1:{ocsp_port}/")
        chain, key, cert = pki.issue("modssl.test")
        https = s.port("https")
        s.add_conf(f"""
Listen 127.0.0.1:{https}
MDStapling on
SSLStaplingCache shmcb:{s.root}/logs/ssl_stapling(32768)
<VirtualHost 127.0.0.1:{https}>
  ServerName modssl.test
  SSLEngine on
  SSLUseStapling on
  SSLCertificateFile {chain}
  SSLCertificateKeyFile {key}
</VirtualHost>
""")
        cls.s, cls.pki, cls.https, cls.cert = s, pki, https, cert
        cls.responder = Responder(pki, ocsp_port).start()
        yield
        cls.responder.stop()

    def test_mod_ssl_staples_our_response(self):
        s, ca = self.s, self.pki.ca_path
        s.start()
        s.wait_for_log(r"OCSP stapling: response for CN=modssl\.test \(other\) from .*: good", timeout=20)
        # The responder goes away before the first handshake: mod_ssl's own stapling (which
        # fetches on a handshake) cannot have fetched what the client is given.
        self.responder.stop()
        r = wait_staple(self.https, "modssl.test", ca, "good")
        assert "Responder Id: CN = Test OCSP Responder" in r.stdout
        res = cert_status_ok(self.https, "modssl.test", ca)
        assert res.returncode == 0 and res.status == 200, res.stderr
        assert store_file(s.root, "other", self.cert).exists()


class TestConfig:
    @pytest.mark.parametrize("snippet,expect", [
        ("MDStaplingRenewWindow soon", r"line \d+ of \S+httpd\.conf:\s+MDStaplingRenewWindow: expected"),
        ("MDStaplingKeepResponse forever", r"line \d+ of \S+httpd\.conf:\s+MDStaplingKeepResponse: expected a duration"),
        ("<MDomain k.test>\n  MDStaplingKeepResponse 2d\n</MDomain>",
         r"MDStaplingKeepResponse is a global setting"),
        ("<VirtualHost *:80>\n  MDStapling on\n</VirtualHost>", r"MDStapling"),
    ])
    def test_bad_stapling_configuration_fails_configtest(self, httpd_factory, snippet, expect):
        s = httpd_factory(name=hashlib.sha1(snippet.encode()).hexdigest()[:8])
        s.add_conf(snippet)
        rc, out = s.configtest()
        assert rc != 0 and re.search(expect, out), out

    def test_stapling_settings_accepted(self, httpd_factory):
        s = httpd_factory(name="ok")
        s.add_conf("MDStapling on\nMDStapleOthers off\nMDStaplingRenewWindow 2h\n"
                   "MDStaplingKeepResponse 3d\n")
        rc, out = s.configtest()
        assert rc == 0, out
