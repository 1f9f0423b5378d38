#!/usr/bin/env python3
"""`make run`: start apache2 with mod_bastion from conf/demo.conf.in, in the foreground, with
the parts of the encrypted-FastCGI demo: our key server, memcached and a FastCGI blob store.

The ServerRoot is generated under build/demo; ports are on 127.0.0.1 (8080 if free).
Ctrl-C stops everything.
"""
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SO = Path(os.environ.get("BASTION_MODULE", ROOT / "target/release/libmod_bastion.so"))
APACHE2 = os.environ.get("APACHE2", "/usr/sbin/apache2")
MODULES = "/usr/lib/apache2/modules"
MODULE_PASSWORD = "demo module password"

# The key server, memcached and FastCGI app helpers are the test harness's (one piece for both).
sys.path.insert(0, str(ROOT / "tests"))


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return s.getsockname()[1]
        except OSError:
            continue
        finally:
            s.close()
    raise SystemExit("no free port on 127.0.0.1")


def make_certificate(conf_dir: Path) -> None:
    """A throwaway CA and a certificate for localhost/127.0.0.1 (kept across runs)."""
    if (conf_dir / "demo-cert.pem").exists():
        return
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    ca_key, ca = conf_dir / "demo-ca.key", conf_dir / "demo-ca.pem"
    key, csr, cert = conf_dir / "demo-key.pem", conf_dir / "demo.csr", conf_dir / "demo-cert.pem"
    ext = conf_dir / "demo.ext"
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca), "-days", "30", "-subj", "/CN=mod_bastion demo CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "30", "-extfile", str(ext))
    for k in (ca_key, key):
        k.chmod(0o600)


def main() -> int:
    if not SO.exists():
        print(f"run_demo: {SO} is missing: run `make` first", file=sys.stderr)
        return 1
    sr = ROOT / "build" / "demo"
    for d in ("conf", "htdocs", "logs", "run"):
        (sr / d).mkdir(parents=True, exist_ok=True)
    for p in (ROOT / "build", sr, sr / "htdocs"):
        p.chmod(0o755)
    http_port = free_port(int(os.environ.get("DEMO_HTTP_PORT", "8080")))
    https_port = free_port(int(os.environ.get("DEMO_HTTPS_PORT", "8443")))
    make_certificate(sr / "conf")
    (sr / "htdocs" / "index.html").write_text(
        "<!DOCTYPE html><html><head><title>mod_bastion demo</title></head><body>"
        "<h1>mod_bastion demo</h1><p>See <a href='/bastion-info'>/bastion-info</a>.</p>"
        "</body></html>\n"
    )
    from harness.fcgi import FcgiApp, KeyServer, Memcached  # noqa: E402 (needs sys.path above)

    helpers = []
    try:
        ks = KeyServer(sr / "keyserver")
        ks.add_user("module", MODULE_PASSWORD)
        helpers.append(ks.start())
        mc = Memcached()
        helpers.append(mc.start())
        app = FcgiApp(sr / "store")
        helpers.append(app.start())
    except Exception as e:  # noqa: BLE001 (any failure: stop what started, say why)
        for h in reversed(helpers):
            h.stop()
        print(f"run_demo: starting the encrypted-FastCGI parts failed: {e}", file=sys.stderr)
        return 1
    try:
        return serve(sr, http_port, https_port, ks, mc, app)
    finally:
        for h in reversed(helpers):
            h.stop()


def serve(sr: Path, http_port: int, https_port: int, ks, mc, app) -> int:
    conf = (ROOT / "conf" / "demo.conf.in").read_text()
    for k, v in {
        "@SERVER_ROOT@": str(sr),
        "@HTTP_PORT@": str(http_port),
        "@HTTPS_PORT@": str(https_port),
        "@MODULES@": MODULES,
        "@BASTION_SO@": str(SO),
        "@APP_PORT@": str(app.port),
        "@KEYSERVER@": ks.url,
        "@KEYSERVER_CA@": str(ks.ca_path),
        "@MEMCACHED_PORT@": str(mc.port),
        "@MODULE_PASSWORD@": MODULE_PASSWORD,
    }.items():
        conf = conf.replace(k, v)
    conf_file = sr / "conf" / "httpd.conf"
    conf_file.write_text(conf)

    base = [APACHE2, "-d", str(sr), "-f", str(conf_file)]
    check = subprocess.run(base + ["-t"], capture_output=True, text=True)
    if check.returncode != 0:
        print(check.stdout + check.stderr, file=sys.stderr)
        return 1
    print(f"mod_bastion demo (ServerRoot {sr})")
    print(f"  http://127.0.0.1:{http_port}/")
    print(f"  http://127.0.0.1:{http_port}/bastion-info")
    print(f"  https://localhost:{https_port}/bastion-info   (TLS by rustls; HTTP/2)")
    print(f"  try: curl -s http://127.0.0.1:{http_port}/bastion-info")
    print(f"       curl -s --http2 --cacert {sr}/conf/demo-ca.pem https://localhost:{https_port}/bastion-info -w '%{{http_version}}\\n'")
    print(f"  encrypted FastCGI: /store/ -> FastCGI blob store on 127.0.0.1:{app.port}, key server {ks.url},")
    print(f"                     memcached 127.0.0.1:{mc.port}; the store keeps only ciphertext in {app.dir}")
    print(f"       curl -s -XPUT http://127.0.0.1:{http_port}/store/hello --data-binary teststring")
    print(f"       curl -s http://127.0.0.1:{http_port}/store/hello")
    print(f"       head -c 64 {app.dir}/hello | xxd      # MENC header + AES-256-GCM ciphertext")
    print(f"       cat {sr}/logs/keys.log                # audit: one JSON line per key operation")
    print("Ctrl-C stops the server.", flush=True)
    proc = subprocess.Popen(base + ["-D", "FOREGROUND"])
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0


if __name__ == "__main__":
    sys.exit(main())
