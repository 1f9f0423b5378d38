"""End-to-end test harness for mod_bastion: a real apache2, real curl and openssl.

Paths (``harness.paths``; environment variables override)
    REPO_ROOT, MODULE_PATH (``$BASTION_MODULE``, default target/release/libmod_bastion.so),
    GEN_ROOT (``$BASTION_TEST_GEN``, default build/test-gen), APACHE2 (``$APACHE2``, default
    /usr/sbin/apache2), APACHE_MODULES_DIR, CERTS_DIR; ``make_dirs(path, mode=0o755)``, ``gen_root()``.

Ports (``harness.ports``)
    ``free_port() -> int``, ``free_ports(n) -> list[int]``: free on 127.0.0.1 and never handed out
    twice in this process; ``port_accepts(port, host="127.0.0.1", timeout=0.2) -> bool``.

HttpdServer (``harness.httpd``), one generated ServerRoot ``<root>/{conf,htdocs,logs,run,cgi-bin}``
    ``HttpdServer(root, *, mpm="event"|"worker"|"prefork", with_bastion=True, modules=None,
    extra_modules=(), log_levels=None, module_path=None, mpm_conf=None, env=None,
    strict_raw_log_lines=True)`` wipes ``root`` and reserves ``http_port``. Normally made by the
    ``httpd_factory`` fixture, which picks ``root = build/test-gen/<test module>/<Class>[-name]``.

    Config:  ``add_conf(snippet)``, ``set_conf(snippets)``, ``clear_conf()``,
             ``add_modules("ssl", "http2", "proxy_fcgi", "md", (name, path), ...)`` (dependencies
             such as proxy are added first), ``set_log_level("bastion", "debug")``,
             ``config_text()``, ``write_config()``. httpd.conf = base (ServerRoot, Listen
             127.0.0.1:http_port, logs, User www-data, DocumentRoot htdocs, MPM sized for 2 cores)
             + LoadModule lines (DEFAULT_MODULES unless ``modules=``) + ``LoadModule bastion_module``
             (unless ``with_bastion=False``) + module-dependent base (TypesConfig, ScriptSock,
             ScriptAlias /cgi-bin/, /server-status, SSLSessionCache if ssl) + the snippets in order.
    Files:   ``write_file(relpath, content, mode=0o644, base=htdocs) -> Path``,
             ``write_cgi(name, script) -> Path`` (mode 755, URL /cgi-bin/<name>).
    Ports:   ``http_port``; ``port(name) -> int`` reserves more (``port("https")``);
             ``url(path="/", scheme="http", host="127.0.0.1", port=None)``.
    Control: ``configtest() -> (rc, output)``; ``start(timeout=10)``; ``graceful()``; ``restart()``;
             ``reload_config(snippets=None, restart=False)``; ``stop(timeout=10)``; ``close()``;
             ``apache2(*args) -> (rc, output)``; ``is_running()``; ``pid``; ``generation``.
             Every (re)start rewrites httpd.conf first. start waits for the pid file and a TCP
             connect; graceful/restart wait for a new "resuming normal operations" line and a
             child of the new generation. Failures raise ``HttpdError`` carrying apache2's output
             and the error-log lines written since the call; a missing module raises
             ``ModuleMissingError`` ("run make").
    /proc:   ``child_pids()``, ``all_pids()``, ``thread_counts()``, ``fd_counts()``,
             ``rss_bytes()`` (dicts pid -> n), ``cpu_seconds(include_reaped=True)``,
             ``process_stats() -> ProcessStats``, ``wait_children(n=1, timeout=10)``.
             The children include mod_cgid's daemon when cgid is loaded.
    Logs:    ``error_log``, ``access_log`` (paths), ``read_log(since=0)``, ``log_lines(since=0)``,
             ``log_tail(n)``, ``read_access_log()``, ``log_lines_since_test_start()``,
             ``wait_for_log(regex, timeout=10, since=None)`` (since: byte offset, default test
             start; returns the re.Match), ``log_size()``.
    Checks:  ``log_allow(*regex, persistent=False)`` (per test, or for the server's life),
             ``log_allow_reset()``, ``log_problems()``, ``check_log(raise_=True)`` (raises
             ``LogCheckError``). Fails on levels warn/error/crit/alert/emerg and on raw
             (unformatted, e.g. a panic on stderr) lines; DEFAULT_LOG_ALLOW covers Debian's
             mod_ssl AH01882 OpenSSL-version warning.

Error-log parsing (``harness.errorlog``)
    ``parse_line(line) -> LogLine(raw, module, level, pid, tid, msg)``;
    ``find_problems(lines, allow=(), strict_raw=True) -> list[str]``; ``BAD_LEVELS``.

Clients (``harness.clients``)
    ``curl(url, *args, resolve=None|True|"h:p:127.0.0.1"|[...], http2=False|True|"prior-knowledge",
    insecure=False, cacert=None, data=None, method=None, headers=None, timeout=10) -> CurlResult``
    with ``status``, ``http_version`` ("1.1", "2"), ``headers`` (lower-case dict), ``header_list``,
    ``body`` (bytes), ``text``, ``json()``, ``stderr``, ``returncode``, ``info`` (``-w %{json}``).
    ``openssl_s_client(host, port, servername=None, args=(), input=b"", timeout=10) -> SClientResult``
    with ``stdout``, ``stderr``, ``returncode``, ``protocol``, ``cipher``, ``subject``, ``issuer``,
    ``reused`` (True "Reused" / False "New" / None), ``alpn``, ``verify_code``, ``handshake_ok``.
    ``raw_request(port, data, timeout=5, *, host, tls=False, servername=None, alpn=None,
    shutdown_write=False) -> bytes``: all the server sent until close or timeout.

Certificates (``harness.certs``)
    ``CertAuthority(dir, key_type="ec")`` with ``cert_path``, ``key_path``, and ``issue(names,
    key_type="ec"|"rsa"|"ed25519", valid_from=None, valid_to=None, valid_days=365, client=False,
    tag="") -> CertFiles(names, cert, key, chain, fullchain, combined, certificate, dir)``; keys
    and combined files mode 0600; cached per (names, options). ``session_ca()``: the session's CA
    under build/test-gen/certs (fixture ``cert_authority``).

Fixtures and markers (tests/conftest.py)
    ``httpd_factory`` (class scope): ``httpd_factory(mpm="event", *, name=None, with_bastion=True,
    **HttpdServer kwargs) -> HttpdServer``; every server it made is stopped at class end, and its
    unchecked error-log lines are checked then. An autouse per-test fixture checks the error log of
    every live server after each test (a teardown error names the lines). ``cert_authority``
    (session). ``@pytest.mark.log_allow(regex, ...)``; ``@pytest.mark.needs_module`` or
    ``harness.require_module()`` fail (never skip) when the module is not built.

A test class::

    class TestStatic:
        @pytest.fixture(scope="class", autouse=True)
        @classmethod  # pytest 9 deprecates class-scoped fixtures as instance methods
        def server(cls, httpd_factory):
            s = httpd_factory(mpm="event")
            s.set_log_level("bastion", "debug")
            s.add_conf("Header set X-Test yes")
            s.start()
            yield s
            s.stop()

        def test_index(self, server):
            r = curl(server.url("/index.html"))
            assert r.status == 200 and r.headers["x-test"] == "yes"
"""

from . import certs, clients, errorlog, paths, ports, procfs
from .certs import CertAuthority, CertFiles, session_ca
from .clients import CurlResult, SClientResult, curl, openssl_s_client, raw_request
from .errorlog import find_problems, parse_line
from .httpd import (
    DEFAULT_LOG_ALLOW, DEFAULT_MODULES, HttpdError, HttpdServer, LogCheckError, ModuleMissingError,
    ProcessStats, module_missing_message,
)
from .paths import APACHE2, GEN_ROOT, MODULE_PATH, REPO_ROOT
from .ports import free_port, free_ports, port_accepts


def require_module() -> None:
    """Fail the current test (never skip) if the module has not been built."""
    import pytest

    if not MODULE_PATH.exists():
        pytest.fail(module_missing_message(), pytrace=False)


__all__ = [
    "APACHE2", "CertAuthority", "CertFiles", "CurlResult", "DEFAULT_LOG_ALLOW", "DEFAULT_MODULES",
    "GEN_ROOT", "HttpdError", "HttpdServer", "LogCheckError", "MODULE_PATH", "ModuleMissingError",
    "ProcessStats", "REPO_ROOT", "SClientResult", "certs", "clients", "curl", "errorlog",
    "find_problems", "free_port", "free_ports", "module_missing_message", "openssl_s_client",
    "parse_line", "paths", "port_accepts", "ports", "procfs", "raw_request", "require_module",
    "session_ca",
]
