"""`make run`'s demo: scripts/run_demo.py starts, serves http and https (h2), stops on Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

from harness import REPO_ROOT, curl, free_port, port_accepts


def test_demo_serves_http_and_https_then_stops():
    http_port, https_port = free_port(), free_port()
    env = dict(os.environ, DEMO_HTTP_PORT=str(http_port), DEMO_HTTPS_PORT=str(https_port))
    p = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "run_demo.py")], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (port_accepts(http_port) and port_accepts(https_port)):
            assert p.poll() is None, p.stdout.read()
            assert time.monotonic() < deadline, "demo did not start"
            time.sleep(0.1)
        r = curl(f"http://127.0.0.1:{http_port}/bastion-info")
        assert r.status == 200 and "mod_bastion/" in r.text
        ca = REPO_ROOT / "build" / "demo" / "conf" / "demo-ca.pem"
        r = curl(f"https://localhost:{https_port}/bastion-info", resolve=True, cacert=ca, http2=True)
        assert r.status == 200 and r.http_version == "2" and "mod_bastion/" in r.text
        # The encrypted-FastCGI round trip the demo prints.
        r = curl(f"http://127.0.0.1:{http_port}/store/demo-check", data=b"teststring", method="PUT")
        assert r.status == 201, r
        stored = (REPO_ROOT / "build" / "demo" / "store" / "demo-check").read_bytes()
        assert stored[:4] == b"MENC" and b"teststring" not in stored
        r = curl(f"http://127.0.0.1:{http_port}/store/demo-check")
        assert r.status == 200 and r.body == b"teststring"
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=20)
    assert p.returncode == 0, out
    assert f"https://localhost:{https_port}/bastion-info" in out
    assert f"curl -s -XPUT http://127.0.0.1:{http_port}/store/hello --data-binary teststring" in out
    assert "[warn]" not in out and "[error]" not in out, out
    assert not port_accepts(http_port)
