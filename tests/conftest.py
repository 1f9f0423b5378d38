"""pytest wiring for the mod_bastion end-to-end tests; the API is documented in harness/__init__.py."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import threading

import pytest
from websockets.asyncio.server import serve

from harness import free_port, paths
from harness.certs import session_ca
from harness.httpd import HttpdServer, module_missing_message


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "log_allow(*regex): error-log lines matching any regex do not fail this test")
    config.addinivalue_line(
        "markers", "needs_module: fail (not skip) when mod_bastion has not been built")


def pytest_sessionstart(session):
    missing = []
    if not (paths.APACHE2.is_file() and os.access(paths.APACHE2, os.X_OK)):
        missing.append(f"{paths.APACHE2} is missing: install apache2 (apt-get install apache2 "
                       f"apache2-dev) or point $APACHE2 at the binary.")
    if not (paths.APACHE_MODULES_DIR / "mod_mpm_event.so").exists():
        missing.append(f"{paths.APACHE_MODULES_DIR}/mod_mpm_event.so is missing "
                       f"(set $APACHE_MODULES_DIR to Debian's apache2 module directory).")
    for tool in ("curl", "openssl"):
        if not shutil.which(tool):
            missing.append(f"`{tool}` is not on PATH: apt-get install {tool}.")
    if missing:
        pytest.exit("mod_bastion e2e tests cannot run:\n  " + "\n  ".join(missing),
                    returncode=pytest.ExitCode.TESTS_FAILED)


def pytest_report_header(config):
    try:
        version = subprocess.run([str(paths.APACHE2), "-v"], capture_output=True, text=True,
                                 timeout=10).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        version = "?"
    state = "present" if paths.MODULE_PATH.exists() else "MISSING (run make)"
    return [f"apache2: {paths.APACHE2} ({version})",
            f"mod_bastion: {paths.MODULE_PATH} [{state}]",
            f"generated files: {paths.GEN_ROOT}"]


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_module") and not paths.MODULE_PATH.exists():
        pytest.fail(module_missing_message(), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
    if rep.when == "call" and rep.failed:
        for s in HttpdServer.live:
            lines = s.log_lines_since_test_start()
            if lines:
                rep.sections.append((f"error log {s.error_log} (this test)",
                                     "\n".join(lines[-200:])))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


@pytest.fixture(scope="class")
def httpd_factory(request):
    """``httpd_factory(mpm="event", *, name=None, with_bastion=True, **kwargs) -> HttpdServer``.

    Roots are ``build/test-gen/<test module>/<Class>`` (then ``<Class>-<name>`` or ``-2``, ``-3``
    for further servers). All servers are stopped when the class ends, even after a failure, and
    error-log lines not yet checked by a test are checked then.
    """
    created: list[HttpdServer] = []
    used: set[str] = set()
    module = _safe(request.module.__name__.rsplit(".", 1)[-1])
    owner = _safe(request.cls.__name__) if request.cls else "_module"

    def factory(mpm: str = "event", *, name: str | None = None, with_bastion: bool = True,
                **kwargs) -> HttpdServer:
        if with_bastion and not kwargs.get("module_path") and not paths.MODULE_PATH.exists():
            pytest.fail(module_missing_message(), pytrace=False)
        sub = owner if not name and not created else f"{owner}-{_safe(name or str(len(created) + 1))}"
        if sub in used:
            raise ValueError(f"httpd_factory: a server named {sub!r} exists in this class already")
        used.add(sub)
        root = paths.gen_root() / module / sub
        server = HttpdServer(root, mpm=mpm, with_bastion=with_bastion, **kwargs)
        created.append(server)
        return server

    yield factory

    problems, errors = [], []
    for s in created:
        try:
            for line in s.close():
                problems.append(f"{s.error_log}: {line}")
        except Exception as e:  # keep stopping the others
            errors.append(f"{s}: {e}")
    if errors or problems:
        pytest.fail("at class end:\n" + "\n".join(errors + problems[:50]), pytrace=False)


@pytest.fixture(autouse=True)
def _httpd_error_log_check(request):
    """After every test: unexpected error-log lines of any live server fail the test."""
    allow = [a for m in request.node.iter_markers("log_allow") for a in m.args]
    before = list(HttpdServer.live)
    for s in before:
        s.mark_test_start()
        s.log_allow(*allow)
    yield
    problems = []
    for s in list(HttpdServer.live):
        if s not in before:  # made during the test
            s.log_allow(*allow)
        for line in s.check_log(raise_=False):
            problems.append(f"{s.error_log}: {line}")
        s.mark_test_start()  # drop this test's allow list
    rep = getattr(request.node, "rep_call", None)
    if problems and not (rep is not None and rep.failed):
        pytest.fail(f"{len(problems)} unexpected error-log line(s) (allow with server.log_allow(regex) "
                    f"or @pytest.mark.log_allow(regex)):\n" + "\n".join(problems[:50]), pytrace=False)


@pytest.fixture(scope="session")
def cert_authority():
    """The session's test CA (files under build/test-gen/certs)."""
    return session_ca()


def pytest_sessionfinish(session, exitstatus):
    for s in list(HttpdServer.live):  # servers made outside httpd_factory
        try:
            s.stop()
        except Exception:
            pass


@pytest.fixture(scope="module")
def ws_backend():
    """An echo WebSocket server on 127.0.0.1 (plain ws, for mod_proxy's upgrade=websocket;
    frames up to 8 MiB)."""
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def echo(ws):
        async for msg in ws:
            await ws.send(msg)

    async def main():
        async with serve(echo, "127.0.0.1", port, max_size=8 * 1024 * 1024):
            ready.set()
            await stop.wait()

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    assert ready.wait(10)
    yield port
    loop.call_soon_threadsafe(stop.set)
    t.join(10)
