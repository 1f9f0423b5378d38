"""Managed domains (issue #6), the ACME cases beyond test_20: EC and RSA certificates on one
domain chosen by the client's signature algorithms, several managed domains in one server,
renewal when the window arrives (served without a restart), the watchdog child killed in the
middle of an order, dns-01 through MDChallengeDns01 (also for a wildcard), external account
binding, pebble rejecting half of the nonces, and a2md against a running server's store.

Pebble 2.4.0 (Debian) has neither ARI nor profiles: those decisions are unit-tested in
crates/md (renewal.rs, acme.rs) below the ACME wire."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness import REPO_ROOT, curl
from harness.pebble import Pebble, md_conf, md_vhost, notes, served_cert, wait_served

A2MD = REPO_ROOT / "target" / "release" / "a2md"


def sans(cert: x509.Certificate) -> set[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName))


def wait_for(pred, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(step)


def start_md_server(httpd_factory, name: str, pebble_kw: dict | None = None, *, names: list[str],
                    challenge: str | None = "http-01", extra: str = "", vhost: bool = True,
                    md_line: bool = True, va_http_port: int | None = None):
    s = httpd_factory(name=name)
    s.set_log_level("bastion", "debug")
    p = Pebble(s.root / "pebble", http_port=va_http_port or s.http_port, tls_port=s.port("https"),
               **(pebble_kw or {})).start()
    s.add_conf(md_conf(s, p, names, challenge, extra, vhost=vhost, md_line=md_line))
    return s, p


class TestKeyTypes:
    """MDPrivateKeys secp256r1 rsa2048: one certificate per key type, chosen per handshake."""

    names = ["mdk.test", "www.mdk.test"]

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory):
        s, p = start_md_server(httpd_factory, "keys", names=cls.names,
                               extra="MDPrivateKeys secp256r1 rsa2048")
        s.start()
        yield s, p
        s.stop()
        p.stop()

    def test_ec_and_rsa_served_by_sigalgs(self, env):
        s, p = env
        https = s.port("https")
        wait_served(s, p, https, self.names[0])
        staged = s.root / "md" / "staging" / "mdk.test"
        files = sorted(f.name for f in staged.glob("pubcert*.pem"))
        assert len(files) == 2, files
        for sigalgs, keytype in [("ECDSA+SHA256", ec.EllipticCurvePublicKey),
                                 ("rsa_pss_rsae_sha256:RSA+SHA256", rsa.RSAPublicKey)]:
            for name in self.names:
                # Verified against pebble's root and the name, several times (every child).
                cert = wait_served(s, p, https, name, sigalgs=sigalgs, settle=4)
                assert isinstance(cert.public_key(), keytype), (sigalgs, cert)
                assert sans(cert) == set(self.names)
        ec_cert = served_cert(https, self.names[0], "ECDSA+SHA256")
        rsa_cert = served_cert(https, self.names[0], "rsa_pss_rsae_sha256:RSA+SHA256")
        assert ec_cert.serial_number != rsa_cert.serial_number
        # The key size asked for.
        assert rsa_cert.public_key().key_size == 2048
        assert ec_cert.public_key().curve.name == "secp256r1"


class TestSeveralDomains:
    """Three managed domains with several names each in one server, on one port."""

    mds = [["mdm1.test", "www.mdm1.test", "api.mdm1.test"], ["mdm2.test", "www.mdm2.test"],
           ["mdm3.test", "a.mdm3.test", "b.mdm3.test"]]

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory):
        s = httpd_factory(name="several")
        s.set_log_level("bastion", "debug")
        p = Pebble(s.root / "pebble", http_port=s.http_port, tls_port=s.port("https")).start()
        https = s.port("https")
        extra = "\n".join(f"MDomain {' '.join(n)}" for n in cls.mds[1:])
        extra += "\n" + "\n".join(md_vhost(https, n) for n in cls.mds[1:])
        s.add_conf(md_conf(s, p, cls.mds[0], "tls-alpn-01", extra))
        s.start()
        yield s, p
        s.stop()
        p.stop()

    def test_all_issued_and_served(self, env):
        s, p = env
        https = s.port("https")
        serials = set()
        for names in self.mds:
            for n in names:
                cert = wait_served(s, p, https, n)
                assert sans(cert) == set(names), (n, sans(cert))
                serials.add(cert.serial_number)
        assert len(serials) == 3
        st = curl(s.url("/md-status")).json()
        got = {m["name"]: m["domains"] for m in st["managed-domains"]}
        assert got == {n[0]: n for n in self.mds}
        text = notes(s)
        for names in self.mds:
            assert f"message renewed {names[0]}\n" in text


class TestRenewal:
    """Pebble issues 60-second certificates; with MDRenewWindow 70% the watchdog renews 18 s
    after issuance, and the new certificate is served without a restart."""

    names = ["mdr.test", "www.mdr.test"]

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory):
        s, p = start_md_server(httpd_factory, "renew", {"validity": 60}, names=cls.names,
                               extra="MDRenewWindow 70%")
        s.start()
        yield s, p
        s.stop()
        p.stop()

    def test_renewed_when_window_arrives(self, env):
        s, p = env
        https = s.port("https")
        first = wait_served(s, p, https, self.names[0])
        life = first.not_valid_after_utc - first.not_valid_before_utc
        assert life.total_seconds() <= 61
        second = wait_served(s, p, https, self.names[1], timeout=50,
                             ok=lambda c: c.serial_number != first.serial_number)
        assert second.not_valid_before_utc > first.not_valid_before_utc
        # Renewed by the watchdog when 70% of the lifetime was left, not at once.
        gap = (second.not_valid_before_utc - first.not_valid_before_utc).total_seconds()
        assert gap >= 15, gap
        wait_for(lambda: notes(s).count("message renewed mdr.test\n") >= 2, 10, "MDMessageCmd renewed")
        assert notes(s).count("notify mdr.test\n") >= 2
        # Every child serves the new one.
        time.sleep(2.5)
        for _ in range(8):
            assert served_cert(https, self.names[0]).serial_number != first.serial_number
        assert re.search(r"mdr\.test.*renewal due|renewal due.*mdr\.test", s.read_log()) and "RenewWindow" in s.read_log()


class SlowProxy:
    """Forwards 127.0.0.1:port to ``target`` after holding each new connection ``delay`` s:
    pebble's http-01 validation through it takes that long."""

    def __init__(self, target: int, delay: float):
        from harness import free_port
        self.target, self.delay, self.port = target, delay, free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        time.sleep(self.delay)
        try:
            u = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            c.close()
            return

        def pump(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
            except OSError:
                pass
            finally:
                for x in (a, b):
                    try:
                        x.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(u, c), daemon=True).start()
        pump(c, u)

    def close(self):
        self.sock.close()


class TestWatchdogKilled:
    """SIGKILL to the child running the watchdog while pebble validates (the validation goes
    through a proxy that holds it 4 s): another child takes over the watchdog, resumes the
    order from staging/order.json, and the store ends consistent."""

    names = ["mdw.test", "www.mdw.test"]

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory):
        s = httpd_factory(name="kill")
        proxy = SlowProxy(s.http_port, 4.0)
        s.set_log_level("bastion", "debug")
        p = Pebble(s.root / "pebble", http_port=proxy.port, tls_port=s.port("https"),
                   env={"PEBBLE_AUTHZREUSE": "0"}).start()
        s.add_conf(md_conf(s, p, cls.names, "http-01"))
        s.start()
        yield s, p, proxy
        s.stop()
        p.stop()
        proxy.close()

    def test_order_survives_killed_child(self, env):
        s, p, proxy = env
        m = s.wait_for_log(r"\[pid (\d+):tid \d+\].*challenge set up", timeout=30)
        pid = int(m.group(1))
        assert pid in s.child_pids()
        staging = s.root / "md" / "staging" / "mdw.test"
        rec = json.loads((staging / "order.json").read_text())
        assert any(o["url"] for o in rec["orders"]), rec
        os.kill(pid, signal.SIGKILL)
        kill_offset = s.log_size()
        wait_for(lambda: pid not in s.child_pids(), 5, "the child to die")
        s.wait_for_log(r"The Managed Domain mdw\.test has been setup", timeout=60, since=kill_offset)
        setup = s.wait_for_log(r"\[pid (\d+):tid \d+\].*received certificate md=mdw\.test", since=kill_offset)
        assert int(setup.group(1)) != pid
        # The order was resumed, not started over: pebble saw one order.
        assert s.read_log(kill_offset).count("resumed order") >= 1
        assert (s.root / "pebble" / "pebble.log").read_text().count('Added order "') == 1
        assert proxy.connections >= 1
        cert = wait_served(s, p, s.port("https"), self.names[1])
        assert sans(cert) == set(self.names)
        # Consistent store: a complete staged set, no order left, challenges torn down, and
        # domains/ untouched until the next restart (its fallback only).
        assert sorted(f.name for f in staging.iterdir()) == sorted(
            ["job.json", "md.json", "privkey.pem", "pubcert.pem"]), list(staging.iterdir())
        live = s.root / "md" / "domains" / "mdw.test"
        assert not (live / "pubcert.pem").exists() and not (live / "privkey.pem").exists()
        chal = s.root / "md" / "challenges"
        assert not any(chal.iterdir()) if chal.exists() else True
        s.graceful()
        assert (live / "pubcert.pem").exists() and not (staging / "pubcert.pem").exists()
        assert served_cert(s.port("https"), self.names[0]).serial_number == cert.serial_number


DNS01 = """#!/bin/sh
# MDChallengeDns01: setup <domain> <txt> | teardown <domain>
echo "$@" >> "{log}"
case "$1" in
  setup) body='{{"host":"_acme-challenge.'"$2"'.","value":"'"$3"'"}}'; path=set-txt ;;
  teardown) body='{{"host":"_acme-challenge.'"$2"'."}}'; path=clear-txt ;;
  *) exit 2 ;;
esac
exec curl -sf -o /dev/null -d "$body" "http://127.0.0.1:{port}/$path"
"""


@pytest.mark.parametrize("version", [1, 2], scope="class")
class TestDns01:
    """dns-01 through an MDChallengeDns01 script that sets TXT records in challtestsrv (pebble's
    DNS), for a wildcard name too; with MDChallengeDns01Version 2 teardown gets the value too."""

    names = ["mdd.test", "*.mdd.test"]

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory, version):
        s = httpd_factory(name=f"dns01-v{version}")
        s.set_log_level("bastion", "debug")
        # http-01 and tls-alpn-01 cannot succeed: pebble validates against ports nobody serves.
        from harness import free_port
        p = Pebble(s.root / "pebble", http_port=free_port(), tls_port=free_port()).start()
        script = s.write_file("dns01.sh", DNS01.format(log=s.root / "logs" / "dns01.txt", port=p.cts_port),
                              mode=0o755, base=s.root / "conf")
        s.add_conf(md_conf(s, p, cls.names, "dns-01",
                           f"MDChallengeDns01 {script}\nMDChallengeDns01Version {version}"))
        s.start()
        yield s, p
        s.stop()
        p.stop()

    def test_wildcard_via_dns01(self, env, version):
        s, p = env
        https = s.port("https")
        cert = wait_served(s, p, https, "mdd.test")
        assert sans(cert) == set(self.names)
        for n in ("x.mdd.test", "www.mdd.test"):
            c = wait_served(s, p, https, n)
            assert c.serial_number == cert.serial_number
        calls = (s.root / "logs" / "dns01.txt").read_text().splitlines()
        setups = [c for c in calls if c.startswith("setup mdd.test ")]
        assert len(setups) == 2, calls  # mdd.test and *.mdd.test both validate at mdd.test
        if version == 1:
            assert "teardown mdd.test" in calls
            teardowns = ["teardown mdd.test"]
        else:  # each value set up is torn down by name
            teardowns = [c for c in calls if c.startswith("teardown ")]
            assert sorted(teardowns) == sorted(c.replace("setup", "teardown", 1) for c in setups), calls
        assert min(calls.index(t) for t in teardowns) > max(calls.index(c) for c in setups)
        # Pebble looked the TXT records up (the other challenge types could not have passed).
        log = (s.root / "pebble" / "pebble.log").read_text()
        assert log.count('Identifier:acme.Identifier{Type:"dns", Value:"mdd.test"}') == 2
        assert not list((s.root / "md").glob("challenges/*/*"))


EAB_KEY = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


class TestEab:
    """Pebble requires external account binding: the MD with MDExternalAccountBinding is
    issued, the one without fails with a clear error and backs off (no retry loop)."""

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory):
        s = httpd_factory(name="eab")
        s.set_log_level("bastion", "debug")
        p = Pebble(s.root / "pebble", http_port=s.http_port, tls_port=s.port("https"),
                   eab_keys={"kid-1": EAB_KEY}).start()
        https = s.port("https")
        extra = f"""
<MDomain mde.test>
  MDMember www.mde.test
  MDExternalAccountBinding kid-1 {EAB_KEY}
</MDomain>
MDomain mdn.test
{md_vhost(https, ["mdn.test"])}
"""
        s.add_conf(md_conf(s, p, ["mde.test", "www.mde.test"], "http-01", extra, md_line=False))
        s.log_allow(r"\[bastion:warn\].*mdn\.test: renewal failed: registering an account: .*"
                    r"externalAccountRequired", persistent=True)
        s.start()
        yield s, p
        s.stop()
        p.stop()

    def test_eab_issues_and_missing_eab_is_reported(self, env):
        s, p = env
        https = s.port("https")
        cert = wait_served(s, p, https, "www.mde.test")
        assert sans(cert) == {"mde.test", "www.mde.test"}
        acct = next((s.root / "md" / "accounts").glob("*/account.json"))
        assert json.loads(acct.read_text())["eab"] == {"kid": "kid-1"}
        assert "Successful newAccount Binding with CA using kid" in p.log() or \
            "kid-1" in (s.root / "pebble" / "pebble.log").read_text()
        # The MD without EAB: one clear error, in the log and in md-status, then a long backoff.
        m = s.wait_for_log(r"\[bastion:warn\].*mdn\.test: renewal failed.*", timeout=20)
        assert re.search(r"external ?account|externalAccountRequired", m.group(0), re.I), m.group(0)
        one = curl(s.url("/md-status/mdn.test")).json()
        assert "externalAccountRequired" in json.dumps(one), one
        time.sleep(4)
        fails = [ln for ln in s.log_lines() if re.search(r"\[bastion:warn\].*mdn\.test", ln)]
        assert len(fails) == 1, fails
        r = curl(f"https://mdn.test:{https}/", resolve=True, insecure=True)
        assert r.status == 503
        assert "message errored mdn.test" in notes(s)
        assert s.is_running() and len(s.child_pids()) >= 2


class TestNonceChaos:
    """Pebble rejects half of the nonces as bad: badNonce answers are retried and the
    certificate is issued without an error."""

    names = ["mdc.test", "www.mdc.test"]

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory):
        # Two key types: two orders, more requests to reject.
        s, p = start_md_server(httpd_factory, "chaos", {"env": {"PEBBLE_WFE_NONCEREJECT": "50",
                                                                "PEBBLE_AUTHZREUSE": "0"}},
                               names=cls.names, extra="MDPrivateKeys secp256r1 rsa2048")
        s.start()
        yield s, p
        s.stop()
        p.stop()

    def test_issued_despite_bad_nonces(self, env):
        s, p = env
        cert = wait_served(s, p, s.port("https"), self.names[0])
        assert sans(cert) == set(self.names)
        wait_for(lambda: notes(s).count("message renewed mdc.test"), 10, "MDMessageCmd renewed")
        log = (s.root / "pebble" / "pebble.log").read_text()
        assert "reject 50% of good nonces" in log
        # A request pebble rejected for its nonce is sent again: the same (non-polling) POST
        # twice in a row, which a clean issuance never does.
        reqs = re.findall(r"(POST|GET|HEAD) (/\S*) -> calling handler", log)
        once = {"/sign-me-up", "/order-plz", "/authZ/", "/chalZ/", "/finalize-order/", "/certZ/"}
        retried = [b for a, b in zip(reqs, reqs[1:]) if a == b and a[1] in once]
        assert retried, reqs
        assert len(list((s.root / "md" / "staging" / "mdc.test").glob("pubcert*.pem"))) == 2


class TestA2md:
    """a2md against the store of a running server: `list` shows its domains and the issued
    certificate; `drive` issues for an MDRenewMode manual domain, served after a graceful
    restart."""

    @pytest.fixture(scope="class")
    @classmethod
    def env(cls, httpd_factory):
        assert A2MD.exists(), f"{A2MD} is missing: run make build"
        s = httpd_factory(name="a2md")
        s.set_log_level("bastion", "debug")
        p = Pebble(s.root / "pebble", http_port=s.http_port, tls_port=s.port("https")).start()
        https = s.port("https")
        extra = f"""
<MDomain mdx.test>
  MDMember www.mdx.test
  MDRenewMode manual
</MDomain>
{md_vhost(https, ["mdx.test", "www.mdx.test"])}
"""
        s.add_conf(md_conf(s, p, ["mdy.test"], "http-01", extra))
        s.start()
        yield s, p
        s.stop()
        p.stop()

    def a2md(self, s, p, *args):
        cmd = [str(A2MD), "-d", str(s.root / "md"), "-a", p.dir_url, "-C", str(p.tls_root), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=90)

    def test_list_and_drive(self, env):
        s, p = env
        https = s.port("https")
        auto = wait_served(s, p, https, "mdy.test")
        s.graceful()  # promoted to domains/
        r = self.a2md(s, p, "-j", "list")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        mds = {m["name"]: m for m in out["output"]}
        assert set(mds) == {"mdy.test", "mdx.test"}, mds.keys()
        assert mds["mdx.test"]["domains"] == ["mdx.test", "www.mdx.test"]
        assert format(auto.serial_number, "X").lower() in json.dumps(mds["mdy.test"]).lower()
        human = self.a2md(s, p, "list")
        assert human.returncode == 0 and "mdy.test" in human.stdout and "mdx.test" in human.stdout
        # The manual one: 503 until a2md drives it.
        r = curl(f"https://mdx.test:{https}/", resolve=True, insecure=True)
        assert r.status == 503
        r = self.a2md(s, p, "drive", "-c", "http-01", "mdx.test")
        assert r.returncode == 0, r.stdout + r.stderr
        live = s.root / "md" / "domains" / "mdx.test"
        assert (live / "pubcert.pem").exists()
        s.graceful()
        cert = wait_served(s, p, https, "www.mdx.test", timeout=10)
        assert sans(cert) == {"mdx.test", "www.mdx.test"}
        pem = x509.load_pem_x509_certificates((live / "pubcert.pem").read_bytes())[0]
        assert pem.serial_number == cert.serial_number


class TestModSslTlsAlpn:
    """tls-alpn-01 for a domain served only by mod_ssl: we propose `acme-tls/1` (allowed by
    `Protocols`, as with mod_md), mod_ssl switches to it and asks ap_ssl_answer_challenge, which
    our provider answers from the store; mod_ssl serves the certificate after the next graceful
    restart (it cannot swap certificates while it runs)."""

    def test_mod_ssl_answers_through_our_provider(self, httpd_factory):
        s = httpd_factory(name="modssl-alpn")
        s.set_log_level("bastion", "debug")
        s.add_modules("ssl")
        s.log_allow(r"AH10085: Init: mds\.test:443 will respond with '503 Service Unavailable'",
                    persistent=True)
        ssl_port = s.port("ssl")
        p = Pebble(s.root / "pebble", http_port=s.http_port, tls_port=ssl_port).start()
        try:
            names = ["mds.test", "www.mds.test"]
            s.add_conf(md_conf(s, p, names, "tls-alpn-01", vhost=False, extra=f"""
Listen 127.0.0.1:{ssl_port}
<VirtualHost 127.0.0.1:{ssl_port}>
  ServerName {names[0]}
  ServerAlias {names[1]}
  SSLEngine on
  Protocols http/1.1 acme-tls/1
</VirtualHost>
"""))
            s.start()
            r = curl(f"https://{names[0]}:{ssl_port}/", resolve=True, insecure=True)
            assert r.status == 503, r
            s.wait_for_log(r"The Managed Domain mds\.test has been setup", timeout=90)
            # mod_ssl (the only TLS host) asked our provider for the challenge certificate.
            s.wait_for_log(r"answering the tls-alpn-01 challenge for (www\.)?mds\.test", timeout=5)
            s.graceful()
            cert = wait_served(s, p, ssl_port, names[1], timeout=20)
            assert sans(cert) == set(names)
        finally:
            s.stop()
            p.stop()
