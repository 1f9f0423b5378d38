#!/usr/bin/env python3
"""Profile one benchmark row on mod_ssl and mod_bastion with `perf record` (not part of make bench).

    python3 bench/profile.py [--row h1-1k] [--cert ec] [--seconds 8] [--top 25] [--workdir DIR]

Starts the same servers as bench/run.py, runs the row's client against each server while
`perf record -F 999 -g` samples all of its httpd processes, and prints the top symbols
(self time, `perf report --no-children --sort dso,sym`). perf.data files stay in the workdir.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--row", default="h1-1k", choices=[r for r in bench.ROWS if not r.startswith("mem")])
    p.add_argument("--cert", default="ec", choices=["ec", "rsa"])
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--workdir", default="/tmp/mod_bastion-bench-profile")
    a = p.parse_args()
    args = bench.argparse.Namespace(workdir=a.workdir, seconds=a.seconds, mem_conns=0, mem_hs_conns=0, children=4,
                                     certs=[a.cert])
    b = bench.Bench(args)
    try:
        b.setup()
        b.warmup()
        for kind in ("ssl", "bastion"):
            s = b.servers[kind]
            data = Path(a.workdir) / f"perf-{kind}-{a.row}-{a.cert}.data"
            pids = ",".join(str(x) for x in s.pids())
            perf = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-o", str(data), "-p", pids],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            r = b.measure(a.row, a.cert, kind, 0)
            perf.send_signal(2)
            perf.wait(timeout=60)
            print(f"\n=== {kind}: {a.row} {a.cert}: {bench.fmt(r['value'])}/s, server CPU "
                  f"{bench.fmt(r['cpu_us'])} us/op (under perf)")
            rep = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio", "-g", "none",
                                  "--percent-limit", "0.7", "--sort", "dso,sym"],
                                 capture_output=True, text=True, timeout=300).stdout
            lines = [ln for ln in rep.splitlines() if ln.strip() and not ln.startswith("#")]
            print("\n".join(lines[: a.top]))
    finally:
        b.stop()


if __name__ == "__main__":
    main()
