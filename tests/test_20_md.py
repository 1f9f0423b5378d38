"""Managed domains (issue #6) against Debian's pebble with pebble-challtestsrv as DNS: the
fallback certificate and 503 before issuance, issuance through http-01 and tls-alpn-01 by the
watchdog task, the store layout and permissions, MDNotifyCmd/MDMessageCmd, activation at the
next restart, and configuration errors."""

from __future__ import annotations

import json
import re
import stat
import time

import pytest
from cryptography import x509

from harness import curl
from harness.pebble import Pebble, md_conf, served_cert

@pytest.mark.parametrize("challenge", ["http-01", "tls-alpn-01"], scope="class")
class TestIssue:
    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory, challenge):
        s = httpd_factory(name=challenge)
        s.set_log_level("bastion", "debug")
        p = Pebble(s.root / "pebble", http_port=s.http_port, tls_port=s.port("https")).start()
        names = ["md-a.test", "www.md-a.test"]
        # A mod_ssl host of the same domain, with no certificate lines: served by the MD too.
        s.add_modules("ssl", "status", "headers")
        # mod_ssl says so at every start before the first certificate, as with mod_md.
        s.log_allow(r"AH10085: Init: md-a\.test:443 will respond with '503 Service Unavailable'",
                    persistent=True)
        ssl_port = s.port("ssl")
        s.add_conf(md_conf(s, p, names, challenge, extra=f"""
Listen 127.0.0.1:{ssl_port}
<VirtualHost 127.0.0.1:{ssl_port}>
  ServerName {names[0]}
  SSLEngine on
</VirtualHost>
MDRequireHttps permanent
Header always set X-Served-Serial "%{{SSL_SERVER_M_SERIAL}}s"
<VirtualHost 127.0.0.1:{s.http_port}>
  ServerName 127.0.0.1
</VirtualHost>
<VirtualHost 127.0.0.1:{s.http_port}>
  ServerName {names[0]}
  ServerAlias {' '.join(names[1:])}
</VirtualHost>
<Location /server-status>
  SetHandler server-status
</Location>
"""))
        s.start()
        yield s, p, names
        s.stop()
        p.stop()

    def test_fallback_then_issue_then_restart(self, env, challenge):
        s, p, names = env
        https = s.port("https")
        # Before a certificate exists: a self-signed fallback, and 503 for every request.
        cert = served_cert(https, names[0])
        assert "Temporary Certificate" in cert.subject.rfc4514_string()
        r = curl(f"https://{names[0]}:{https}/", resolve=True, insecure=True)
        assert r.status == 503
        # MDRequireHttps does not send anyone to https before it can serve them.
        plain = f"http://{names[0]}:{s.http_port}/x?y=1"
        staged = s.root / "md" / "staging" / "md-a.test"
        r = curl(plain, resolve=True)
        # (Unless the watchdog was quicker than this test and the certificate is already staged.)
        assert r.status == 404 or (r.status == 301 and (staged / "pubcert.pem").exists()), r
        auto = curl(s.url("/server-status?auto")).text
        assert "ManagedCertificatesTotal: 1\nManagedCertificatesOK: 0\n" in auto, auto
        assert "ManagedDomain[0]Domain: md-a.test\n" in auto
        # The watchdog task orders, answers the challenge and stages the certificate.
        s.wait_for_log(r"The Managed Domain md-a\.test has been setup", timeout=90)
        staged = s.root / "md" / "staging" / "md-a.test"
        assert (staged / "pubcert.pem").exists()
        notify = s.root / "logs" / "notify.txt"
        deadline = time.monotonic() + 10
        while not (notify.exists() and "message renewed md-a.test" in notify.read_text()):
            assert time.monotonic() < deadline, "MDNotifyCmd/MDMessageCmd did not run"
            time.sleep(0.1)
        notes = notify.read_text()
        assert "notify md-a.test\n" in notes and "message renewed md-a.test\n" in notes
        # Without a restart, every child serves the new certificate within a few seconds.
        root = s.write_file("issuing-root.pem", p.issuing_root(), base=s.root / "conf")
        deadline = time.monotonic() + 15
        while True:
            r = curl(f"https://{names[0]}:{https}/", resolve=True, cacert=root)
            if r.returncode == 0 and r.status != 503:
                break
            assert time.monotonic() < deadline, f"not activated without a restart: {r}"
            time.sleep(0.5)
        time.sleep(2.5)  # each child looks for staged certificates at most every 2 s
        for _ in range(12):  # connections land on every child
            r = curl(f"https://{names[1]}:{https}/", resolve=True, cacert=root)
            assert r.returncode == 0 and r.status in (200, 404), r
        assert "Temporary Certificate" not in served_cert(https, names[0]).subject.rfc4514_string()
        # The SSL_SERVER_* variables describe the certificate served now, not the fallback.
        staged_serial = format(x509.load_pem_x509_certificate(
            (staged / "pubcert.pem").read_bytes()).serial_number, "X")
        staged_serial = staged_serial.zfill(len(staged_serial) + len(staged_serial) % 2)  # whole bytes, as mod_ssl
        for _ in range(4):
            r = curl(f"https://{names[0]}:{https}/", resolve=True, cacert=root)
            assert r.headers.get("x-served-serial") == staged_serial, r.headers
        # MDRequireHttps permanent, now that there is a certificate: plain http is redirected to
        # the https default port (301 for GET/HEAD, 308 otherwise; /.well-known/ exempt) and
        # https answers carry HSTS.
        deadline, in_a_row = time.monotonic() + 10, 0
        while in_a_row < 4:  # every child redirects once it has activated the certificate
            r = curl(plain, resolve=True)
            if r.status == 301:
                assert r.headers.get("location") == f"https://{names[0]}/x?y=1", r
                in_a_row += 1
                continue
            in_a_row = 0
            assert time.monotonic() < deadline, f"no redirect to https: {r}"
            time.sleep(0.3)
        r = curl(plain, resolve=True, method="POST", data=b"a=b")
        assert r.status == 308 and r.headers.get("location") == f"https://{names[0]}/x?y=1", r
        well_known = f"http://{names[0]}:{s.http_port}/.well-known/other"
        assert curl(well_known, resolve=True).status == 404
        r = curl(f"https://{names[0]}:{https}/", resolve=True, cacert=root)
        assert r.headers.get("strict-transport-security") == "max-age=15768000", r
        # The mod_status page has the managed domains' section.
        html = curl(s.url("/server-status")).text
        assert "<h2>Managed Certificates</h2>" in html and "<td>md-a.test</td>" in html, html
        # Status pages: md-status (all, and one with its renewal) and certificate-status.
        st = curl(s.url("/md-status")).json()
        mds = {m["name"]: m for m in st["managed-domains"]}
        assert mds["md-a.test"]["domains"] == names
        one = curl(s.url("/md-status/md-a.test")).json()
        staged_cert = x509.load_pem_x509_certificate((staged / "pubcert.pem").read_bytes())
        serial = format(staged_cert.serial_number, "X")
        assert one["renewal"]["cert"], one
        assert serial in json.dumps(one["renewal"]["cert"])
        cs = curl(f"https://{names[0]}:{https}/.httpd/certificate-status", resolve=True, cacert=root)
        assert cs.status == 200, cs
        assert serial in json.dumps(cs.json())
        # Not over plain http (here redirected to https by MDRequireHttps).
        r = curl(s.url("/.httpd/certificate-status"), headers={"Host": names[0]})
        assert r.status == 301 and r.headers["location"].startswith("https://"), r
        # The next restart promotes staging to domains/ and serves it from there.
        s.graceful()
        live = s.root / "md" / "domains" / "md-a.test"
        assert (live / "pubcert.pem").exists() and (live / "privkey.pem").exists()
        assert stat.S_IMODE((live / "privkey.pem").stat().st_mode) == 0o600
        assert stat.S_IMODE((s.root / "md" / "domains").stat().st_mode) == 0o700
        assert json.loads((live / "md.json").read_text())["domains"] == names
        for n in names:
            r = curl(f"https://{n}:{https}/", resolve=True, cacert=root)
            assert r.returncode == 0 and r.status in (200, 404), r
        one = curl(s.url("/md-status/md-a.test")).json()
        assert serial in json.dumps(one["cert"])
        auto = curl(s.url("/server-status?auto")).text
        assert "ManagedCertificatesTotal: 1\nManagedCertificatesOK: 1\n" in auto, auto
        assert "ManagedDomain[0]Status: good\n" in auto, auto
        cert = served_cert(https, names[1])
        assert format(cert.serial_number, "X") == serial
        # mod_ssl gets it through ap_ssl_add_cert_files at the restart.
        assert format(served_cert(s.port("ssl"), names[0]).serial_number, "X") == serial
        r = curl(f"https://{names[0]}:{s.port('ssl')}/", resolve=True, cacert=root)
        assert r.returncode == 0 and r.status in (200, 404), r
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(sans.get_values_for_type(x509.DNSName)) == set(names)


class TestActivationDelay:
    def test_new_certificate_waits_for_the_delay(self, httpd_factory):
        """MDActivationDelay: an issued certificate is neither activated in the children nor
        promoted at a restart before notBefore + delay."""
        s = httpd_factory(name="activation-delay")
        s.set_log_level("bastion", "info")
        p = Pebble(s.root / "pebble", http_port=s.http_port, tls_port=s.port("https")).start()
        try:
            names = ["md-d.test"]
            s.add_conf(md_conf(s, p, names, "http-01", extra="MDActivationDelay 1d\nMDRetryFailover 3"))
            s.start()
            s.wait_for_log(r"The Managed Domain md-d\.test has been setup", timeout=90)
            time.sleep(3)  # children look every 2 s
            for _ in range(4):
                assert "Temporary Certificate" in served_cert(s.port("https"), names[0]).subject.rfc4514_string()
            s.graceful()
            assert "Temporary Certificate" in served_cert(s.port("https"), names[0]).subject.rfc4514_string()
            assert (s.root / "md" / "staging" / "md-d.test" / "pubcert.pem").exists()
            assert not (s.root / "md" / "domains" / "md-d.test" / "pubcert.pem").exists()
            s.wait_for_log(r"md-d\.test: a new certificate is staged; it goes live 86400s after its notBefore",
                           timeout=10)
        finally:
            s.stop()
            p.stop()


class TestConfigErrors:
    @pytest.mark.parametrize("snippet,expect", [
        ("MDomain a.test\nMDomain b.test a.test\nMDCertificateAgreement accepted\nServerAdmin x@y.z",
         r"both contain \"a.test\""),
        ("MDomain *.w.test\nMDCertificateAgreement accepted\nServerAdmin x@y.z",
         r"wildcard names need the dns-01 challenge"),
        ("MDomain c.test\nServerAdmin x@y.z", r"MDCertificateAgreement accepted"),
        ("MDomain d.test\nMDCertificateAgreement accepted\nServerAdmin nomail",
         r"no contact email"),
        ("MDRenewWindow 200%", r"MDRenewWindow"),
        ("MDPrivateKeys RSA 512", r"MDPrivateKeys"),
        ("MDCAChallenges http-02", r"MDCAChallenges"),
        ("MDRetryFailover 0", r"MDRetryFailover.*1 or more"),
        ("MDActivationDelay soon", r"MDActivationDelay"),
        ("MDChallengeDns01Version 3", r"MDChallengeDns01Version.*expected 1 or 2"),
        ("MDMember x.test", r"inside <MDomain"),
        ("MDomain e.test\nMDCertificateAgreement accepted\nServerAdmin x@y.z\nMDMembers manual\n"
         "<VirtualHost *:80>\nServerName e.test\nServerAlias other.test\n</VirtualHost>",
         r"also answers to other\.test"),
    ])
    def test_bad_configuration_fails_configtest(self, httpd_factory, snippet, expect):
        import hashlib
        s = httpd_factory(name=hashlib.sha1(snippet.encode()).hexdigest()[:8])
        s.add_conf(snippet)
        rc, out = s.configtest()
        assert rc != 0 and re.search(expect, out), out

    def test_section_settings(self, httpd_factory):
        s = httpd_factory(name="section")
        s.add_conf("""
MDCertificateAgreement accepted
ServerAdmin x@y.z
<MDomain f.test>
  MDMember www.f.test
  MDPrivateKeys secp256r1 RSA 3072
  MDRenewWindow 10d
</MDomain>
""")
        rc, out = s.configtest()
        assert rc == 0, out
