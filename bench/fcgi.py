#!/usr/bin/env python3
"""Encrypted FastCGI benchmark: mod_bastion's encrypt-script handler against stock mod_proxy_fcgi
(no encryption) in front of the same FastCGI application, in one run.

    python3 bench/fcgi.py [--rounds 3] [--seconds 5] [--quick] [--docs]

Servers (one apache2 each, same MPM settings and modules but the one under test):
  A  mod_proxy_fcgi:  ProxyPass /store/ fcgi://127.0.0.1:APP_A/
  B  mod_bastion:     FastCgiExternalServer .../store -host 127.0.0.1:APP_B, two ports:
                      B-ctr (FastCgiCipher aes-256-ctr) and B-gcm (aes-256-gcm)
Each has its own instance of tests/apps/fcgi_store.py; B also has bastion-keyserver (role both)
and memcached. Rows run A, B-ctr, B-gcm alternately for --rounds rounds; medians, ratios B/A and
the server's CPU per operation (utime+stime of all httpd processes from /proc).
Then the cipher engines alone (examples/throughput) and the key lookup latencies
(examples/keylatency). --docs writes the results into docs/benchmarks.md between the
bench-fcgi markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import run as tlsbench  # noqa: E402  (the TLS benchmark: process, CPU and h2load helpers)
from docsection import problems_text, replace_section  # noqa: E402
from harness.fcgi import FcgiApp, KeyServer, Memcached  # noqa: E402

REPO = tlsbench.REPO
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench-fcgi:generated:begin -->", "<!-- bench-fcgi:generated:end -->"
PASSWORD = "bench module password"
ROWS = ["get-1k", "put-1k", "get-1m", "put-1m"]
TITLE = {"get-1k": "GET 1 KiB, req/s", "put-1k": "PUT (POST) 1 KiB, req/s",
         "get-1m": "GET 1 MiB, MB/s", "put-1m": "PUT (POST) 1 MiB, MB/s"}
SIDES = ["A", "B-ctr", "B-gcm"]


class FServer(tlsbench.Server):
    """An apache2 for one side: 'proxy' (mod_proxy_fcgi) or 'bastion' (encrypt-script)."""

    PORTS = ("http", "ctr", "gcm")

    def __init__(self, kind, root: Path, htdocs: Path, app: FcgiApp, ks: KeyServer | None = None,
                 mc: Memcached | None = None):
        self.app, self.ks, self.mc = app, ks, mc
        super().__init__(kind, root, htdocs, None)
        (root / "conf" / "mime.types").write_text("application/octet-stream bin\n")

    def config(self):
        r, m = self.root, tlsbench.MODDIR
        mods = ["authz_core", "mime", "dir"]
        lines = [
            f'ServerRoot "{r}"', "ServerName localhost", f'DefaultRuntimeDir "{r}/run"',
            f'PidFile "{self.pidfile}"', f'ErrorLog "{self.error_log}"', "LogLevel warn",
            "User www-data", "Group www-data", "Timeout 60", "KeepAlive On", "KeepAliveTimeout 30",
            "MaxKeepAliveRequests 0", f"Listen 127.0.0.1:{self.ports['http']}",
            f'LoadModule mpm_event_module "{m}/mod_mpm_event.so"', tlsbench.mpm_conf(),
            *[f'LoadModule {x}_module "{m}/mod_{x}.so"' for x in mods],
            f'TypesConfig "{r}/conf/mime.types"', f'DocumentRoot "{self.htdocs}"',
            f'<Directory "{self.htdocs}">\n  Require all granted\n</Directory>',
        ]
        if self.kind == "proxy":
            lines += [f'LoadModule proxy_module "{m}/mod_proxy.so"',
                      f'LoadModule proxy_fcgi_module "{m}/mod_proxy_fcgi.so"',
                      f'ProxyPass "/store/" "fcgi://127.0.0.1:{self.app.port}/store/" enablereuse=on']
        else:
            ks, mc = self.ks, self.mc
            lines += [
                f'LoadModule bastion_module "{self.root.parent / "mod_bastion.so"}"',
                f"FastCgiExternalServer {self.htdocs}/store -host 127.0.0.1:{self.app.port} "
                f"-masterkeyserver {ks.url} -datakeyserver {ks.url}",
                f"FastCgiMemcachedServer {mc.address}", "FastCgiUserName module",
                f'FastCgiPassword "{PASSWORD}"', f"FastCgiKeyServerCA {ks.ca_path}",
            ]
            for c in ("ctr", "gcm"):
                lines += [f"Listen 127.0.0.1:{self.ports[c]}",
                          f"<VirtualHost 127.0.0.1:{self.ports[c]}>\n  ServerName localhost\n"
                          f"  FastCgiCipher aes-256-{c}\n</VirtualHost>"]
        return "\n".join(lines) + "\n"


def side_port(side):
    return {"A": ("proxy", "http"), "B-ctr": ("bastion", "ctr"), "B-gcm": ("bastion", "gcm")}[side]


def url(server, port_key, path):
    return f"http://127.0.0.1:{server.ports[port_key]}{path}"


def h2load(server, port_key, path, secs, extra):
    rc, out = tlsbench.run_cmd(["h2load", "--h1", "-D", tlsbench.dur(secs), "-t", "1", *extra,
                                url(server, port_key, path)], timeout=secs + 60)
    import re
    m = re.search(r"finished in ([\d.]+)s", out)
    r = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (m and r and codes):
        raise RuntimeError(f"h2load output not understood (rc {rc}):\n{out[-1500:]}")
    ok2xx = int(codes.group(1))
    bad = int(r.group(3)) + int(r.group(4)) + sum(int(codes.group(i)) for i in (2, 3, 4))
    return {"ops": ok2xx, "seconds": float(m.group(1)), "errors": bad}


class Bench:
    def __init__(self, a):
        self.a = a
        self.results = []
        self.parts = []

    def setup(self):
        w = Path(self.a.workdir)
        if w.exists():
            for k in ("proxy", "bastion"):
                tlsbench.Server._kill_stale(type("X", (), {"conf": w / k / "conf" / "httpd.conf"})())
            subprocess.run(["rm", "-rf", str(w)], check=True)
        w.mkdir(parents=True)
        os.chmod(w, 0o755)
        htdocs = w / "htdocs"
        htdocs.mkdir()
        os.chmod(htdocs, 0o755)
        tlsbench.shutil.copy2(tlsbench.MODULE, w / "mod_bastion.so")
        rnd = random.Random(1)
        self.bodies = {}
        for name, size in (("1k", 1024), ("1m", 1 << 20)):
            p = w / f"body-{name}.bin"
            p.write_bytes(rnd.randbytes(size))
            self.bodies[name] = p
        ks = KeyServer(w / "keyserver")
        ks.add_user("module", PASSWORD)
        self.parts.append(ks.start())
        mc = Memcached()
        self.parts.append(mc.start())
        app_a, app_b = FcgiApp(w / "app-a"), FcgiApp(w / "app-b")
        self.parts += [app_a.start(), app_b.start()]
        self.ks, self.mc = ks, mc
        self.servers = {"proxy": FServer("proxy", w / "proxy", htdocs, app_a),
                        "bastion": FServer("bastion", w / "bastion", htdocs, app_b, ks, mc)}
        for s in self.servers.values():
            s.start()
        # The objects the GET rows read, stored through each side (ciphertext on B).
        for side in SIDES:
            kind, pk = side_port(side)
            for name, body in self.bodies.items():
                tag = side.lower().replace("-", "")
                subprocess.run(["curl", "-sf", "-o", "/dev/null", "-T", str(body),
                                url(self.servers[kind], pk, f"/store/obj-{tag}-{name}")], check=True)

    def stop(self):
        for s in getattr(self, "servers", {}).values():
            s.stop()
        for p in reversed(self.parts):
            p.stop()

    def measure(self, row, side):
        kind, pk = side_port(side)
        s = self.servers[kind]
        tag = side.lower().replace("-", "")
        size = "1k" if row.endswith("1k") else "1m"
        conns = ["-c", "8"] if size == "1k" else ["-c", "4"]
        cpu0 = s.cpu()
        if row.startswith("get"):
            r = h2load(s, pk, f"/store/obj-{tag}-{size}", self.a.seconds, conns)
        else:
            r = h2load(s, pk, f"/store/up-{tag}-{size}", self.a.seconds,
                       conns + ["-d", str(self.bodies[size])])
        cpu = s.cpu() - cpu0
        if size == "1m":
            mb = r["ops"] * (1 << 20) / 1e6
            r["value"], r["cpu_us"] = mb / r["seconds"], (cpu * 1e6 / mb if mb else None)
        else:
            r["value"], r["cpu_us"] = r["ops"] / r["seconds"], (cpu * 1e6 / r["ops"] if r["ops"] else None)
        return r

    def run(self):
        for row in self.a.rows:
            for rnd in range(self.a.rounds):
                for side in SIDES:
                    try:
                        r = self.measure(row, side)
                    except Exception as e:  # noqa: BLE001 - a failed run is a result too
                        r = {"value": None, "cpu_us": None, "errors": -1, "detail": str(e)[:200]}
                    r.update(row=row, side=side, round=rnd)
                    self.results.append(r)
                    print(f"  {row:7} {side:6} round {rnd + 1}: {tlsbench.fmt(r['value'])}  cpu/op "
                          f"{tlsbench.fmt(r['cpu_us'])} us  errors {r.get('errors')}", flush=True)

    def table(self):
        med, fmt = tlsbench.med, tlsbench.fmt
        out = ["| row | mod_proxy_fcgi (A) | bastion CTR | bastion GCM | CTR/A | GCM/A | CPU µs/op A "
               "| CPU CTR | CPU GCM | CPU CTR/A | CPU GCM/A | notes |", "|" + "---|" * 12]
        for row in self.a.rows:
            sel = {s: [r for r in self.results if r["row"] == row and r["side"] == s] for s in SIDES}
            v = {s: med([r["value"] for r in sel[s]]) for s in SIDES}
            c = {s: med([r["cpu_us"] for r in sel[s]]) for s in SIDES}
            ratio = lambda x, y: fmt(x / y, 2) if x is not None and y else "n/a"  # noqa: E731
            errs = sum(max(0, r.get("errors") or 0) for s in SIDES for r in sel[s])
            notes = ("CPU per MB" if row.endswith("1m") else "") + (f"; {errs} errors" if errs else "")
            out.append(f"| {TITLE[row]} | {fmt(v['A'])} | {fmt(v['B-ctr'])} | {fmt(v['B-gcm'])} "
                       f"| {ratio(v['B-ctr'], v['A'])} | {ratio(v['B-gcm'], v['A'])} | {fmt(c['A'])} "
                       f"| {fmt(c['B-ctr'])} | {fmt(c['B-gcm'])} | {ratio(c['B-ctr'], c['A'])} "
                       f"| {ratio(c['B-gcm'], c['A'])} | {notes.strip('; ')} |")
        return "\n".join(out)

    def extras(self):
        ex = REPO / "target" / "release" / "examples"
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "bastion-seal", "--example", "throughput",
                        "--example", "keylatency"], cwd=REPO, check=True)
        thr = subprocess.run([str(ex / "throughput"), "256"], capture_output=True, text=True, check=True).stdout
        env = dict(os.environ, KL_URL=self.ks.url, KL_USER="module", KL_PASSWORD=PASSWORD,
                   KL_CA=str(self.ks.ca_path), KL_MEMCACHED=self.mc.address)
        lat = subprocess.run([str(ex / "keylatency"), "200"], capture_output=True, text=True, check=True,
                             env=env).stdout
        return thr.strip(), lat.strip()



def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--only", default="", help=f"comma-separated rows: {','.join(ROWS)}")
    p.add_argument("--quick", action="store_true", help="1 round × 2 s")
    p.add_argument("--workdir", default="/tmp/mod_bastion-bench-fcgi")
    p.add_argument("--docs", action="store_true", help="write the results into docs/benchmarks.md")
    a = p.parse_args()
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.seconds = a.seconds or (2 if a.quick else 5)
    a.rows = [r for r in (a.only.split(",") if a.only else ROWS) if r]
    cmd = "python3 bench/fcgi.py" + (" " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else "")
    started = dt.datetime.now(dt.timezone.utc)
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    t0 = time.monotonic()
    b = Bench(a)
    try:
        b.setup()
        b.run()
        thr, lat = b.extras()
        problems = [f"{k}: {ln}" for k, s in b.servers.items() for ln in s.problems()]
    finally:
        b.stop()
    load1 = " ".join(open("/proc/loadavg").read().split()[:3])
    tbl = b.table()
    block = "\n".join([
        "## Encrypted FastCGI: results (generated by `bench/fcgi.py`; do not edit between the markers)", "",
        f"Command: `{cmd}`  ",
        f"Run: {started:%Y-%m-%d %H:%M} UTC, {(time.monotonic() - t0) / 60:.1f} min; {a.rounds} rounds × "
        f"{a.seconds:g} s, alternating A, B-ctr, B-gcm per round; h2load --h1, 8 connections (1 KiB) or 4 "
        f"(1 MiB).  ", f"Load average at start {load0}, at end {load1}.", "", tbl, "",
        "Cipher engines alone, one core (`cargo run --release -p bastion-seal --example throughput 256`):", "",
        "```", thr, "```", "",
        "Data-key lookups (`examples/keylatency`, against the same key server and memcached):", "",
        "```", lat, "```", "",
        problems_text(problems), ""])
    print()
    print(block)
    if a.docs:
        replace_section(DOCS, BEGIN, END, block)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
