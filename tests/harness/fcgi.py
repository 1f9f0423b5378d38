"""Real parts for the encrypted-FastCGI tests: our key server, memcached, the FastCGI blob
store application (tests/apps/fcgi_store.py), and an independent MENC v2 reader.

    ks = KeyServer(directory)            # bastion-keyserver, role both, fresh store, TLS
    ks.add_user("module", "pw...")       # accounts (role module unless given)
    ks.start(); ks.stop(); ks.rotate_data("alice")
    ks.data_key("alice", version=None)   # the plaintext data key, fetched and unwrapped here
    mc = Memcached(); mc.start(); mc.items() -> {key: value}; mc.stop()
    app = FcgiApp(directory, socket=None|path); app.start(); app.url_name(...)
    menc_decrypt(obj, data_key) -> plaintext  (docs/format.md §8, written independently)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import paths
from .certs import CertAuthority
from .ports import free_port, port_accepts

KEYSERVER_BIN = Path(os.environ.get("BASTION_KEYSERVER", paths.REPO_ROOT / "target/release/bastion-keyserver"))
APP = paths.REPO_ROOT / "tests/apps/fcgi_store.py"
MEMCACHED = "/usr/bin/memcached"


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not port_accepts(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class KeyServer:
    """bastion-keyserver (role both) in ``directory``, HTTPS on a free port, CA in ``ca_path``."""

    MASTER_PASSWORD = "test master password, not secret"

    def __init__(self, directory: str | Path):
        if not KEYSERVER_BIN.exists():
            raise RuntimeError(f"{KEYSERVER_BIN} is missing: run make build-tools")
        self.dir = Path(directory)
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        ca = CertAuthority(self.dir / "ca", name="Key Server Test CA")
        leaf = ca.issue(["localhost", "127.0.0.1"])
        self.ca_path = ca.cert_path
        os.chmod(self.ca_path, 0o644)
        (self.dir / "master-password").write_text(self.MASTER_PASSWORD + "\n")
        os.chmod(self.dir / "master-password", 0o600)
        self.config = self.dir / "keyserver.toml"
        self.audit_log = self.dir / "audit.log"
        self.config.write_text(f"""
listen = "127.0.0.1:{self.port}"
role = "both"
database = "keys.db"
audit_log = "audit.log"
master_password_file = "master-password"
[tls]
certificate = "{leaf.fullchain}"
key = "{leaf.key}"
[argon2]
kek_memory_kib = 1024
kek_iterations = 1
password_memory_kib = 1024
password_iterations = 1
""")
        self.proc: subprocess.Popen | None = None
        self.users: dict[str, str] = {}
        self._cli("init")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _cli(self, *args: str, input: str | None = None) -> str:
        r = subprocess.run([str(KEYSERVER_BIN), *args, "--config", str(self.config)], input=input,
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"bastion-keyserver {' '.join(args)}: {r.stderr}")
        return r.stdout

    def add_user(self, name: str, password: str, *args: str) -> None:
        self._cli("user", "add", name, *args, input=password + "\n")
        self.users[name] = password

    def rotate_data(self, client: str) -> None:
        self._cli("rotate", "data", client)

    def start(self) -> "KeyServer":
        self.proc = subprocess.Popen([str(KEYSERVER_BIN), "serve", "--config", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.log", "ab"),
                                     cwd=self.dir)
        _wait_port(self.port, self.proc, "bastion-keyserver")
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    # -- an independent client of the JSON API (docs/keyserver.md), for checking the module
    def _get(self, path: str, token: str | None = None, body: dict | None = None) -> dict:
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        req = urllib.request.Request(self.url + path, method="POST" if body is not None else "GET",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Token {token}"} if token else {})})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def data_key(self, client: str, version: int | None = None, *, user: str = "module") -> tuple[int, bytes]:
        """(version, plaintext data key) of ``client``, unwrapped with the master key."""
        tok = self._get("/auth", body={"username": user, "password": self.users[user]})["token"]
        rec = self._get(f"/data/key/{client}" + (f"/{version}" if version else ""), tok)
        master = bytes.fromhex(self._get(f"/master/key/{rec['master_key_id']}", tok)["key"])
        wrapped = base64.b64decode(rec["key_encrypted_base64"])
        dk = AESSIV(master).decrypt(wrapped, [b"menc2/wrap", client.encode(), struct.pack(">I", rec["version"])])
        return rec["version"], dk

    def master_keys_hex(self, *, user: str = "module") -> list[str]:
        tok = self._get("/auth", body={"username": user, "password": self.users[user]})["token"]
        cur = self._get("/master/key", tok)
        return [self._get(f"/master/key/{i}", tok)["key"] for i in range(1, cur["key_id"] + 1)]


class Memcached:
    """A memcached on a free loopback port."""

    def __init__(self):
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Memcached":
        self.proc = subprocess.Popen([MEMCACHED, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                                      "-u", "nobody", "-m", "16"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "memcached")
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def _cmd(self, line: str, end: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(line.encode() + b"\r\n")
            buf = b""
            while not buf.endswith(end):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            return buf

    def items(self) -> dict[str, bytes]:
        """Every key memcached holds, with its value."""
        dump = self._cmd("lru_crawler metadump all", b"END\r\n").decode()
        keys = [part.split("=", 1)[1] for line in dump.splitlines()
                for part in line.split() if part.startswith("key=")]
        out = {}
        for k in keys:
            k = urllib.request.unquote(k)
            raw = self._cmd(f"get {k}", b"END\r\n")
            head, _, rest = raw.partition(b"\r\n")
            if head.startswith(b"VALUE"):
                n = int(head.split()[3])
                out[k] = rest[:n]
        return out


class FcgiApp:
    """tests/apps/fcgi_store.py storing into ``directory``, on a TCP port or a Unix socket."""

    def __init__(self, directory: str | Path, *, unix_socket: str | Path | None = None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = Path(unix_socket) if unix_socket else None
        self.port = None if self.socket else free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def address_args(self) -> str:
        """The FastCgiExternalServer arguments naming this application."""
        return f"-socket {self.socket}" if self.socket else f"-host 127.0.0.1:{self.port}"

    def start(self) -> "FcgiApp":
        where = ["--socket", str(self.socket)] if self.socket else ["--port", str(self.port)]
        self.proc = subprocess.Popen([sys.executable, str(APP), "--dir", str(self.dir), *where],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir.parent / f"{self.dir.name}.stderr", "ab"))
        deadline = time.monotonic() + 10
        while True:
            if self.socket:
                if self.socket.exists():
                    os.chmod(self.socket, 0o777)
                    break
            elif port_accepts(self.port):
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fcgi_store.py did not come up")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None

    def stored(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()

    def requests(self) -> list[str]:
        p = self.dir / ".requests.log"
        return p.read_text().splitlines() if p.exists() else []

    def last_params(self) -> dict:
        return json.loads((self.dir / ".last-params.json").read_text())


def menc_header(obj: bytes) -> dict:
    """The fields of an MENC v2 header (docs/format.md §2)."""
    assert obj[:4] == b"MENC", obj[:8]
    n = obj[46]
    return {"version": obj[4], "cipher": {1: "aes-256-ctr", 2: "aes-256-gcm"}[obj[5]],
            "seg_log2": obj[6], "header_len": struct.unpack(">H", obj[8:10])[0],
            "key_version": struct.unpack(">I", obj[10:14])[0], "salt": obj[14:46],
            "client": obj[47:47 + n].decode()}


def menc_decrypt(obj: bytes, data_key: bytes) -> bytes:
    """Decrypts a whole MENC v2 object with ``cryptography`` (docs/format.md)."""
    assert obj[:4] == b"MENC" and obj[4] == 2 and obj[7] == 0
    cipher, seg_log2, n = obj[5], obj[6], obj[46]
    hlen = 47 + n
    assert struct.unpack(">H", obj[8:10])[0] == hlen
    header, body, salt = obj[:hlen], obj[hlen:], obj[14:46]
    okm = HKDF(hashes.SHA256(), 48, salt, b"menc2/obj" + header).derive(data_key)
    key, iv = okm[:32], okm[32:]
    if cipher == 1:
        d = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
        return d.update(body) + d.finalize()
    seg_ct = (1 << seg_log2) + 16
    segs = [body[i:i + seg_ct] for i in range(0, len(body), seg_ct)] or [b""]
    gcm, out = AESGCM(key), []
    for i, s in enumerate(segs):
        nonce = iv[:7] + struct.pack(">I", i) + bytes([1 if i == len(segs) - 1 else 0])
        out.append(gcm.decrypt(nonce, s, header))
    return b"".join(out)
