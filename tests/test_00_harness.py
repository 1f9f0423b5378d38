"""Self-test of the harness against plain apache2, without mod_bastion."""

from __future__ import annotations

import stat
import subprocess

import pytest

from harness import (
    HttpdError, HttpdServer, LogCheckError, ModuleMissingError, curl, find_problems,
    openssl_s_client, parse_line, paths, procfs, raw_request,
)
from harness.ports import free_port

STATIC = bytes(range(256)) * 400 + b"tail\r\n\x00"  # 102407 bytes, every byte value
FAKE_WARN = ("[Mon Nov 23 10:49:37.123456 2026] [core:warn] [pid 1:tid 2] "
             "AH99999: harness self-test injected warning {tag}\n")


def inject(server: HttpdServer, line: str) -> None:
    with open(server.error_log, "a") as f:
        f.write(line)


class TestPlainApache:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory):
        s = httpd_factory(mpm="event", with_bastion=False)
        s.write_file("static/data.bin", STATIC)
        s.write_cgi("hello.py", "#!/usr/bin/python3\nimport os\n"
                    "print('Content-Type: text/plain\\n')\nprint('cgi as', os.getuid())\n")
        s.add_conf('Header always set X-Harness "yes"')
        s.start()
        yield s
        s.stop()

    def test_config(self, server):
        text = server.config_text()
        assert "bastion" not in text
        assert f"Listen 127.0.0.1:{server.http_port}" in text
        assert "LoadModule mpm_event_module" in text
        assert server.configtest() == (0, "Syntax OK\n")
        assert server.root == paths.GEN_ROOT / "test_00_harness" / "TestPlainApache"

    def test_static_file_byte_exact(self, server):
        r = curl(server.url("/static/data.bin"))
        assert r.returncode == 0, r.stderr
        assert r.status == 200
        assert r.http_version == "1.1"
        assert r.body == STATIC
        assert r.headers["content-length"] == str(len(STATIC))
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["x-harness"] == "yes"
        assert any(f'"GET /static/data.bin HTTP/1.1" 200 {len(STATIC)}' in line
                   for line in server.read_access_log())

    def test_curl_options(self, server):
        r = curl(server.url("/nothing", host="test.example"), resolve=True, method="POST",
                 data=b"\x00abc", headers={"X-A": "b"})
        assert r.status == 404 and r.returncode == 0
        r = curl(server.url("/"), http2="prior-knowledge")  # no h2 here: curl fails
        assert r.status == 0 and r.returncode != 0 and r.stderr

    def test_cgi_runs_as_www_data(self, server):
        r = curl(server.url("/cgi-bin/hello.py"))
        assert r.status == 200, (r, server.log_tail())
        assert r.text.strip() == "cgi as 33"

    def test_raw_request(self, server):
        out = raw_request(server.http_port, b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 OK\r\n")
        assert out.endswith(b"mod_bastion test server</body></html>\n")

    def test_processes(self, server):
        pid = server.pid
        assert pid and server.is_running()
        kids = server.wait_children(2)
        stats = server.process_stats()
        assert stats.parent == pid and stats.children == kids
        assert max(stats.threads[k] for k in kids) >= 26  # an event child: 25 workers + listener
        assert all(n > 0 for n in stats.fds.values())
        assert stats.total_rss > 0
        assert stats.cpu_seconds >= 0

    def test_graceful_and_restart(self, server):
        pid, gen = server.pid, server.generation
        old = set(server.child_pids())
        server.graceful()
        assert server.pid == pid and server.generation == gen + 1
        assert set(server.child_pids()) - old
        assert curl(server.url("/static/data.bin")).body == STATIC
        old = set(server.child_pids())
        server.reload_config(server.snippets + ['Header always set X-Gen "2"'], restart=True)
        assert server.generation == gen + 2
        assert set(server.child_pids()) - old
        assert curl(server.url("/")).headers["x-gen"] == "2"
        server.wait_for_log(r"SIGHUP received")

    def test_log_checker(self, server):
        ok = "[Mon Nov 23 10:49:37.1 2026] [mpm_event:notice] [pid 7:tid 7] AH00489: fine"
        info = "[Mon Nov 23 10:49:37.1 2026] [bastion:debug] [pid 7:tid 8] x"
        warn = FAKE_WARN.format(tag="A").strip()
        err = "[Mon Nov 23 10:49:37.1 2026] [bastion:error] [pid 7] [client 127.0.0.1:1] boom"
        raw = "thread '<unnamed>' panicked at src/lib.rs:1:1:"
        assert parse_line(err).level == "error" and parse_line(err).module == "bastion"
        assert parse_line(info).tid == 8 and parse_line(raw).level is None
        assert find_problems([ok, info, warn, err, raw, ""]) == [warn, err, raw]
        assert find_problems([warn, err, raw], allow=[r"AH99999", r"boom$"]) == [raw]
        assert find_problems([raw], strict_raw=False) == []

        inject(server, FAKE_WARN.format(tag="B"))
        assert any("injected warning B" in l for l in server.log_problems())
        assert any("injected warning B" in l for l in server.log_lines_since_test_start())
        with pytest.raises(LogCheckError, match="injected warning B"):
            server.check_log()
        assert server.log_problems() == []  # check_log advanced its mark
        inject(server, FAKE_WARN.format(tag="C"))
        server.log_allow(r"injected warning C")
        assert server.check_log() == []

    @pytest.mark.log_allow(r"injected warning D")
    def test_log_allow_marker(self, server):
        inject(server, FAKE_WARN.format(tag="D"))  # the per-test check must not fail

    def test_stop_and_start_again(self, server):
        pid = server.pid
        server.stop()
        assert not server.is_running() and not procfs.alive(pid)
        assert not server.pid_file.exists()
        server.start()
        assert curl(server.url("/")).status == 200


class TestFailures:
    @pytest.fixture(scope="class")
    @classmethod
    def factory(cls, httpd_factory):
        return httpd_factory

    def test_start_failure_reports_output(self, factory):
        s = factory(with_bastion=False, name="broken")
        s.add_conf("NoSuchDirective on")
        rc, out = s.configtest()
        assert rc != 0 and "NoSuchDirective" in out
        with pytest.raises(HttpdError, match="Invalid command 'NoSuchDirective'"):
            s.start()
        assert not s.is_running()

    def test_missing_module_fails(self, tmp_path):
        s = HttpdServer(paths.GEN_ROOT / "test_00_harness" / "TestFailures-nomodule",
                        module_path=tmp_path / "nope.so")
        try:
            with pytest.raises(ModuleMissingError, match="make"):
                s.start()
        finally:
            s.close()

    def test_ports_unique(self):
        ports = {free_port() for _ in range(50)}
        assert len(ports) == 50


@pytest.mark.parametrize("mpm", ["worker", "prefork"])
def test_other_mpms(httpd_factory, mpm):
    s = httpd_factory(mpm=mpm, with_bastion=False, name=mpm)
    s.start()
    assert curl(s.url("/index.html")).status == 200
    s.graceful()
    assert curl(s.url("/index.html")).status == 200
    s.stop()


class TestTlsClients:
    """The TLS helpers (certs, curl --cacert, s_client) against mod_ssl."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory, cert_authority):
        cert = cert_authority.issue(["a.test", "b.test"])
        s = httpd_factory(with_bastion=False, extra_modules=["ssl"])
        port = s.port("https")
        s.add_conf(f"""
Listen 127.0.0.1:{port}
<VirtualHost *:{port}>
    ServerName a.test
    SSLEngine on
    SSLCertificateFile {cert.fullchain}
    SSLCertificateKeyFile {cert.key}
</VirtualHost>
""")
        s.start()
        yield s
        s.stop()

    def test_cert_files(self, cert_authority):
        for kt in ("ec", "rsa", "ed25519"):
            c = cert_authority.issue("x.test", key_type=kt)
            assert cert_authority.issue("x.test", key_type=kt) is c  # cached
            assert stat.S_IMODE(c.key.stat().st_mode) == 0o600
            assert stat.S_IMODE(c.combined.stat().st_mode) == 0o600
            assert stat.S_IMODE(c.cert.stat().st_mode) == 0o644
            v = subprocess.run(["openssl", "verify", "-CAfile", str(cert_authority.cert_path),
                                str(c.cert)], capture_output=True, text=True)
            assert v.returncode == 0, v.stdout + v.stderr

    def test_curl_https(self, server, cert_authority):
        r = curl(server.url("/index.html", scheme="https", host="b.test"), resolve=True,
                 cacert=cert_authority.cert_path)
        assert r.returncode == 0, r.stderr
        assert r.status == 200 and r.info["ssl_verify_result"] == 0

    def test_s_client(self, server, cert_authority):
        r = openssl_s_client("a.test", server.port("https"),
                             args=("-tls1_3", "-CAfile", str(cert_authority.cert_path)))
        assert r.handshake_ok, r.output
        assert r.protocol == "TLSv1.3" and r.cipher.startswith("TLS_")
        assert r.reused is False and r.verify_code == 0
        assert "CN = a.test" in r.subject and "Test CA" in r.issuer

    def test_raw_tls(self, server):
        out = raw_request(server.port("https"), b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n", tls=True,
                          servername="a.test")
        assert out.startswith(b"HTTP/1.1 200 OK")
