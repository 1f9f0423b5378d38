"""The module skeleton: loading under every MPM, restarts, directive errors, bad company,
panic safety, logging levels, install + a2enmod."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness import REPO_ROOT, curl
from harness.paths import GEN_ROOT

TEST_HOOKS_SO = REPO_ROOT / "build" / "mod_bastion-test-hooks.so"

INFO_CONF = """
<Location "/bastion-info">
  SetHandler bastion-info
</Location>
"""


def _wait_stable_children(server, timeout=10.0):
    """After a graceful restart, wait until the old generation's children have exited and the
    process set stops changing; return the stats."""
    deadline = time.monotonic() + timeout
    last = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        st = server.process_stats()
        key = (tuple(sorted(st.children)), tuple(sorted(st.threads.items())), tuple(sorted(st.fds.items())))
        if key != last:
            last, stable_since = key, time.monotonic()
        elif time.monotonic() - stable_since > 0.6:
            return st
        time.sleep(0.1)
    return server.process_stats()


class TestLoadsUnderEveryMpm:
    @pytest.fixture(scope="class", autouse=True, params=["event", "worker", "prefork"])
    @classmethod
    def server(cls, httpd_factory, request):
        mpm = request.param
        s = httpd_factory(mpm=mpm, name=mpm)
        s.add_conf(INFO_CONF)
        rc, out = s.configtest()
        assert rc == 0 and "Syntax OK" in out, out
        s.start()
        yield s
        s.stop()

    def test_info_page(self, server):
        mpm = server.mpm
        r = curl(server.url("/bastion-info"))
        assert r.status == 200
        assert r.headers["content-type"].startswith("text/html")
        assert re.search(rf"mod_bastion/\d+\.\d+\.\d+ is loaded \(mpm {mpm}, pid \d+\)", r.text)

    def test_head_and_wrong_method(self, server):
        r = curl(server.url("/bastion-info"), method="HEAD")
        assert r.status == 200 and r.body == b""
        r = curl(server.url("/bastion-info"), data=b"x")
        assert r.status == 405

    def test_startup_line_at_info(self, server):
        # LogLevel is warn here: the info start-up line must not appear.
        assert not any("initialized" in l for l in server.read_log().splitlines() if "[bastion:info]" in l)

    def test_ten_graceful_restarts_leak_nothing(self, server):
        before = _wait_stable_children(server)
        for _ in range(10):
            server.graceful()
            assert curl(server.url("/bastion-info")).status == 200
        after = _wait_stable_children(server)
        assert after.parent == before.parent
        assert after.threads[after.parent] == before.threads[before.parent]
        assert after.fds[after.parent] == before.fds[before.parent]
        # Every child of the new generation looks like the children before.
        kids_before = {(before.threads[p], before.fds[p]) for p in before.children}
        kids_after = {(after.threads[p], after.fds[p]) for p in after.children}
        assert kids_after, "no children after the restarts"
        assert max(t for t, _ in kids_after) <= max(t for t, _ in kids_before)
        assert max(f for _, f in kids_after) <= max(f for _, f in kids_before)

    def test_restart_and_stop_are_clean(self, server):
        server.restart()
        assert curl(server.url("/bastion-info")).status == 200


class TestLogLevels:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory):
        s = httpd_factory()
        s.add_conf(INFO_CONF)
        s.add_conf('<Location "/quiet">\n  SetHandler bastion-info\n  LogLevel warn\n</Location>')
        s.set_log_level("bastion", "debug")
        s.start()
        yield s
        s.stop()

    def test_debug_lines_with_bastion_debug(self, server):
        assert curl(server.url("/bastion-info")).status == 200
        server.wait_for_log(r"\[bastion:debug\] .*serving bastion-info for /bastion-info", timeout=5)

    def test_startup_info_line(self, server):
        assert re.search(r"\[bastion:info\] .*mod_bastion/\S+ initialized \(mpm event\)", server.read_log())

    def test_default_level_hides_debug(self, server):
        # /quiet sets `LogLevel warn`: its requests log no bastion debug lines.
        before = server.log_size()
        r = curl(server.url("/quiet"))
        assert r.status == 200
        time.sleep(0.3)
        new = server.read_log(since=before)
        assert "serving bastion-info" not in new


class TestDirectiveErrors:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_factory):
        return httpd_factory()

    def _check_fails(self, server, snippet, *expected):
        server.clear_conf()
        server.add_conf(snippet)
        server.write_config()
        rc, out = server.configtest()
        assert rc != 0, out
        conf = str(server.root / "conf" / "httpd.conf")
        assert re.search(rf"Syntax error on line \d+ of {re.escape(conf)}:", out), out
        for e in expected:
            assert e in out, out
        return out

    def test_bad_value_names_directive_and_form(self, server):
        self._check_fails(server, "BastionStatusTitle " + "x" * 201,
                          "BastionStatusTitle: expected at most 200 characters, got 201")

    def test_wrong_argument_count_shows_form(self, server):
        self._check_fails(server, "BastionStatusTitle a b",
                          "BastionStatusTitle takes one argument, BastionStatusTitle text")

    def test_good_value_passes(self, server):
        server.clear_conf()
        server.add_conf('BastionStatusTitle "Front end"')
        server.write_config()
        rc, out = server.configtest()
        assert rc == 0 and "Syntax OK" in out, out


class TestRefusesBadCompany:
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_factory):
        return httpd_factory()

    def test_mod_md_is_refused(self, server):
        server.clear_conf()
        server.add_modules("md")
        server.write_config()
        rc, out = server.configtest()
        assert rc != 0, out
        assert "mod_md is loaded too" in out and "a2dismod md" in out, out

    def test_tls_module_is_refused(self, server, tmp_path):
        src = tmp_path / "mod_tls.c"
        src.write_text(
            '#include "httpd.h"\n#include "http_config.h"\n'
            "module AP_MODULE_DECLARE_DATA tls_module = { STANDARD20_MODULE_STUFF,"
            " NULL, NULL, NULL, NULL, NULL, NULL };\n"
        )
        apxs = shutil.which("apxs") or shutil.which("apxs2")
        assert apxs, "apxs (apache2-dev) is needed to build the stub mod_tls"
        b = subprocess.run([apxs, "-c", str(src)], cwd=tmp_path, capture_output=True, text=True)
        assert b.returncode == 0, b.stdout + b.stderr
        so = tmp_path / ".libs" / "mod_tls.so"
        server.clear_conf()
        if "md" in server.modules:
            server.modules.remove("md")
        server.add_conf(f"LoadModule tls_module {so}")
        server.write_config()
        rc, out = server.configtest()
        assert rc != 0, out
        assert "mod_tls is loaded too" in out and "a2dismod tls" in out, out


class TestPanicGuard:
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def server(cls, httpd_factory):
        assert TEST_HOOKS_SO.exists(), f"{TEST_HOOKS_SO} is missing: run `make build-test-hooks`"
        s = httpd_factory(module_path=TEST_HOOKS_SO, mpm="event")
        s.add_conf(INFO_CONF)
        s.add_conf('<Location "/panic">\n  SetHandler bastion-test-panic\n</Location>')
        s.start()
        yield s
        s.stop()

    def test_panic_gives_500_and_crit_line_and_child_lives(self, server):
        server.log_allow(r"\[bastion:crit\].*Rust panic", r"\[bastion:crit\].*test panic requested")
        for _ in range(3):
            r = curl(server.url("/panic"))
            assert r.status == 500
        m = server.wait_for_log(r"\[bastion:crit\] \[pid (\d+):tid \d+\].*Rust panic: panicked at .*test panic requested by /panic")
        panicked_pid = int(m.group(1))
        r = curl(server.url("/bastion-info"))
        assert r.status == 200
        # The child that panicked is still serving.
        assert panicked_pid in server.child_pids(), "the child that panicked died"
        assert not re.search(r"exit signal|AH00052", server.read_log())


def test_install_and_a2enmod(tmp_path):
    """`make install` into a throwaway tree, `a2enmod bastion`, `apache2ctl configtest`."""
    if not Path("/etc/apache2/apache2.conf").exists():
        pytest.fail("Debian's /etc/apache2 is needed for the a2enmod test (apt-get install apache2)")
    etc = tmp_path / "apache2"
    shutil.copytree("/etc/apache2", etc, symlinks=True)
    libexec = tmp_path / "modules"
    r = subprocess.run(["make", "-s", "install", f"LIBEXECDIR={libexec}", f"SYSCONFDIR={etc}"],
                       cwd=REPO_ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (libexec / "mod_bastion.so").exists()
    assert f"LoadModule bastion_module {libexec}/mod_bastion.so" in (etc / "mods-available/bastion.load").read_text()
    env = dict(os.environ, APACHE_CONFDIR=str(etc))
    r = subprocess.run(["a2enmod", "bastion"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (etc / "mods-enabled/bastion.load").is_symlink()
    r = subprocess.run(["apache2ctl", "configtest"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "Syntax OK" in r.stdout + r.stderr, r.stdout + r.stderr
    assert not Path("/etc/apache2/mods-enabled/bastion.load").exists()


class TestBodiesAndWatchdog:
    """Request bodies read through the httpd layer, responses written in pieces, and a
    mod_watchdog singleton task (test-hooks build)."""

    @pytest.fixture(scope="class", autouse=True, params=["event", "prefork"])
    @classmethod
    def server(cls, httpd_factory, request):
        assert TEST_HOOKS_SO.exists(), f"{TEST_HOOKS_SO} is missing: run `make build-test-hooks`"
        s = httpd_factory(module_path=TEST_HOOKS_SO, mpm=request.param, name=f"wd-{request.param}")
        s.set_log_level("bastion", "info")
        s.add_conf('<Location "/echo">\n  SetHandler bastion-test-echo\n</Location>\nLimitRequestBody 0')
        s.start()
        yield s
        s.stop()

    @pytest.mark.parametrize("size", [0, 1, 65536, 1_000_003, 20 * 1024 * 1024])
    def test_echo_content_length(self, server, size):
        data = os.urandom(size)
        r = curl(server.url("/echo"), data=data, timeout=60)
        assert r.status == 200 and r.body == data

    def test_echo_chunked(self, server):
        data = os.urandom(300_001)
        r = curl(server.url("/echo"), data=data, headers={"Transfer-Encoding": "chunked"})
        assert r.status == 200 and r.body == data

    def test_bad_chunking_is_400(self, server):
        from harness import raw_request
        out = raw_request(server.http_port, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400"), out[:200]
        server.log_allow(r"AH02555|AH01594|chunk")

    def test_watchdog_singleton_runs_in_one_child(self, server):
        server.wait_for_log(r"test watchdog Running in pid \d+", timeout=10)
        time.sleep(2.5)
        pids = set(re.findall(r"test watchdog (?:Starting|Running) in pid (\d+)", server.read_log()))
        parent = server.process_stats().parent
        assert len(pids) == 1, pids
        assert int(pids.pop()) != parent


class TestSectionsAndTake123:
    """`<Section>` containers with nested TAKE123 directives (test-hooks build)."""

    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, httpd_factory):
        assert TEST_HOOKS_SO.exists(), f"{TEST_HOOKS_SO} is missing: run `make build-test-hooks`"
        return httpd_factory(module_path=TEST_HOOKS_SO, name="sections")

    def test_nested_directives_are_read(self, server):
        server.clear_conf()
        server.add_conf("""
<BastionTestSection first one>
  BastionTestItem a
  BastionTestItem a b
  BastionTestItem a b c
</BastionTestSection>
<BastionTestSection second>
</BastionTestSection>
<Location "/sections">
  SetHandler bastion-test-sections
</Location>
""")
        server.start()
        try:
            r = curl(server.url("/sections"))
            assert r.status == 200
            assert r.text == "first one: a | a,b | a,b,c\nsecond: \n"
        finally:
            server.stop()

    @pytest.mark.parametrize("snippet,expect", [
        ("<BastionTestSection x\n</BastionTestSection>", "<BastionTestSection> directive missing closing '>'"),
        ("<BastionTestSection>\n</BastionTestSection>", "<BastionTestSection: expected a name"),
        ("BastionTestItem a", "BastionTestItem: only allowed inside <BastionTestSection>"),
        ("<BastionTestSection x>\n  BastionTestItem a b c d\n</BastionTestSection>", "\nBastionTestItem takes one, two or three arguments, BastionTestItem a [b [c]]"),
    ])
    def test_errors(self, server, snippet, expect):
        server.clear_conf()
        server.add_conf(snippet)
        server.write_config()
        rc, out = server.configtest()
        assert rc != 0 and expect in out, out
        assert re.search(r"Syntax error on line \d+ of ", out), out
