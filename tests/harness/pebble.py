"""Debian's pebble (an ACME test CA) with pebble-challtestsrv as its DNS server (every name
resolves to 127.0.0.1), on free loopback ports, validating challenges against the ports given.

    p = Pebble(directory, http_port=..., tls_port=...).start()
    p.dir_url        # the ACME directory (https://localhost:PORT/dir)
    p.tls_root       # PEM file: the root of pebble's own HTTPS listener (MDCACertificateFile)
    p.issuing_root() # PEM of the root that issued certificates chain to (management port)
    p.stop()
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from .certs import CertAuthority
from .ports import free_port, port_accepts

PEBBLE = "/usr/bin/pebble"
CHALLTESTSRV = "/usr/bin/pebble-challtestsrv"


class Pebble:
    def __init__(self, directory: str | Path, *, http_port: int, tls_port: int, validity: int = 7776000,
                 env: dict[str, str] | None = None):
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
            "externalAccountBindingRequired": False, "certificateValidityPeriod": validity,
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

    def set_dns_a(self, host: str, addr: str = "127.0.0.1") -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{self.cts_port}/add-a",
                                     data=json.dumps({"host": host, "addresses": [addr]}).encode())
        urllib.request.urlopen(req, timeout=5).read()
