"""The TLS filter as a consumer of httpd's SSL provider hooks (what mod_md uses): certificates
offered by another module, fallback certificates (503), tls-alpn-01 challenge answers and OCSP
stapling. A test-only provider (test-hooks build) answers from files."""

import datetime
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from harness import REPO_ROOT, curl, openssl_s_client

TEST_HOOKS_SO = REPO_ROOT / "build" / "mod_bastion-test-hooks.so"


def _copy_pair(files, dest, prefix):
    shutil.copy(files.fullchain if hasattr(files, "fullchain") else files.cert, dest / f"{prefix}.cert.pem")
    shutil.copy(files.key, dest / f"{prefix}.key.pem")


def _ocsp_response(cert_pem_path, ca):
    cert = x509.load_pem_x509_certificates(open(cert_pem_path, "rb").read())[0]
    issuer = x509.load_pem_x509_certificate(open(ca.cert_path, "rb").read())
    key = serialization.load_pem_private_key(open(ca.key_path, "rb").read(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=cert, issuer=issuer, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
        this_update=now, next_update=now + datetime.timedelta(days=1),
        revocation_time=None, revocation_reason=None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, issuer)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


class TestProviders:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, cert_authority):
        assert TEST_HOOKS_SO.exists(), f"{TEST_HOOKS_SO} is missing: run `make build-test-hooks`"
        s = httpd_factory(module_path=TEST_HOOKS_SO)
        # Children (User www-data) read challenge answers and OCSP responses, as from mod_md's store.
        prov = s.root / "provider"
        prov.mkdir(mode=0o755)
        s.env["BASTION_TEST_PROVIDER_DIR"] = str(prov)
        provided = cert_authority.issue(["provided.test"], key_type="ec")
        fallback = cert_authority.issue(["fallback.test"], key_type="ec", tag="fallback")
        own = cert_authority.issue(["own.test"], key_type="ec")
        challenge = cert_authority.issue(["own.test"], key_type="ec", tag="challenge")
        _copy_pair(provided, prov, "provided.test")
        _copy_pair(fallback, prov, "fallback.test.fallback")
        _copy_pair(challenge, prov, "challenge.own.test")
        (prov / "ocsp.der").write_bytes(_ocsp_response(own.cert, cert_authority))
        (prov / "ocsp.for").write_text(str(own.cert))
        for f in prov.iterdir():
            f.chmod(0o644)
        port = s.port("https")
        s.https_port = port
        s.ca = cert_authority.cert_path
        s.challenge_cert = challenge
        s.write_file("index.html", "hello\n")
        s.set_log_level("bastion", "debug")
        s.add_conf(f"""
Listen 127.0.0.1:{port}
TLSEngine 127.0.0.1:{port}
<VirtualHost 127.0.0.1:{port}>
  ServerName own.test
  TLSCertificate {own.cert} {own.key}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName provided.test
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
  ServerName fallback.test
</VirtualHost>
""")
        s.start()
        yield s
        s.stop()

    def test_certificate_from_provider(self, server):
        r = openssl_s_client("provided.test", server.https_port)
        assert r.handshake_ok and "CN = provided.test" in r.subject
        r = curl(f"https://provided.test:{server.https_port}/index.html", resolve=True, cacert=server.ca)
        assert r.status == 200 and r.text == "hello\n"

    def test_fallback_certificate_answers_503(self, server):
        r = openssl_s_client("fallback.test", server.https_port)
        assert r.handshake_ok and "CN = fallback.test" in r.subject
        for path in ("/", "/index.html", "/anything"):
            r = curl(f"https://fallback.test:{server.https_port}{path}", resolve=True, cacert=server.ca)
            assert r.status == 503, (path, r)

    def test_tls_alpn_01_challenge_answered(self, server):
        r = openssl_s_client("own.test", server.https_port, args=("-alpn", "acme-tls/1"),
                             input=b"GET / HTTP/1.1\r\nHost: own.test\r\n\r\n")
        assert r.handshake_ok and r.alpn == "acme-tls/1", r.stdout[-1500:]
        served = x509.load_pem_x509_certificate(r.stdout.split("Server certificate\n", 1)[1].encode())
        expected = x509.load_pem_x509_certificates(open(server.challenge_cert.cert, "rb").read())[0]
        assert served.serial_number == expected.serial_number
        # Without acme-tls/1 the host's own certificate is served.
        r2 = openssl_s_client("own.test", server.https_port, args=("-alpn", "http/1.1"))
        assert r2.handshake_ok and r2.alpn == "http/1.1"
        assert "Server certificate" in r2.stdout
        own = x509.load_pem_x509_certificate(r2.stdout.split("Server certificate\n", 1)[1].encode())
        assert own.serial_number != expected.serial_number

    def test_ocsp_response_is_stapled(self, server):
        r = openssl_s_client("own.test", server.https_port, args=("-status",))
        assert r.handshake_ok
        assert "OCSP Response Status: successful" in r.stdout, r.stdout[:2000]
        assert "Cert Status: good" in r.stdout
        server.wait_for_log(r"new OCSP response \(\d+ bytes\) for certificate 0 of own\.test", since=0)

    def test_no_staple_without_provider_response(self, server):
        r = openssl_s_client("provided.test", server.https_port, args=("-status",))
        assert r.handshake_ok and "OCSP response: no response sent" in r.stdout
