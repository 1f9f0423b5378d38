#!/usr/bin/env python3
"""Managed-domain benchmark: how long from `apache2 -k start` (empty store, fresh pebble) until
the first HTTPS request is answered with the issued certificate, for http-01 and tls-alpn-01
(median of --runs runs each), and how many ACME requests one first issuance makes (account,
order, authorizations, challenges, finalize, certificate: pebble's handled-request count).

    python3 bench/md.py [--runs 5] [--docs]

Pebble runs with PEBBLE_VA_NOSLEEP=1, PEBBLE_WFE_NONCEREJECT=0 and PEBBLE_AUTHZREUSE=0 so each run
does the same work; the client polls every 50 ms with curl, verifying against pebble's root.
One managed domain with two names, one key (the default), the tests' harness server (event MPM).
--docs writes the results into docs/benchmarks.md between the bench-md markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from docsection import problems_text, replace_section  # noqa: E402
from harness import GEN_ROOT, HttpdServer, curl  # noqa: E402
from harness.pebble import Pebble, md_conf  # noqa: E402

REPO = HERE.parent
DOCS = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench-md:generated:begin -->", "<!-- bench-md:generated:end -->"
NAMES = ["bench-md.test", "www.bench-md.test"]
ENV = {"PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}


PHASES = [("watchdog's first drive", r"renewal due"), ("order done (certificate staged)", r"received certificate"),
          ("activated in a child", r"new certificate active in this child")]


def log_time(line: str) -> float | None:
    m = re.match(r"\[\w+ (\w+ \d+ [\d:.]+ \d+)\]", line)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), "%b %d %H:%M:%S.%f %Y").replace(tzinfo=dt.timezone.utc).timestamp()


def phases(s: HttpdServer, t_start: float) -> list[float | None]:
    """Seconds from start (wall clock) to the first error-log line of each phase."""
    lines = s.log_lines()
    out = []
    for _, pat in PHASES:
        hit = next((ln for ln in lines if re.search(pat, ln)), None)
        t = log_time(hit) if hit else None
        out.append(None if t is None else t - t_start)
    return out


def one_run(challenge: str, i: int) -> tuple[float, int, list[str], list[float | None]]:
    """Seconds from start to the first request served with the issued certificate, ACME
    requests made, the error-log problems and the phase times."""
    s = HttpdServer(GEN_ROOT / "bench-md" / f"{challenge}-{i}")
    s.set_log_level("bastion", "info")  # the phase lines; a handful per run
    p = Pebble(s.root / "pebble", http_port=s.http_port, tls_port=s.port("https"), env=ENV).start()
    try:
        s.add_conf(md_conf(s, p, NAMES, challenge))
        root = s.write_file("issuing-root.pem", p.issuing_root(), base=s.root / "conf")
        before = p.acme_requests()
        t0 = time.monotonic()
        wall0 = time.time()
        s.start()
        url = f"https://{NAMES[0]}:{s.port('https')}/"
        while True:
            r = curl(url, resolve=True, cacert=root, timeout=5)
            if r.returncode == 0 and r.status != 503:
                break
            if time.monotonic() - t0 > 120:
                raise RuntimeError(f"{challenge}: not issued within 120 s: {s.log_tail()}")
            time.sleep(0.05)
        elapsed = time.monotonic() - t0
        time.sleep(0.5)  # the driver's last requests (none expected after the download)
        return elapsed, p.acme_requests() - before, s.check_log(raise_=False), phases(s, wall0)
    finally:
        s.close()
        p.stop()



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--docs", action="store_true", help="write the results into docs/benchmarks.md")
    a = ap.parse_args()
    cmd = "python3 bench/md.py" + (" " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else "")
    started = dt.datetime.now(dt.timezone.utc)
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    t0 = time.monotonic()
    rows, problems = [], []
    for challenge in ("http-01", "tls-alpn-01"):
        times, reqs, ph = [], [], []
        for i in range(a.runs):
            secs, n, probs, phs = one_run(challenge, i)
            print(f"{challenge} run {i + 1}: {secs:.2f} s, {n} ACME requests, phases "
                  f"{['-' if x is None else round(x, 2) for x in phs]}", flush=True)
            times.append(secs)
            reqs.append(n)
            ph.append(phs)
            problems += [f"{challenge}: {ln}" for ln in probs]

        def med_phase(k):
            xs = [r[k] for r in ph if r[k] is not None]
            return f"{statistics.median(xs):.2f}" if xs else "–"
        rows.append(f"| {challenge} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} "
                    f"| {' | '.join(med_phase(k) for k in range(len(PHASES)))} "
                    f"| {statistics.median(reqs):g} ({min(reqs)}–{max(reqs)}) |")
    load1 = " ".join(open("/proc/loadavg").read().split()[:3])
    block = "\n".join([
        "## Managed domains: time to the first certificate (generated by `bench/md.py`; do not edit "
        "between the markers)", "",
        f"Command: `{cmd}` (or `make bench-md`)  ",
        f"Run: {started:%Y-%m-%d %H:%M} UTC, {(time.monotonic() - t0) / 60:.1f} min; {a.runs} runs per "
        f"challenge, each with an empty store and a fresh pebble 2.4.0 ({', '.join(f'{k}={v}' for k, v in ENV.items())}, "
        "PEBBLE_VA_NOSLEEP=1).  ",
        f"Load average at start {load0}, at end {load1}.", "",
        "Seconds from `apache2 -k start` until curl gets a non-503 answer over a certificate that chains "
        "to pebble's root (polling every 50 ms), and ACME requests pebble handled for that first issuance "
        f"(one MD with two names, {NAMES[0]} and {NAMES[1]}, one key; a new account included):", "",
        "The phase columns are medians of the error log's time stamps (LogLevel bastion:info), seconds "
        "from start: " + "; ".join(f"{n} (`{pat}`)" for n, pat in PHASES) + ".", "",
        "| challenge | median s | min s | max s | " + " | ".join(n + ", s" for n, _ in PHASES)
        + " | ACME requests, median (range) |",
        "|---|---:|---:|---:|" + "---:|" * len(PHASES) + "---:|",
        *rows, "",
        problems_text(problems), ""])
    print()
    print(block)
    if a.docs:
        replace_section(DOCS, BEGIN, END, block)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
