"""Real clients: the curl and openssl binaries, and a raw socket."""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import urlsplit

CURL = os.environ.get("CURL", "curl")
OPENSSL = os.environ.get("OPENSSL", "openssl")

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "CURL_HOME")


def _client_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["LANG"] = "C"
    return env


@dataclass
class CurlResult:
    """What one curl run returned. ``status`` is 0 if no response arrived."""

    args: list[str]
    returncode: int
    status: int
    http_version: str  # "1.1", "2", ... ("0" if no response)
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    header_list: list[tuple[str, str]]  # every header of the final response, in order
    body: bytes
    stderr: str
    info: dict = field(default_factory=dict)  # curl's -w '%{json}' (ssl_verify_result, ...)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __repr__(self) -> str:
        return (f"<CurlResult rc={self.returncode} status={self.status} http/{self.http_version} "
                f"{len(self.body)} bytes stderr={self.stderr.strip()[:200]!r}>")


def _parse_header_blocks(raw: bytes) -> list[tuple[str, str]]:
    """The headers of the last block written by ``curl -D`` (1xx and redirects come first)."""
    text = raw.decode("iso-8859-1")
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    if not blocks:
        return []
    out = []
    for line in blocks[-1].splitlines()[1:]:  # skip the status line
        if ":" in line:
            k, v = line.split(":", 1)
            out.append((k.strip().lower(), v.strip()))
    return out


def curl(
    url: str,
    *args: str,
    resolve: str | Sequence[str] | bool | None = None,
    http2: bool | str = False,
    insecure: bool = False,
    cacert: str | Path | None = None,
    data: bytes | str | None = None,
    method: str | None = None,
    headers: Mapping[str, str] | Sequence[str] | None = None,
    timeout: float = 10,
) -> CurlResult:
    """Run the curl binary once on ``url``.

    ``resolve``: True derives ``host:port:127.0.0.1`` from the URL; a string or list is passed as
    ``--resolve`` value(s). ``http2``: True → ``--http2`` (ALPN on https, Upgrade on http);
    ``"prior-knowledge"`` → ``--http2-prior-knowledge``; False → ``--http1.1``.
    ``data`` is sent as is (``--data-binary``), POST unless ``method`` says otherwise.
    ``headers``: dict or list of ``"Name: value"``. Extra ``args`` go before the URL.
    curl runs with proxies disabled and ``-q`` (no ~/.curlrc). Never raises on HTTP errors or
    connection failures: look at ``returncode``/``status``/``stderr``.
    """
    with tempfile.TemporaryDirectory(prefix="curl-") as tmp:
        body_f, hdr_f = Path(tmp, "body"), Path(tmp, "headers")
        cmd = [CURL, "-q", "-sS", "--noproxy", "*", "-o", str(body_f), "-D", str(hdr_f),
               "-w", "%{json}", "--max-time", str(timeout)]
        if resolve is True:
            u = urlsplit(url)
            port = u.port or (443 if u.scheme == "https" else 80)
            cmd += ["--resolve", f"{u.hostname}:{port}:127.0.0.1"]
        elif isinstance(resolve, str):
            cmd += ["--resolve", resolve]
        elif resolve:
            for r in resolve:
                cmd += ["--resolve", r]
        if http2 == "prior-knowledge":
            cmd.append("--http2-prior-knowledge")
        elif http2:
            cmd.append("--http2")
        else:
            cmd.append("--http1.1")
        if insecure:
            cmd.append("-k")
        if cacert:
            cmd += ["--cacert", str(cacert)]
        if data is not None:
            data_f = Path(tmp, "data")
            data_f.write_bytes(data.encode() if isinstance(data, str) else data)
            cmd += ["--data-binary", f"@{data_f}"]
        if method:
            cmd += ["-X", method]
        if headers:
            items = headers.items() if isinstance(headers, Mapping) else None
            for h in ([f"{k}: {v}" for k, v in items] if items is not None else headers):
                cmd += ["-H", h]
        cmd += list(args)
        cmd.append(url)
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           env=_client_env(), timeout=timeout + 10)
        try:
            info = json.loads(p.stdout.decode("utf-8", "replace") or "{}")
        except ValueError:
            info = {"raw": p.stdout.decode("utf-8", "replace")}
        header_list = _parse_header_blocks(hdr_f.read_bytes()) if hdr_f.exists() else []
        hdrs: dict[str, str] = {}
        for k, v in header_list:
            hdrs[k] = f"{hdrs[k]}, {v}" if k in hdrs else v
        return CurlResult(
            args=cmd,
            returncode=p.returncode,
            status=int(info.get("http_code") or info.get("response_code") or 0),
            http_version=str(info.get("http_version") or "0"),
            headers=hdrs,
            header_list=header_list,
            body=body_f.read_bytes() if body_f.exists() else b"",
            stderr=p.stderr.decode("utf-8", "replace"),
            info=info,
        )


@dataclass
class SClientResult:
    """What ``openssl s_client`` printed, with the interesting fields parsed out."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    protocol: str | None  # "TLSv1.3"
    cipher: str | None  # "TLS_AES_256_GCM_SHA384"
    subject: str | None  # peer certificate subject as openssl prints it: "CN = example.org"
    issuer: str | None
    reused: bool | None  # True for "Reused, ...", False for "New, ...", None if no handshake
    alpn: str | None  # "h2", or None if none was negotiated
    verify_code: int | None  # "Verify return code: N (...)"
    handshake_ok: bool = False

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def openssl_s_client(
    host: str | None,
    port: int,
    servername: str | None = None,
    args: Sequence[str] = (),
    input: bytes = b"",
    timeout: float = 10,
) -> SClientResult:
    """Run ``openssl s_client -connect 127.0.0.1:<port>`` (``-servername`` = ``servername`` or,
    if that is None, ``host`` unless it is an IP or None), feed ``input`` on stdin, then EOF.
    Pass e.g. ``args=("-tls1_3", "-alpn", "h2", "-sess_out", f)``."""
    cmd = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}"]
    sni = servername if servername is not None else host
    if sni and not re.fullmatch(r"[\d.]+|[0-9a-fA-F:]+", sni):
        cmd += ["-servername", sni]
    elif servername is None:
        cmd.append("-noservername")
    cmd += list(args)
    try:
        p = subprocess.run(cmd, input=input, capture_output=True, env=_client_env(), timeout=timeout)
        rc, out, err = p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        rc = -1
        out = (e.stdout or b"").decode("utf-8", "replace")
        err = (e.stderr or b"").decode("utf-8", "replace") + f"\n[harness] timeout after {timeout}s"

    def find(pattern: str) -> str | None:
        m = re.search(pattern, out, re.M)
        return m.group(1).strip() if m else None

    nr = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
    protocol = find(r"^\s*Protocol\s*:\s*(\S+)")
    cipher = find(r"^\s*Cipher\s*:\s*(\S+)")
    if nr:
        protocol = protocol or nr.group(2)
        cipher = cipher or nr.group(3)
    if cipher in ("0000", "(NONE)"):
        cipher = None
    alpn = find(r"^ALPN protocol: (\S+)")
    verify = find(r"Verify return code: (\d+)")
    return SClientResult(
        args=cmd, returncode=rc, stdout=out, stderr=err,
        protocol=protocol, cipher=cipher,
        subject=find(r"^subject=(.*)$"), issuer=find(r"^issuer=(.*)$"),
        reused=(nr.group(1) == "Reused") if nr else None,
        alpn=alpn, verify_code=int(verify) if verify else None,
        handshake_ok=bool(nr) and cipher is not None,
    )


def raw_request(
    port: int,
    data: bytes,
    timeout: float = 5,
    *,
    host: str = "127.0.0.1",
    tls: bool = False,
    servername: str | None = None,
    alpn: Sequence[str] | None = None,
    shutdown_write: bool = False,
) -> bytes:
    """Send ``data`` to ``host:port`` and return everything the server sends until it closes the
    connection or ``timeout`` seconds pass without it closing. With ``tls=True`` the socket is
    wrapped first (no certificate verification; ``servername`` for SNI, ``alpn`` list)."""
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            sock = ctx.wrap_socket(sock, server_hostname=servername)
        sock.sendall(data)
        if shutdown_write and not tls:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, TimeoutError):
                break
            except (ConnectionResetError, ssl.SSLError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()
