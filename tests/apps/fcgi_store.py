#!/usr/bin/env python3
"""A small FastCGI blob store on raw sockets (stdlib only): the application behind the
encrypted-FastCGI tests, the demo and the benchmark.

    fcgi_store.py --dir DIR (--port N | --socket PATH)

PUT/POST stores STDIN under DIR/<name> (name = PATH_INFO, or SCRIPT_NAME+PATH_INFO, with "/"
turned into "_"), streaming to disk (no size limit in memory), and answers 201. GET answers 200
with Content-Length, an ETag and the bytes (streamed in 64 KiB records), or 404; HEAD the same
without the body; DELETE 204. Every request's CGI params are written to DIR/.last-params.json and
one line per request appended to DIR/.requests.log ("METHOD name bytes-received conn=N keep=0|1":
N numbers the application's connections from 1, keep is the request's FCGI_KEEP_CONN flag).

Test hooks by name: __die_midway (headers + Content-Length 1000000, 10000 bytes, then the
connection is closed without END_REQUEST), __stderr (a line on FCGI_STDERR, then 200),
__slow (sleeps 5 s first). FCGI_KEEP_CONN is honoured; FCGI_GET_VALUES is answered;
FCGI_ABORT_REQUEST ends the request.
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import threading
import time

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR, GET_VALUES, GET_VALUES_RESULT, UNKNOWN = (
    1, 2, 3, 4, 5, 6, 7, 9, 10, 11)
HDR = struct.Struct(">BBHHBB")
CHUNK = 65535


def record(rtype, rid, content=b""):
    pad = (-len(content)) % 8
    return HDR.pack(1, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def stream(rtype, rid, data):
    return b"".join(record(rtype, rid, data[i:i + CHUNK]) for i in range(0, len(data), CHUNK))


def end_request(rid, app_status=0):
    return record(END, rid, struct.pack(">IB3x", app_status, 0))


def nv_pairs(buf):
    out, i = {}, 0

    def length():
        nonlocal i
        if buf[i] >> 7:
            n = struct.unpack(">I", buf[i:i + 4])[0] & 0x7FFFFFFF
            i += 4
        else:
            n = buf[i]
            i += 1
        return n

    while i < len(buf):
        a = length()
        b = length()
        out[buf[i:i + a].decode("latin-1")] = buf[i + a:i + a + b].decode("latin-1")
        i += a + b
    return out


def nv_encode(pairs):
    out = b""
    for k, v in pairs.items():
        for s in (k, v):
            n = len(s)
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += k.encode() + v.encode()
    return out


class Journal:
    """DIR/.last-params.json and DIR/.requests.log, kept open: rewriting the params file with
    open(..., "w") truncates it, and ext4 then flushes it on close (~250 µs per request)."""

    lock = threading.Lock()
    fds = None

    @classmethod
    def record(cls, store, env, line):
        data = json.dumps(env, indent=1).encode()
        with cls.lock:
            if cls.fds is None:
                cls.fds = (os.open(os.path.join(store, ".last-params.json"), os.O_WRONLY | os.O_CREAT, 0o644),
                           os.open(os.path.join(store, ".requests.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
            params, log = cls.fds
            os.pwrite(params, data, 0)
            os.ftruncate(params, len(data))
            os.write(log, line.encode())


class Conn:
    serial = 0
    serial_lock = threading.Lock()

    def __init__(self, sock, store):
        self.sock, self.store, self.buf, self.pos = sock, store, b"", 0
        with Conn.serial_lock:
            Conn.serial += 1
            self.id = Conn.serial

    def read_exact(self, n):
        # self.buf[self.pos:] is unread; it is compacted only before a recv, so each byte is
        # copied a bounded number of times however many records one recv brought.
        while len(self.buf) - self.pos < n:
            rest = self.buf[self.pos:]
            chunk = self.sock.recv(max(262144, n - len(rest)))
            if not chunk:
                return None
            self.buf, self.pos = rest + chunk, 0
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def next_record(self):
        h = self.read_exact(8)
        if h is None:
            return None
        _, rtype, rid, clen, plen, _ = HDR.unpack(h)
        content = self.read_exact(clen + plen)
        if content is None:
            return None
        return rtype, rid, content[:clen]

    def serve(self):
        try:
            while self.request():
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self.sock.close()

    def request(self):
        """Serves one request; returns whether to keep the connection."""
        while True:
            rec = self.next_record()
            if rec is None:
                return False
            rtype, rid, content = rec
            if rtype == GET_VALUES:
                asked = nv_pairs(content)
                known = {"FCGI_MAX_CONNS": "100", "FCGI_MAX_REQS": "100", "FCGI_MPXS_CONNS": "0"}
                self.sock.sendall(record(GET_VALUES_RESULT, 0, nv_encode({k: known[k] for k in asked if k in known})))
                continue
            if rtype == BEGIN:
                break
            if rid == 0:
                self.sock.sendall(record(UNKNOWN, 0, bytes([rtype]) + b"\0" * 7))
        keep = bool(content[2] & 1)
        params = b""
        while True:
            rec = self.next_record()
            if rec is None:
                return False
            rtype, _, content = rec
            if rtype == ABORT:
                self.sock.sendall(end_request(rid, 1))
                return keep
            if rtype == PARAMS:
                if not content:
                    break
                params += content
        env = nv_pairs(params)
        method = env.get("REQUEST_METHOD", "GET")
        name = (env.get("PATH_INFO") or (env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", ""))).strip("/")
        name = name.replace("/", "_") or "_root"
        path = os.path.join(self.store, name)
        tmp = os.path.join(self.store, f".upload-{threading.get_ident()}-{time.monotonic_ns()}")
        received = 0
        out = open(tmp, "wb") if method in ("PUT", "POST") else None
        try:
            while True:
                rec = self.next_record()
                if rec is None:
                    return False
                rtype, _, content = rec
                if rtype == ABORT:
                    self.sock.sendall(end_request(rid, 1))
                    return keep
                if rtype == STDIN:
                    if not content:
                        break
                    received += len(content)
                    if out:
                        out.write(content)
            if out:
                out.close()
                out = None
                # unlink + rename, not os.replace: ext4 (auto_da_alloc) flushes the new file's
                # data to disk when a rename replaces an existing file, a few hundred µs per PUT
                # that would make the benchmark measure the disk. A GET racing a PUT of the same
                # name may see 404; nothing here does that.
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                os.rename(tmp, path)
        finally:
            if out:
                out.close()
            if os.path.exists(tmp):
                os.unlink(tmp)
        Journal.record(self.store, env, f"{method} {name} {received} conn={self.id} keep={int(keep)}\n")
        return self.respond(rid, method, name, path, keep)

    def respond(self, rid, method, name, path, keep):
        send = self.sock.sendall
        if name.endswith("__die_midway"):
            send(stream(STDOUT, rid, b"Content-Type: application/octet-stream\r\n"
                                      b"Content-Length: 1000000\r\n\r\n" + b"x" * 10000))
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        if name.endswith("__stderr"):
            send(stream(STDERR, rid, b"fcgi_store: a line on stderr\n"))
            send(stream(STDOUT, rid, b"Content-Type: text/plain\r\n\r\nok\n") + record(STDOUT, rid) + end_request(rid))
            return keep
        if name.endswith("__slow"):
            time.sleep(5)
        if method in ("PUT", "POST"):
            body = b"stored\n"
            send(stream(STDOUT, rid, b"Status: 201 Created\r\nContent-Type: text/plain\r\n"
                                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
                 + record(STDOUT, rid) + end_request(rid))
            return keep
        if method == "DELETE":
            existed = os.path.exists(path)
            if existed:
                os.unlink(path)
            head = b"Status: 204 No Content\r\n\r\n" if existed else b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot found\n"
            send(stream(STDOUT, rid, head) + record(STDOUT, rid) + end_request(rid))
            return keep
        if method not in ("GET", "HEAD"):
            send(stream(STDOUT, rid, b"Status: 405 Method Not Allowed\r\nContent-Type: text/plain\r\n\r\nno\n")
                 + record(STDOUT, rid) + end_request(rid))
            return keep
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            send(stream(STDOUT, rid, b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot found\n")
                 + record(STDOUT, rid) + end_request(rid))
            return keep
        with f:
            st = os.fstat(f.fileno())
            etag = hashlib.sha1(f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()).hexdigest()[:16]
            send(stream(STDOUT, rid, b"Content-Type: application/octet-stream\r\n"
                                      b"Content-Length: %d\r\nETag: \"%s\"\r\n\r\n" % (st.st_size, etag.encode())))
            if method == "GET":
                while True:
                    data = f.read(CHUNK * 16)
                    if not data:
                        break
                    send(stream(STDOUT, rid, data))
        send(record(STDOUT, rid) + end_request(rid))
        return keep


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--socket")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    if a.socket:
        if os.path.exists(a.socket):
            os.unlink(a.socket)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(a.socket)
        os.chmod(a.socket, 0o777)
    else:
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", a.port))
    srv.listen(128)
    while True:
        c, _ = srv.accept()
        if c.family == socket.AF_INET:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Conn(c, a.dir).serve, daemon=True).start()


if __name__ == "__main__":
    main()
