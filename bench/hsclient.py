#!/usr/bin/env python3
"""Connection-rate client for bench/run.py: one request per new connection.

    hsclient.py --port P [--tls] [--resume] [--procs N] [--threads T] [--seconds S] [--path /hs/1k.bin]

Each thread loops until the deadline: connect, (TLS 1.3 handshake), GET with `Connection: close`,
read to EOF, close. Without --resume no session is ever offered (a full handshake per connection;
each thread has its own SSLContext and never passes `session=`). With --resume every connection
offers the session (ticket) received on the thread's previous connection. Prints one JSON line:
{"ok": n, "resumed": n, "errors": n, "seconds": wall, "first_error": "..."}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import ssl
import threading
import time


def make_ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the client's verification cost is not what we measure
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def one(ctx, host, port, req, session):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname=host, session=session)
    try:
        s.sendall(req)
        buf = bytearray()
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
        if not buf.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"bad response: {bytes(buf[:80])!r}")
        if ctx is None:
            return False, None
        return s.session_reused, s.session
    finally:
        s.close()


def proc_main(a, t_end, q):
    lock = threading.Lock()
    tot = {"ok": 0, "resumed": 0, "errors": 0, "first_error": ""}
    req = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\nConnection: close\r\n\r\n".encode()

    def loop():
        ctx = make_ctx() if a.tls else None
        ok = res = err = 0
        first = ""
        session = None
        while time.time() < t_end:
            try:
                reused, sess = one(ctx, a.host, a.port, req, session if a.resume else None)
                ok += 1
                res += bool(reused)
                session = sess
            except Exception as e:  # noqa: BLE001 - counted and reported
                err += 1
                first = first or f"{type(e).__name__}: {e}"
                session = None
                time.sleep(0.01)
        with lock:
            tot["ok"] += ok
            tot["resumed"] += res
            tot["errors"] += err
            tot["first_error"] = tot["first_error"] or first

    ts = [threading.Thread(target=loop) for _ in range(a.threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put(tot)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="localhost")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--path", default="/hs/1k.bin")
    a = p.parse_args()
    t0 = time.time()
    t_end = t0 + a.seconds
    q = mp.Queue()
    ps = [mp.Process(target=proc_main, args=(a, t_end, q)) for _ in range(a.procs)]
    for x in ps:
        x.start()
    res = [q.get() for _ in ps]
    for x in ps:
        x.join()
    wall = time.time() - t0
    out = {"ok": sum(r["ok"] for r in res), "resumed": sum(r["resumed"] for r in res),
           "errors": sum(r["errors"] for r in res), "seconds": wall,
           "first_error": next((r["first_error"] for r in res if r["first_error"]), "")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
