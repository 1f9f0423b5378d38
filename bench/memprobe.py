#!/usr/bin/env python3
"""Where the memory of idle connections goes (not part of make bench; a diagnostic).

    python3 bench/memprobe.py [--kind bastion|ssl|plain] [--cert ec|rsa] [--conns N]
                              [--heaptrack] [--no-request] [--workdir DIR]

Starts ONE `apache2 -X` (single process, the event MPM's threads) from the config bench/run.py
generates, opens N connections that each do one keep-alive GET of 1 KiB (or, --no-request, only
the handshake) and stay open, and prints the process' RSS growth per connection (and the
anonymous memory, and the growth per kind of mapping from /proc/PID/smaps: thread stacks, the
main heap, other anonymous memory, file-backed pages such as the module's code). With
--heaptrack the server runs under `heaptrack`; the server is stopped while the connections are
still open, so heaptrack's "peak" is the state with N idle connections, and the top peak
consumers are printed (divide by N for the per-connection share).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def smaps_anon(pid):
    """KiB of private anonymous memory (heap, malloc arenas, thread stacks) resident."""
    tot = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for ln in f:
                if ln.startswith("Anonymous:"):
                    tot = int(ln.split()[1])
    except OSError:
        pass
    return tot


def by_kind(pid):
    """KiB resident by kind of mapping: thread stacks (8 MiB anonymous mappings), the main
    heap ("[heap]"), other anonymous memory (malloc arenas of threads, APR's mmap'd nodes),
    everything else (files)."""
    out = {"stacks": 0, "heap": 0, "anon": 0, "other": 0}
    kind = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for ln in f:
                parts = ln.split()
                if "-" in parts[0] and ":" not in parts[0]:
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    name = parts[5] if len(parts) > 5 else ""
                    if name == "[heap]":
                        kind = "heap"
                    elif name:
                        kind = "other"
                    elif hi - lo == 8192 * 1024:
                        kind = "stacks"
                    else:
                        kind = "anon"
                elif parts[0] == "Rss:" and kind:
                    out[kind] += int(parts[1])
    except OSError:
        pass
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", default="bastion", choices=["bastion", "ssl", "plain"])
    p.add_argument("--cert", default="ec", choices=["ec", "rsa"])
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--warm", type=int, default=64, help="connections opened and closed first (threads, arenas)")
    p.add_argument("--heaptrack", action="store_true")
    p.add_argument("--no-request", action="store_true", help="handshake only")
    p.add_argument("--workdir", default="/tmp/mod_bastion-memprobe")
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args()

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    w = Path(a.workdir)
    if w.exists():
        shutil.rmtree(w)
    w.mkdir(parents=True)
    os.chmod(w, 0o755)
    htdocs = w / "htdocs"
    htdocs.mkdir()
    os.chmod(htdocs, 0o755)
    (htdocs / "1k.bin").write_bytes(os.urandom(1024))
    os.chmod(htdocs / "1k.bin", 0o644)
    shutil.copy2(bench.MODULE, w / "mod_bastion.so")
    certs = bench.make_certs(w / "certs")
    s = bench.Server(a.kind, w / a.kind, htdocs, certs)
    cmd = [bench.APACHE2, "-X", "-d", str(s.root), "-f", str(s.conf)]
    ht_file = w / "heaptrack"
    if a.heaptrack:
        cmd = ["heaptrack", "-o", str(ht_file)] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={"PATH": os.environ["PATH"], "LANG": "C"})
    pk = "http" if a.kind == "plain" else a.cert
    try:
        deadline = time.monotonic() + 60
        while not (s._accepts() and s.pidfile.exists() and s.pidfile.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit(f"server did not come up:\n{s.log_tail()}")
            time.sleep(0.1)
        pid = int(s.pidfile.read_text())
        # Warm up: every worker thread once, malloc arenas, the first TLS handshakes.
        socks, _, _ = bench.open_idle(s, pk, a.warm, send_request=True)
        for x in socks:
            x.close()
        time.sleep(1.0)
        r0, h0, k0 = bench.rss(pid), smaps_anon(pid), by_kind(pid)
        socks, errors, first = bench.open_idle(s, pk, a.conns, send_request=not a.no_request)
        time.sleep(1.5)
        r1, h1, k1 = bench.rss(pid), smaps_anon(pid), by_kind(pid)
        n = max(1, len(socks))
        alive_n = bench.still_open(socks)
        print(f"{a.kind} {a.cert}: {len(socks)} connections ({errors} errors, {alive_n} still open"
              f"{'; ' + first if first else ''})")
        print(f"  RSS growth       {(r1 - r0) / 1024 / n:7.1f} KiB per connection ({r0 // 1024} -> {r1 // 1024} KiB)")
        print(f"  anonymous growth {(h1 - h0) / n:7.1f} KiB per connection")
        print("  by mapping, KiB per connection: " + ", ".join(
            f"{k} {(k1[k] - k0[k]) / n:.1f}" for k in k0))
        os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=120)
        for x in socks:
            x.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if a.heaptrack:
        files = sorted(w.glob("heaptrack*"))
        if not files:
            sys.exit("no heaptrack output")
        out = subprocess.run(["heaptrack_print", "-f", str(files[-1]), "--print-peaks", "1",
                              "--print-allocators", "0", "--print-temporary", "0", "--print-leaks", "0",
                              "--peak-limit", str(a.top), "--sub-peak-limit", "4"],
                             capture_output=True, text=True, timeout=600).stdout
        (w / "peaks.txt").write_text(out)
        print(out[:60000])
        print(f"(full report: {w / 'peaks.txt'}; data: {files[-1]})")


if __name__ == "__main__":
    main()
