#!/usr/bin/env python3
"""mod_bastion vs mod_ssl benchmark (entry point of `make bench`). Not a test: it measures.

    python3 bench/run.py [--rounds N] [--seconds S] [--only ROW[,ROW]] [--certs ec,rsa] [--quick]
                         [--no-docs] [--workdir DIR] [--mem-conns N]

Three httpd servers run from one config generator, identical except the TLS module:
  A = mod_ssl     (SSLEngine on, SSLCertificateFile/KeyFile, SSLSessionCache shmcb)
  B = mod_bastion (TLSEngine, TLSCertificate; its default session cache/tickets)
  P = plain       (no TLS module; the plain-HTTP floor, only for rows where it means something)
Same event MPM settings, same modules otherwise (mod_http2 included), same files, ECDSA P-256 and
RSA-2048 leaf certificates from one throwaway CA. Every row runs A, B, (P), A, B, (P), ... for
--rounds rounds; the table shows medians, the ratio B/A, and the server's own CPU (utime+stime of
all httpd processes, /proc, including reaped children) per operation.

Rows (--only): h2-1k, h1-1k, h1-1m, hs-full, hs-resumed, mem-idle, mem-hs.
The results (table, exact command, machine facts) replace the generated section of
docs/benchmarks.md unless --no-docs (the default with --quick or --only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MODULE = Path(os.environ.get("BASTION_MODULE", REPO / "target/release/libmod_bastion.so")).resolve()
APACHE2 = os.environ.get("APACHE2", "/usr/sbin/apache2")
MODDIR = Path(os.environ.get("APACHE_MODULES_DIR", "/usr/lib/apache2/modules"))
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:generated:begin -->", "<!-- bench:generated:end -->"
HOST = "localhost"  # SNI name and ServerName; /etc/hosts maps it to 127.0.0.1 only
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

ROWS = ["h2-1k", "h1-1k", "h1-1m", "hs-full", "hs-resumed", "mem-idle", "mem-hs"]
ROW_TITLE = {
    "h2-1k": "1 KiB over h2, req/s",
    "h1-1k": "1 KiB over http/1.1 keep-alive, req/s",
    "h1-1m": "1 MiB over http/1.1, MB/s",
    "hs-full": "full TLS 1.3 handshakes/s (1 req/conn)",
    "hs-resumed": "resumed TLS 1.3 handshakes/s (1 req/conn)",
    "mem-idle": "KiB per idle keep-alive conn",
    "mem-hs": "KiB per handshake-only conn",
}
HIGHER_IS_BETTER = {r: not r.startswith("mem") for r in ROWS}
FLOOR_ROWS = {"h2-1k", "h1-1k", "h1-1m", "hs-resumed", "mem-idle"}  # P runs these over plain HTTP

def mpm_conf(children=4):
    """The event MPM settings every server gets: `children` processes started and kept (the
    default 4 × 64 threads; one child gets all 256 threads, so every row still has them)."""
    threads = 64 if children > 1 else 256
    return (f"StartServers {children}\nServerLimit {16 if children > 1 else 1}\nThreadLimit {threads}\n"
            f"ThreadsPerChild {threads}\nMinSpareThreads {min(64, threads)}\nMaxSpareThreads 1024\n"
            f"MaxRequestWorkers {1024 if children > 1 else threads}\nMaxConnectionsPerChild 0\n")


# ---------------------------------------------------------------------------------------- /proc
def _stat(pid):
    try:
        data = open(f"/proc/{pid}/stat", "rb").read().decode()
    except OSError:
        return None
    f = data[data.rfind(")") + 2:].split()
    return {"state": f[0], "ppid": int(f[1]), "cpu": int(f[11]) + int(f[12]),
            "ccpu": int(f[13]) + int(f[14])}


def children(ppid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st and st["ppid"] == ppid and st["state"] not in "ZX":
                out.append(int(d))
    return sorted(out)


def alive(pid):
    st = _stat(pid) if pid else None
    return bool(st) and st["state"] not in "ZX"


def rss(pid):
    try:
        return int(open(f"/proc/{pid}/statm").read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def free_port(taken=set()):  # noqa: B006 - process-wide memory of ports handed out
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    for _ in range(500):
        p = random.randrange(20000, max(lo, 20001 + 1000))
        if p in taken:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        taken.add(p)
        return p
    raise RuntimeError("no free port")


# ---------------------------------------------------------------------------------------- certs
def make_certs(d: Path):
    """A throwaway ECDSA P-256 CA and two leaves for localhost/127.0.0.1: 'ec' and 'rsa'."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
    import ipaddress

    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mod_bastion bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    out = {}
    for kt in ("ec", "rsa"):
        key = ec.generate_private_key(ec.SECP256R1()) if kt == "ec" else \
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(HOST), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        cf, kf = d / f"{kt}-fullchain.pem", d / f"{kt}-key.pem"
        cf.write_bytes(pem(cert) + pem(ca))
        kf.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
        os.chmod(cf, 0o644)
        os.chmod(kf, 0o600)  # read by the parent (root) at startup, as in production
        out[kt] = (cf, kf)
    return out


# ---------------------------------------------------------------------------------------- httpd
class Server:
    """One generated ServerRoot and the apache2 daemon on it. kind: 'ssl', 'bastion' or 'plain'."""

    PORTS = ("http", "ec", "rsa")

    def __init__(self, kind, root: Path, htdocs: Path, certs, children=4):
        self.kind, self.root, self.htdocs, self.certs = kind, root, htdocs, certs
        self.children = children
        self.ports = {name: free_port() for name in self.PORTS}
        self.conf = root / "conf" / "httpd.conf"
        self.pidfile = root / "run" / "httpd.pid"
        self.error_log = root / "logs" / "error.log"
        self.hs_log = root / "logs" / "hs.log"
        self.pid = None
        self._kill_stale()
        for sub in ("conf", "logs", "run"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for p in (root, root / "conf", root / "logs", root / "run"):
            os.chmod(p, 0o755)
        (root / "conf" / "mime.types").write_text("application/octet-stream bin\ntext/html html\n")
        self.conf.write_text(self.config())

    def config(self):
        r, m = self.root, MODDIR
        mods = ["authz_core", "mime", "dir", "setenvif", "rewrite", "socache_shmcb", "http2"]
        lines = [
            f'ServerRoot "{r}"', f"ServerName {HOST}", f'DefaultRuntimeDir "{r}/run"',
            f'PidFile "{self.pidfile}"', f'ErrorLog "{self.error_log}"', "LogLevel warn",
            "User www-data", "Group www-data",
            "Timeout 60", "KeepAlive On", "KeepAliveTimeout 30", "MaxKeepAliveRequests 0",
            f"Listen 127.0.0.1:{self.ports['http']}",
            f'LoadModule mpm_event_module "{m}/mod_mpm_event.so"', mpm_conf(self.children),
            *[f'LoadModule {x}_module "{m}/mod_{x}.so"' for x in mods],
        ]
        if self.kind == "ssl":
            lines.append(f'LoadModule ssl_module "{m}/mod_ssl.so"')
            lines.append(f'SSLSessionCache "shmcb:{r}/run/ssl_scache(512000)"')
        elif self.kind == "bastion":
            lines.append(f'LoadModule bastion_module "{self.root.parent / "mod_bastion.so"}"')
        lines += [
            "Protocols h2 h2c http/1.1",
            f'TypesConfig "{r}/conf/mime.types"',
            f'DocumentRoot "{self.htdocs}"',
            "<Directory />\n  AllowOverride None\n  Require all denied\n</Directory>",
            f'<Directory "{self.htdocs}">\n  AllowOverride None\n  Require all granted\n</Directory>',
            # Only /hs/ (the connection-rate rows) is logged: status and whether TLS resumed.
            'LogFormat "%>s %{bench_resumed}e" bench',
            f'CustomLog "{self.hs_log}" bench env=bench_hs',
            "SetEnvIf Request_URI ^/hs/ bench_hs=1",
        ]
        # mod_rewrite's %{SSL:...} (ap_ssl_var_lookup) works with both modules; ap_expr's
        # SSL: function (SetEnvIfExpr) is mod_ssl's own and does not exist with mod_bastion.
        resumed = ("  RewriteEngine on\n  RewriteCond %{REQUEST_URI} ^/hs/\n"
                   "  RewriteCond %{SSL:SSL_SESSION_RESUMED} =Resumed\n  RewriteRule ^ - [E=bench_resumed:R]")
        if self.kind != "plain":
            for kt in ("ec", "rsa"):
                port = self.ports[kt]
                cf, kf = self.certs[kt]
                lines.append(f"Listen 127.0.0.1:{port}")
                if self.kind == "ssl":
                    tls = f"  SSLEngine on\n  SSLCertificateFile {cf}\n  SSLCertificateKeyFile {kf}"
                else:
                    lines.append(f"TLSEngine 127.0.0.1:{port}")
                    tls = f"  TLSCertificate {cf} {kf}"
                lines.append(f"<VirtualHost 127.0.0.1:{port}>\n  ServerName {HOST}\n{tls}\n{resumed}\n</VirtualHost>")
        return "\n".join(lines) + "\n"

    def _apache2(self, *args):
        return subprocess.run([APACHE2, "-d", str(self.root), "-f", str(self.conf), *args],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=60, env={"PATH": os.environ["PATH"], "LANG": "C"})

    def _kill_stale(self):
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    cmd = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if str(self.conf).encode() in cmd:
                    try:
                        os.kill(int(d), signal.SIGKILL)
                    except ProcessLookupError:
                        pass

    def start(self):
        if self.pidfile.exists():
            self.pidfile.unlink()
        self.log_offset = self.error_log.stat().st_size if self.error_log.exists() else 0
        p = self._apache2("-k", "start")
        if p.returncode != 0:
            raise RuntimeError(f"{self.kind}: apache2 -k start failed:\n{p.stdout}\n{self.log_tail()}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                self.pid = int(self.pidfile.read_text())
            except (OSError, ValueError):
                self.pid = None
            if self.pid and len(children(self.pid)) >= self.children and self._accepts():
                time.sleep(0.3)  # let the children finish their child_init
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self.kind}: did not come up\n{self.log_tail()}")

    def _accepts(self):
        try:
            socket.create_connection(("127.0.0.1", self.ports["http"]), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self):
        pid = self.pid
        if not pid or not alive(pid):
            self.pid = None
            return
        kids = children(pid)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for k in ([pid] if alive(pid) else []) + [k for k in kids if alive(k)]:
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid = None

    def pids(self):
        return [self.pid] + children(self.pid) if self.pid and alive(self.pid) else []

    def cpu(self):
        """Seconds of CPU of the parent, its live children, and the children it has reaped."""
        if not self.pid:
            return 0.0
        st = _stat(self.pid)
        t = (st["cpu"] + st["ccpu"]) if st else 0
        for k in children(self.pid):
            s = _stat(k)
            t += s["cpu"] if s else 0
        return t / CLK_TCK

    def rss(self):
        return sum(rss(p) for p in self.pids())

    def log_tail(self, n=20):
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def problems(self):
        """Error-log lines at warn or worse (mod_ssl's AH01882 version warning is expected)."""
        try:
            text = self.error_log.read_text(errors="replace")
        except OSError:
            return []
        bad = re.compile(r"\[[a-z_0-9]+:(warn|error|crit|alert|emerg)\]|exit signal|panick", re.I)
        return [ln for ln in text.splitlines() if bad.search(ln) and "AH01882" not in ln]

    def hs_log_counts(self, offset):
        """(requests, 200s, resumed) logged under /hs/ since byte offset."""
        try:
            with open(self.hs_log, "rb") as f:
                f.seek(offset)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return 0, 0, 0
        return len(lines), sum(ln.startswith("200 ") for ln in lines), sum(ln.endswith(" R") for ln in lines)

    def hs_log_size(self):
        return self.hs_log.stat().st_size if self.hs_log.exists() else 0


# ---------------------------------------------------------------------------------------- clients
def run_cmd(cmd, timeout):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return p.returncode, p.stdout


def url(server, scheme_port, path):
    scheme = "http" if scheme_port == "http" else "https"
    return f"{scheme}://{HOST}:{server.ports[scheme_port]}{path}"


def dur(secs):
    """A duration h2load and wrk both parse: whole seconds, else milliseconds."""
    return f"{int(secs)}s" if float(secs).is_integer() else f"{int(secs * 1000)}ms"


def placement(server, port_key):
    """How the server's established connections on a port are spread over its child processes,
    largest first (e.g. [8] = all in one child): the event MPM lets whichever child's listener
    wakes first accept, and h2 throughput depends strongly on it (see docs/benchmarks.md)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{server.ports[port_key]} )"],
                         capture_output=True, text=True, timeout=10).stdout
    per = {}
    for pid in re.findall(r"pid=(\d+)", out):
        per[pid] = per.get(pid, 0) + 1
    return sorted(per.values(), reverse=True)


def h2load(server, port_key, path, secs, extra):
    p = subprocess.Popen(["h2load", "-D", dur(secs), "-t", "1", *extra, url(server, port_key, path)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(min(1.0, secs / 3))
        spread = placement(server, port_key) if shutil.which("ss") else None
        out = p.communicate(timeout=secs + 60)[0]
    finally:
        if p.poll() is None:
            p.kill()
    rc = p.returncode
    m = re.search(r"finished in ([\d.]+)s", out)
    r = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored", out)
    if not (m and r):
        raise RuntimeError(f"h2load output not understood (rc {rc}):\n{out[-1500:]}")
    ok, failed, errored = int(r.group(2)), int(r.group(3)), int(r.group(4))
    return {"ops": ok, "seconds": float(m.group(1)), "errors": failed + errored, "spread": spread,
            "detail": (out.strip().splitlines()[-12:] if failed + errored else None)}


def wrk_close(server, port_key, path, secs, conns=8):
    rc, out = run_cmd(["wrk", "-t", "1", "-c", str(conns), "-d", dur(secs), "-H", "Connection: close",
                       url(server, port_key, path)], timeout=secs + 60)
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not m:
        raise RuntimeError(f"wrk output not understood (rc {rc}):\n{out[-1500:]}")
    secs_ = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    err = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    n = int(m.group(1))
    bad = int(non2xx.group(1)) if non2xx else 0
    return {"ops": n - bad, "seconds": secs_, "errors": bad,
            "socket_errors": err, "detail": (out.strip().splitlines()[-6:] if bad or err else None)}


def hsclient(server, port_key, secs, resume, procs, threads):
    cmd = [sys.executable, str(HERE / "hsclient.py"), "--port", str(server.ports[port_key]),
           "--procs", str(procs), "--threads", str(threads), "--seconds", str(secs)]
    if port_key != "http":
        cmd.append("--tls")
    if resume:
        cmd.append("--resume")
    rc, out = run_cmd(cmd, timeout=secs + 60)
    try:
        j = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"hsclient failed (rc {rc}):\n{out[-1500:]}") from None
    return {"ops": j["ok"], "seconds": j["seconds"], "errors": j["errors"],
            "client_resumed": j["resumed"], "detail": j["first_error"] or None}


def open_idle(server, port_key, n, send_request):
    """Open n connections (TLS if port_key != 'http'); each does one keep-alive GET (or only the
    handshake) and stays open. Returns (sockets, errors, first_error)."""
    ctx = None
    if port_key != "http":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    req = f"GET /1k.bin HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()

    def one(_):
        s = socket.create_connection(("127.0.0.1", server.ports[port_key]), timeout=20)
        try:
            if ctx is not None:
                s = ctx.wrap_socket(s, server_hostname=HOST)
            if send_request:
                s.sendall(req)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    b = s.recv(65536)
                    if not b:
                        raise RuntimeError("closed before the response")
                    buf += b
                head, body = buf.split(b"\r\n\r\n", 1)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"bad response {head[:40]!r}")
                clen = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < clen:
                    b = s.recv(65536)
                    if not b:
                        raise RuntimeError("closed mid-body")
                    body += b
            return s
        except Exception:
            s.close()
            raise

    socks, errors, first = [], 0, None
    with ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(one, i) for i in range(n)]
        for f in futs:
            try:
                socks.append(f.result())
            except Exception as e:  # noqa: BLE001
                errors += 1
                first = first or f"{type(e).__name__}: {e}"
    return socks, errors, first


def still_open(socks):
    """How many of the sockets the server has not closed (a non-blocking peek sees no EOF)."""
    n = 0
    for s in socks:
        raw = s if not isinstance(s, ssl.SSLSocket) else socket.socket(fileno=os.dup(s.fileno()))
        try:
            raw.setblocking(False)
            try:
                n += raw.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        finally:
            if raw is not s:
                raw.close()
            else:
                s.setblocking(True)
    return n


# ---------------------------------------------------------------------------------------- rows
class Bench:
    def __init__(self, a):
        self.a = a
        self.servers = {}
        self.results = []  # dicts: row, cert, kind, round, value, cpu_us, ...

    def setup(self):
        if not MODULE.exists():
            sys.exit(f"{MODULE} missing: run `make build` first")
        for tool in ("h2load", "wrk"):
            if not shutil.which(tool):
                sys.exit(f"`{tool}` not found: apt-get install -y {'nghttp2-client' if tool == 'h2load' else tool}")
        w = Path(self.a.workdir)
        if w.exists():
            for k in ("ssl", "bastion", "plain"):
                Server._kill_stale(type("X", (), {"conf": w / k / "conf" / "httpd.conf"})())
            shutil.rmtree(w)
        w.mkdir(parents=True)
        os.chmod(w, 0o755)
        htdocs = w / "htdocs"
        (htdocs / "hs").mkdir(parents=True)
        for p in (htdocs, htdocs / "hs"):
            os.chmod(p, 0o755)
        rnd = random.Random(1)
        for name, size in (("1k.bin", 1024), ("1m.bin", 1 << 20)):
            data = rnd.randbytes(size)
            (htdocs / name).write_bytes(data)
            (htdocs / "hs" / name).write_bytes(data)
        for f in htdocs.rglob("*.bin"):
            os.chmod(f, 0o644)
        # A private copy: a rebuild of target/release during the run must not change what the
        # memory rows (which restart the servers) load.
        shutil.copy2(MODULE, w / "mod_bastion.so")
        os.chmod(w / "mod_bastion.so", 0o755)
        certs = make_certs(w / "certs")
        for kind in ("ssl", "bastion", "plain"):
            self.servers[kind] = Server(kind, w / kind, htdocs, certs, self.a.children)
        for s in self.servers.values():
            s.start()

    def stop(self):
        for s in self.servers.values():
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001
                print(f"stopping {s.kind}: {e}", file=sys.stderr)

    # one measurement ----------------------------------------------------------------------
    def measure(self, row, cert, kind, rnd):
        s = self.servers[kind]
        pk = "http" if kind == "plain" else cert
        secs = self.a.seconds
        if row.startswith("mem"):
            return self.measure_mem(row, s, pk, kind)
        hs_off = s.hs_log_size()
        cpu0 = s.cpu()
        if row == "h2-1k":
            r = h2load(s, pk, "/1k.bin", secs, ["-c", "8", "-m", "10"])
        elif row == "h1-1k":
            r = h2load(s, pk, "/1k.bin", secs, ["--h1", "-c", "16"])
        elif row == "h1-1m":
            r = h2load(s, pk, "/1m.bin", secs, ["--h1", "-c", "4"])
        elif row == "hs-full":
            r = hsclient(s, pk, secs, resume=False, procs=2, threads=4)
        elif row == "hs-resumed":
            r = wrk_close(s, pk, "/hs/1k.bin", secs)
        cpu = s.cpu() - cpu0
        ops = r["ops"]
        if row == "h1-1m":
            mb = ops * (1 << 20) / 1e6
            r["value"] = mb / r["seconds"]
            r["cpu_us"] = cpu * 1e6 / mb if mb else None  # per MB (10^6 bytes)
        else:
            r["value"] = ops / r["seconds"]
            r["cpu_us"] = cpu * 1e6 / ops if ops else None
        if row.startswith("hs"):
            n, n200, resumed = s.hs_log_counts(hs_off)
            r["logged"], r["resumed_frac"] = n, (resumed / n if n else None)
        return r

    def measure_mem(self, row, s, pk, kind):
        n = self.a.mem_conns if row == "mem-idle" else self.a.mem_hs_conns
        s.stop()
        s.start()
        time.sleep(0.5)
        procs0, rss0 = len(s.pids()), s.rss()
        socks, errors, first = open_idle(s, pk, n, send_request=(row == "mem-idle"))
        time.sleep(1.0)
        rss1, procs1 = s.rss(), len(s.pids())
        alive_n = still_open(socks)
        for x in socks:
            x.close()
        per = (rss1 - rss0) / 1024 / max(1, len(socks))
        return {"value": per, "cpu_us": None, "ops": len(socks), "errors": errors + (len(socks) - alive_n),
                "detail": first or (f"{len(socks) - alive_n} closed by the server before the reading"
                                    if alive_n < len(socks) else None),
                "rss_before_kib": rss0 // 1024, "rss_after_kib": rss1 // 1024,
                "procs_before": procs0, "procs_after": procs1}

    def warmup(self):
        # Every port each row will use, both protocols, with the rows' connection counts: the
        # first measured row must not pay for children and threads the MPM starts under load.
        for kind, s in self.servers.items():
            for pk in (["http"] if kind == "plain" else self.a.certs):
                h2load(s, pk, "/1k.bin", 2, ["-c", "8", "-m", "10"])
                h2load(s, pk, "/1k.bin", 2, ["--h1", "-c", "16"])

    def run(self):
        a = self.a
        for row in a.rows:
            for cert in a.certs:
                kinds = ["ssl", "bastion"] + (["plain"] if row in FLOOR_ROWS and cert == a.certs[0] else [])
                for rnd in range(a.rounds):
                    for kind in kinds:
                        t0 = time.monotonic()
                        try:
                            r = self.measure(row, cert, kind, rnd)
                        except Exception as e:  # noqa: BLE001 - a failed run is a result too
                            r = {"value": None, "cpu_us": None, "errors": -1, "detail": f"{type(e).__name__}: {e}"}
                        r.update(row=row, cert=cert if kind != "plain" else "-", kind=kind, round=rnd)
                        self.results.append(r)
                        print(f"  {row:10} {r['cert']:3} {kind:7} round {rnd + 1}: {fmt(r['value'])}"
                              f"  cpu/op {fmt(r['cpu_us'])} us  errors {r.get('errors')}"
                              + (f"  resumed {r['resumed_frac']:.0%}" if r.get("resumed_frac") is not None else "")
                              + (f"  conns/child {r['spread']}" if r.get("spread") else "")
                              + (f"  [{r['detail']}]" if r.get("detail") else "")
                              + f"  ({time.monotonic() - t0:.1f}s)", flush=True)


def fmt(v, nd=None):
    if v is None:
        return "n/a"
    if nd is None:
        nd = 0 if abs(v) >= 100 else (1 if abs(v) >= 10 else 2)
    return f"{v:,.{nd}f}"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def table(results, a):
    hdr = ("| row | cert | mod_ssl | mod_bastion | B/A | B/A paired | CPU µs/op mod_ssl | CPU µs/op bastion | CPU B/A "
           "| plain floor (value, CPU) | notes |")
    out = [hdr, "|" + "---|" * hdr.count(" | ") + "---|"]
    floors = {}
    for row in a.rows:
        pr = [r for r in results if r["row"] == row and r["kind"] == "plain"]
        if pr:
            floors[row] = (med([r["value"] for r in pr]), med([r["cpu_us"] for r in pr]))
    for row in a.rows:
        for cert in a.certs:
            sel = lambda k: [r for r in results if r["row"] == row and r["cert"] == cert and r["kind"] == k]  # noqa
            A, B = sel("ssl"), sel("bastion")
            if not A and not B:
                continue
            va, vb = med([r["value"] for r in A]), med([r["value"] for r in B])
            ca, cb = med([r["cpu_us"] for r in A]), med([r["cpu_us"] for r in B])
            ratio = vb / va if va and vb is not None else None
            # median of the per-round ratios (each B run against the A run just before it)
            pairs = [rb["value"] / ra["value"] for ra in A for rb in B
                     if ra["round"] == rb["round"] and ra["value"] and rb["value"] is not None]
            paired = med(pairs)
            cratio = cb / ca if ca and cb is not None else None
            notes = []
            errs = [(r["kind"], r.get("errors"), r.get("detail")) for r in A + B if r.get("errors")]
            for k, e, d in errs[:2]:
                notes.append(f"{k}: {e} errors" + (f" ({str(d)[:60]})" if d else ""))
            if row.startswith("hs"):
                fa, fb = med([r.get("resumed_frac") for r in A]), med([r.get("resumed_frac") for r in B])
                if fa is not None or fb is not None:
                    notes.append(f"resumed A {fmt(fa and fa * 100, 0)}% B {fmt(fb and fb * 100, 0)}%")
            if row.startswith("mem"):
                pa = med([r.get("procs_after") for r in A])
                pb = med([r.get("procs_after") for r in B])
                notes.append(f"{A[0].get('ops') if A else '?'} conns; procs A {pa} B {pb}")
            if row == "h1-1m":
                notes.append("CPU per MB")
            if a.children > 1 and any(r.get("spread") for r in A + B):
                one = lambda rs: sum(1 for r in rs if r.get("spread") and len(r["spread"]) == 1)  # noqa: E731
                notes.append(f"runs with every connection in one child: A {one(A)}/{len(A)}, B {one(B)}/{len(B)}")
            if row in FLOOR_ROWS and row in floors and cert == a.certs[0]:
                fv, fc = floors[row]
                fl = f"{fmt(fv)}, {fmt(fc)}" if fc is not None else fmt(fv)
                if fc is not None and ca and cb is not None and min(ca, cb) - fc > 0.15 * fc:  # else noise
                    notes.append(f"TLS overhead B/A {fmt((cb - fc) / (ca - fc), 2)}")
                if row.startswith("mem") and fv is not None and va and vb is not None and va - fv > 0.15 * fv:
                    notes.append(f"over floor B/A {fmt((vb - fv) / (va - fv), 2)}")
            else:
                fl = ""
            out.append(f"| {ROW_TITLE[row]} | {cert} | {fmt(va)} | {fmt(vb)} | {fmt(ratio, 2)} | {fmt(paired, 2)} | {fmt(ca)} "
                       f"| {fmt(cb)} | {fmt(cratio, 2)} | {fl} | {'; '.join(notes)} |")
    return "\n".join(out)


def machine_facts():
    def sh(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=20, shell=True).stdout.strip()
        except Exception:  # noqa: BLE001
            return "?"
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/ {print int($2/1024) \" MiB\"}' /proc/meminfo")
    return {
        "cpu": f"{os.cpu_count()} × {cpu}", "memory": mem, "kernel": platform.release(),
        "apache2": sh(f"{APACHE2} -v | head -1"),
        "openssl": sh("openssl version"),
        "h2load": sh("h2load --version"), "wrk": sh("wrk -v 2>&1 | head -1").split(" Copyright")[0],
        "python": platform.python_version(),
        "rustc": sh("rustc --version"),
        "module": f"{MODULE} (git {sh(f'git -C {REPO} rev-parse --short HEAD')}"
                  f"{'+dirty' if sh(f'git -C {REPO} status --porcelain --untracked-files=no') else ''},"
                  f" built {dt.datetime.fromtimestamp(MODULE.stat().st_mtime):%Y-%m-%d %H:%M},"
                  f" sha256 {sh(f'sha256sum {MODULE}')[:12]}; a copy is loaded)",
    }


def negotiated(server, cert):
    """Protocol, cipher and group that openssl s_client gets (for the facts section)."""
    try:
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.ports[cert]}",
                            "-servername", HOST, "-brief"], input="", capture_output=True, text=True,
                           timeout=10)
        t = p.stdout + p.stderr
        g = lambda k: (re.search(rf"{k}: *(.+)", t) or [None, "?"])[1].strip()  # noqa: E731
        return f"{g('Protocol version')} {g('Ciphersuite')} {g('(?:Server Temp Key|Negotiated TLS1.3 group|Peer Temp Key)')}"
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


METHOD = """\
# Benchmarks: mod_bastion vs mod_ssl

## Method (hand-written; `bench/run.py` keeps this section)

- `make bench` (= `python3 bench/run.py`) starts three httpd servers from one generated config that
  differ only in the TLS module: **A** mod_ssl (`SSLEngine on`, `SSLCertificateFile/KeyFile`,
  `SSLSessionCache shmcb`), **B** mod_bastion (`TLSEngine`, `TLSCertificate`, its defaults),
  **P** no TLS module (the plain-HTTP floor). Same event MPM settings (StartServers 4,
  ThreadsPerChild 64, ServerLimit 16, MaxRequestWorkers 1024; `--children 1`: one child with 256
  threads), same modules otherwise (mod_http2
  with `Protocols h2 h2c http/1.1`), same files, `KeepAliveTimeout 30`, `MaxKeepAliveRequests 0`.
  Each server listens on one port with an ECDSA P-256 leaf and one with an RSA-2048 leaf (chain:
  leaf + ECDSA CA); clients send SNI `localhost`. Servers, files and certificates are regenerated
  in `--workdir` (default `/tmp/mod_bastion-bench`) on every run; only 127.0.0.1 is used.
- Every row runs A, B, (P), A, B, (P), … for `--rounds` rounds of `--seconds` seconds; the table
  gives medians, the ratio of the medians B/A, the median of the per-round ratios ("paired",
  robust to drift between rounds) (for rates > 1 is better for mod_bastion; for memory and CPU < 1 is
  better) and the **server CPU per operation**: utime+stime of all httpd processes (parent, live
  children, reaped children) from `/proc` before and after the run, divided by the operations.
  Client and server share the 2 cores, so rates are partly client-bound; CPU per operation is the
  figure that separates the modules. "TLS overhead B/A" compares the CPU above the plain floor.
- **Where the connections land.** With several children, the event MPM lets whichever child's
  listener wakes first accept, so a client's connections may all land in one child or be spread.
  For h2 this decides the result: with all 8 h2load connections in one child, mod_http2 serves
  about 7,000 req/s at ~200 µs of CPU per request, *whichever TLS module runs*, against 12,000–17,000
  req/s at ~110 µs when they are spread. Each keep-alive run therefore records how its connections
  were spread over the children (`ss -tnp` one second in; `conns/child` in the run log, counts in
  the notes), and `--children 1` measures with one child, where every run is alike.
- Rows and clients:
  - 1 KiB over h2: `h2load -D S -t 1 -c 8 -m 10`; over http/1.1: `h2load --h1 -D S -t 1 -c 16`
    (keep-alive, connections opened once).
  - 1 MiB over http/1.1: `h2load --h1 -D S -t 1 -c 4`; MB = 10^6 bytes of body; CPU per MB.
  - Full handshakes: `bench/hsclient.py` (2 processes × 4 threads, Python `ssl`, TLS 1.3, one
    `Connection: close` GET per new connection, no session ever offered). Resumed: `wrk -t 1 -c 8
    -H 'Connection: close'` (wrk offers the previous connection's session). For both rows the
    server logs `%{SSL:SSL_SESSION_RESUMED}` per request (only under `/hs/`), and the notes show
    the fraction actually resumed.
  - Idle memory: a **fresh** server per measurement; total RSS of all httpd processes with N
    connections open minus the RSS before they were opened, divided by N. "idle keep-alive":
    500 TLS connections that each completed one keep-alive request (they park in the event MPM);
    "handshake-only": 100 connections that completed the handshake and sent nothing (each holds
    a worker thread, so fewer than the 256 started threads).
- `python3 bench/profile.py --row h1-1k --cert ec` runs one row against each server under
  `perf record -g` and prints the top DSOs/symbols (perf.data kept in its workdir).
- Not measured: TLS 1.2, client certificates, OCSP stapling, h2 bulk transfers.
"""


def write_docs(a, tbl, facts, load0, load1, started, dur, problems, cmd):
    text = DOCS.read_text() if DOCS.exists() else METHOD + "\n" + BEGIN + "\n" + END + "\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + END + "\n"
    gen = [BEGIN, "## Results (generated by `bench/run.py`; do not edit between the markers)", "",
           f"Command: `{cmd}`  ",
           f"Run: {started:%Y-%m-%d %H:%M} UTC, {dur / 60:.1f} min; {a.rounds} rounds × {a.seconds:g} s, "
           f"alternating A,B per round; idle rows {a.mem_conns} / {a.mem_hs_conns} connections; "
           f"{a.children} child process{'es' if a.children > 1 else ''}.  ",
           f"Load average at start {load0}, at end {load1}.", "",
           "Machine: " + "; ".join(f"{k}: {v}" for k, v in facts.items()), "", tbl, ""]
    if problems:
        gen += ["Error-log lines at warn or worse during the run:", "", "```"] + problems[:30] + ["```", ""]
    else:
        gen += ["No error-log lines at warn or worse (other than mod_ssl's AH01882) during the run.", ""]
    gen.append(END)
    pre, rest = text.split(BEGIN, 1)
    post = rest.split(END, 1)[1]
    DOCS.write_text(pre + "\n".join(gen) + post)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=None, help="A,B rounds per row (default 3; 1 with --quick)")
    p.add_argument("--seconds", type=float, default=None, help="seconds per run (default 5; 2 with --quick)")
    p.add_argument("--only", default="", help=f"comma-separated rows: {','.join(ROWS)}")
    p.add_argument("--certs", default=None, help="ec,rsa (default both; ec with --quick)")
    p.add_argument("--quick", action="store_true", help="a validation run: 1 round × 2 s, ECDSA only, 100 idle conns")
    p.add_argument("--mem-conns", type=int, default=None, help="idle keep-alive connections (default 500)")
    p.add_argument("--mem-hs-conns", type=int, default=100, help="handshake-only connections (default 100)")
    p.add_argument("--children", type=int, default=4,
                   help="event MPM child processes (default 4 × 64 threads; 1 = one child with 256 threads)")
    p.add_argument("--workdir", default="/tmp/mod_bastion-bench")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    p.add_argument("--docs", action="store_true", help="rewrite docs/benchmarks.md even with --quick/--only")
    a = p.parse_args()
    q = a.quick
    a.rounds = a.rounds or (1 if q else 3)
    a.seconds = a.seconds or (2 if q else 5)
    a.mem_conns = a.mem_conns or (100 if q else 500)
    a.certs = (a.certs or ("ec" if q else "ec,rsa")).split(",")
    a.rows = [r for r in (a.only.split(",") if a.only else ROWS) if r]
    for r in a.rows:
        if r not in ROWS:
            p.error(f"unknown row {r!r}; rows: {', '.join(ROWS)}")
    for c in a.certs:
        if c not in ("ec", "rsa"):
            p.error("--certs takes ec and/or rsa")
    write = a.docs or not (a.no_docs or q or a.only)
    cmd = "make bench  (= python3 bench/run.py)" if len(sys.argv) == 1 else "python3 bench/run.py " + shlex.join(sys.argv[1:])

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = Bench(a)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    started = dt.datetime.now(dt.timezone.utc)
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    t0 = time.monotonic()
    print(f"load average {load0}; rows {a.rows}; certs {a.certs}; {a.rounds} rounds × {a.seconds:g}s", flush=True)
    try:
        b.setup()
        facts = machine_facts()
        for c in a.certs:
            facts[f"negotiated ({c}) A"] = negotiated(b.servers["ssl"], c)
            facts[f"negotiated ({c}) B"] = negotiated(b.servers["bastion"], c)
        b.warmup()
        b.run()
        problems = []
        for k in ("ssl", "bastion"):
            problems += [f"{k}: {ln}" for ln in b.servers[k].problems()]
    finally:
        b.stop()
    load1 = " ".join(open("/proc/loadavg").read().split()[:3])
    dur = time.monotonic() - t0
    tbl = table(b.results, a)
    print()
    print(tbl)
    print(f"\nload average start {load0}, end {load1}; {dur / 60:.1f} min")
    if problems:
        print(f"\n{len(problems)} error-log line(s) at warn or worse:")
        print("\n".join(problems[:40]))
    raw = Path(a.workdir) / "results.json"
    raw.write_text(json.dumps({"args": vars(a), "command": cmd, "started": str(started), "minutes": dur / 60,
                               "load_start": load0, "load_end": load1, "facts": facts, "results": b.results},
                              indent=1, default=str))
    print(f"raw results: {raw}")
    if write:
        write_docs(a, tbl, facts, load0, load1, started, dur, problems, cmd)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
