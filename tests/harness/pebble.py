"""Debian's pebble (an ACME test CA) with pebble-challtestsrv as its DNS server (every name
resolves to 127.0.0.1), on free loopback ports, validating challenges against the ports given.

    p = Pebble(directory, http_port=..., tls_port=...).start()
    p.dir_url        # the ACME directory (https://localhost:PORT/dir)
    p.tls_root       # PEM file: the root of pebble's own HTTPS listener (MDCACertificateFile)
    p.issuing_root() # PEM of the root that issued certificates chain to (management port)
    p.set_txt(host, value) / p.clear_txt(host)   # challtestsrv's DNS (dns-01)
    p.acme_requests()  # ACME requests pebble has handled so far (from its log)
    p.stop()

Options: ``validity`` (certificateValidityPeriod, seconds), ``env`` (PEBBLE_WFE_NONCEREJECT, ...),
``eab_keys`` ({kid: base64url hmac}: externalAccountBindingRequired with these MAC keys).

Helpers for managed-domain tests: ``md_conf`` (the server side of one MD), ``served_cert``,
``wait_served`` and ``notes`` (what MDNotifyCmd/MDMessageCmd wrote).
"""

from __future__ import annotations

import json
import os
import re
import socket
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from cryptography import x509

from .certs import CertAuthority
from .ports import free_port, port_accepts

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"


class Pebble:
    def __init__(self, directory: str | Path, *, http_port: int, tls_port: int, validity: int = 7776000,
                 env: dict[str, str] | None = None, eab_keys: dict[str, str] | None = None):
        for b in (PEBBLE, CHALLTESTSRV):
            if not os.path.exists(b):
                raise RuntimeError(f"{b} is missing: apt-get install pebble")
        self.dir = Path(directory)
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        ca = CertAuthority(self.dir / "tls", name="pebble listener test root")
        leaf = ca.issue(["localhost", "127.0.0.1"])
        self.tls_root = ca.cert_path
        os.chmod(self.tls_root, 0o644)
        self.acme_port, self.mgmt_port, self.dns_port, self.cts_port = (free_port() for _ in range(4))
        self.config = self.dir / "pebble.json"
        self.config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.mgmt_port}",
            "certificate": str(leaf.fullchain), "privateKey": str(leaf.key),
            "httpPort": http_port, "tlsPort": tls_port, "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(eab_keys), "certificateValidityPeriod": validity,
            **({"externalAccountMACKeys": eab_keys} if eab_keys else {}),
        }}))
        self.env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", **(env or {}))
        self.procs: list[subprocess.Popen] = []

    @property
    def dir_url(self) -> str:
        return f"https://localhost:{self.acme_port}/dir"

    def start(self) -> "Pebble":
        self.procs.append(subprocess.Popen(
            [CHALLTESTSRV, "-dns01", f"127.0.0.1:{self.dns_port}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"127.0.0.1:{self.cts_port}", "-defaultIPv4", "127.0.0.1",
             "-defaultIPv6", ""], stdout=open(self.dir / "challtestsrv.log", "wb"), stderr=subprocess.STDOUT))
        self.procs.append(subprocess.Popen(
            [PEBBLE, "-config", str(self.config), "-dnsserver", f"127.0.0.1:{self.dns_port}"],
            env=self.env, stdout=open(self.dir / "pebble.log", "wb"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 20
        for port in (self.cts_port, self.acme_port, self.mgmt_port):
            while not port_accepts(port):
                for p in self.procs:
                    if p.poll() is not None:
                        raise RuntimeError(f"pebble exited: {self.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pebble did not start: {self.log()}")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        self.procs = []

    def log(self) -> str:
        try:
            return (self.dir / "pebble.log").read_text()[-3000:]
        except OSError:
            return ""

    def issuing_root(self) -> str:
        """The root the issued certificates chain to, from pebble's management interface."""
        ctx = ssl.create_default_context(cafile=str(self.tls_root))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.mgmt_port}/roots/0", context=ctx,
                                    timeout=10) as r:
            return r.read().decode()

    def _cts(self, path: str, body: dict) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.cts_port}{path}", data=json.dumps(body).encode())
        urllib.request.urlopen(req, timeout=5).read()

    def set_txt(self, host: str, value: str) -> None:
        """A TXT record in challtestsrv's DNS (``host`` like ``_acme-challenge.x.test.``)."""
        self._cts("/set-txt", {"host": host, "value": value})

    def clear_txt(self, host: str) -> None:
        self._cts("/clear-txt", {"host": host})

    def acme_requests(self) -> int:
        """How many ACME requests pebble has handled (its "-> calling handler()" lines)."""
        try:
            return (self.dir / "pebble.log").read_text().count("-> calling handler()")
        except OSError:
            return 0

    def set_dns_a(self, host: str, addr: str = "127.0.0.1") -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.cts_port}/add-a",
                                     data=json.dumps({"host": host, "addresses": [addr]}).encode())
        urllib.request.urlopen(req, timeout=5).read()


NOTIFY = """#!/bin/sh
echo "notify $@" >> "{out}"
"""
MESSAGE = """#!/bin/sh
echo "message $@" >> "{out}"
"""


def served_cert(port: int, name: str, sigalgs: str | None = None) -> x509.Certificate:
    """The leaf certificate the server sends for SNI ``name`` (not verified); ``sigalgs``
    (an ``openssl s_client -sigalgs`` list) restricts the signature algorithms offered."""
    if sigalgs:
        import subprocess as sp
        out = sp.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                      "-sigalgs", sigalgs, "-tls1_3"], input=b"", capture_output=True, timeout=10)
        pem = out.stdout.decode("utf-8", "replace")
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise AssertionError(f"no certificate from s_client: {out.stderr.decode()[-500:]}")
        start = pem.index("-----BEGIN CERTIFICATE-----")
        end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        return x509.load_pem_x509_certificate(pem[start:end].encode())
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            return x509.load_der_x509_certificate(t.getpeercert(binary_form=True))


def md_conf(s, p: Pebble, names: list[str], challenge: str | None, extra: str = "", *,
            vhost: bool = True, md_line: bool = True) -> str:
    """The configuration of a server with one managed domain ``names`` (MDomain line and a
    TLS virtual host on ``s.port("https")``), pebble as its CA, MDNotifyCmd/MDMessageCmd
    writing to logs/notify.txt, /md-status; ``extra`` goes before the virtual host."""
    https = s.port("https")
    notify = s.write_file("notify.sh", NOTIFY.format(out=s.root / "logs" / "notify.txt"), mode=0o755,
                          base=s.root / "conf")
    message = s.write_file("message.sh", MESSAGE.format(out=s.root / "logs" / "notify.txt"), mode=0o755,
                           base=s.root / "conf")
    ca_copy = s.write_file("pebble-root.pem", Path(p.tls_root).read_text(), base=s.root / "conf")
    os.chmod(s.root / "logs", 0o777)
    text = f"""
ServerAdmin admin@example.org
Listen 127.0.0.1:{https}
TLSEngine 127.0.0.1:{https}
MDCertificateAuthority {p.dir_url}
MDCACertificateFile {ca_copy}
MDCertificateAgreement accepted
{f"MDCAChallenges {challenge}" if challenge else ""}
MDRetryDelay 1s
MDNotifyCmd {notify}
MDMessageCmd {message}
{f"MDomain {' '.join(names)}" if md_line else ""}
<Location /md-status>
  SetHandler md-status
</Location>
{extra}
"""
    if vhost:
        text += md_vhost(https, names)
    return text


def md_vhost(port: int, names: list[str]) -> str:
    """A virtual host on ``port`` named ``names[0]`` with the other names as aliases."""
    alias = ("ServerAlias " + " ".join(names[1:])) if len(names) > 1 else ""
    return f"""
<VirtualHost 127.0.0.1:{port}>
  ServerName {names[0]}
  {alias}
</VirtualHost>
"""


def notes(s) -> str:
    """What MDNotifyCmd/MDMessageCmd of ``md_conf`` wrote so far."""
    try:
        return (s.root / "logs" / "notify.txt").read_text()
    except FileNotFoundError:
        return ""


def verified_cert(port: int, name: str, cafile: str | Path, sigalgs: str | None = None
                  ) -> tuple[x509.Certificate | None, int | None]:
    """One connection with SNI ``name`` that verifies the server's chain against ``cafile`` and
    the name, then sends ``GET /``: (leaf certificate, HTTP status), or (None, None) if the
    handshake or verification fails. ``sigalgs``: ``openssl s_client -sigalgs`` (TLS 1.3)."""
    if sigalgs:
        import subprocess as sp
        proc = sp.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                         "-sigalgs", sigalgs, "-tls1_3", "-CAfile", str(cafile), "-verify_return_error",
                         "-verify_hostname", name, "-ign_eof"], stdin=sp.PIPE, stdout=sp.PIPE,
                        stderr=sp.STDOUT)
        # s_client stops reading at the end of its input: keep it open until the answer is in.
        proc.stdin.write(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        proc.stdin.flush()
        time.sleep(0.3)
        text = proc.communicate(timeout=10)[0].decode("utf-8", "replace")
        if "Verification: OK" not in text or f"Verified peername: {name}" not in text \
                or "-----BEGIN CERTIFICATE-----" not in text:
            return None, None
        a = text.index("-----BEGIN CERTIFICATE-----")
        b = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
        m = re.search(r"^HTTP/1\.1 (\d{3})", text, re.M)
        return x509.load_pem_x509_certificate(text[a:b].encode()), int(m.group(1)) if m else None
    ctx = ssl.create_default_context(cafile=str(cafile))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname=name) as t:
                cert = x509.load_der_x509_certificate(t.getpeercert(binary_form=True))
                t.sendall(f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
                head = b""
                while b"\r\n" not in head:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    head += chunk
    except (OSError, ssl.SSLError):
        return None, None
    m = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return cert, int(m.group(1)) if m else None


def wait_served(s, p: Pebble, port: int, name: str, *, timeout: float = 60, sigalgs: str | None = None,
                ok=None, settle: int = 6) -> x509.Certificate:
    """Wait until ``settle`` connections in a row to ``name`` on ``port`` get a certificate that
    chains to pebble's issuing root, matches the name (and ``ok(cert)``, e.g. a new serial) and a
    non-503 answer, so that every child serves it (each looks for staged certificates at most
    every 2 s). Returns the certificate."""
    root = s.write_file("issuing-root.pem", p.issuing_root(), base=s.root / "conf")
    deadline = time.monotonic() + timeout
    good, last, cert = 0, None, None
    while good < settle:
        cert, status = verified_cert(port, name, root, sigalgs)
        if cert is not None and status not in (None, 503) and (ok is None or ok(cert)):
            good += 1
            continue
        good, last = 0, (cert and cert.subject.rfc4514_string(), cert and format(cert.serial_number, "x"), status)
        assert time.monotonic() < deadline, f"{name}:{port} not served with an issued certificate: {last}"
        time.sleep(0.3)
    return cert
