"""HttpdServer: one generated ServerRoot and the apache2 daemon that runs on it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import errorlog, paths, procfs
from .ports import free_port, port_accepts

POLL = 0.02  # seconds between polls; nothing in here sleeps a fixed amount otherwise

#: Modules loaded when the test does not choose its own list.
DEFAULT_MODULES: tuple[str, ...] = (
    "authz_core", "authz_host", "mime", "dir", "alias", "headers", "rewrite", "env",
    "setenvif", "cgid", "status", "socache_shmcb",
)

#: Modules that need others loaded first (added automatically, in front).
MODULE_DEPS: dict[str, tuple[str, ...]] = {
    "proxy_fcgi": ("proxy",), "proxy_http": ("proxy",), "proxy_http2": ("proxy", "http2"),
    "proxy_connect": ("proxy",), "proxy_wstunnel": ("proxy",), "proxy_ajp": ("proxy",),
    "proxy_balancer": ("proxy", "slotmem_shm"), "ssl": ("socache_shmcb",),
    "authn_file": ("authn_core",), "auth_basic": ("authn_core",),
}

MPMS = ("event", "worker", "prefork")

MPM_CONF = {
    "event": """\
StartServers 2
ServerLimit 8
ThreadLimit 64
ThreadsPerChild 25
MinSpareThreads 25
MaxSpareThreads 75
MaxRequestWorkers 100
MaxConnectionsPerChild 0
""",
    "prefork": """\
StartServers 2
MinSpareServers 2
MaxSpareServers 6
ServerLimit 32
MaxRequestWorkers 32
MaxConnectionsPerChild 0
""",
}
MPM_CONF["worker"] = MPM_CONF["event"]

MIME_TYPES = """\
text/html html htm
text/plain txt
text/css css
text/javascript js
application/json json
application/octet-stream bin
image/png png
image/jpeg jpg jpeg
image/svg+xml svg
application/pdf pdf
"""

#: Error-log lines allowed in every test unless the test calls ``server.log_allow_reset()``:
#: AH01882 is Debian's mod_ssl built against a newer OpenSSL than the one installed.
DEFAULT_LOG_ALLOW: tuple[str, ...] = (r"AH01882: Init: this version of mod_ssl was compiled against",)

#: The parent logs this (AH00489, notice, always logged) at the end of every (re)start.
RESUMING_RE = re.compile(r"resuming normal operations")


class HttpdError(RuntimeError):
    """apache2 failed to start/reload/stop; the message carries output and the error-log tail."""


class ModuleMissingError(HttpdError):
    """The module under test has not been built."""


class LogCheckError(AssertionError):
    """The error log has unexpected lines at level warn or worse."""

    def __init__(self, server: "HttpdServer", problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} unexpected line(s) in {server.error_log} "
            f"(allow with server.log_allow(regex) or @pytest.mark.log_allow(regex)):\n"
            + "\n".join(problems[:50])
        )


def module_missing_message(path: Path | None = None) -> str:
    path = path or paths.MODULE_PATH
    return (
        f"mod_bastion is not built: {path} does not exist. "
        f"Run `make` in {paths.REPO_ROOT} (or set BASTION_MODULE to the .so)."
    )


@dataclass
class ProcessStats:
    """A snapshot of the daemon's processes."""

    parent: int | None
    children: list[int]
    threads: dict[int, int] = field(default_factory=dict)
    fds: dict[int, int] = field(default_factory=dict)
    rss: dict[int, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def total_threads(self) -> int:
        return sum(self.threads.values())

    @property
    def total_fds(self) -> int:
        return sum(self.fds.values())

    @property
    def total_rss(self) -> int:
        return sum(self.rss.values())


def _module_line(spec: str | tuple[str, str]) -> tuple[str, str]:
    """'ssl' -> ('ssl', 'LoadModule ssl_module .../mod_ssl.so'); (name, path) is taken as given."""
    if isinstance(spec, tuple):
        name, path = spec
    else:
        name, path = spec, str(paths.APACHE_MODULES_DIR / f"mod_{spec}.so")
    return name, f'LoadModule {name}_module "{path}"'


class HttpdServer:
    """One ServerRoot (conf/, htdocs/, logs/, run/, cgi-bin/) and the apache2 running on it.

    Creating the object wipes ``root`` (after killing a leftover daemon of an earlier run that
    used the same config file) and allocates the HTTP port; nothing runs until :meth:`start`.
    """

    #: Servers created and not yet closed, for the per-test error-log check.
    live: list["HttpdServer"] = []

    def __init__(
        self,
        root: str | Path,
        *,
        mpm: str = "event",
        with_bastion: bool = True,
        modules: Sequence[str | tuple[str, str]] | None = None,
        extra_modules: Sequence[str | tuple[str, str]] = (),
        log_levels: dict[str, str] | None = None,
        module_path: str | Path | None = None,
        mpm_conf: str | None = None,
        env: dict[str, str] | None = None,
        strict_raw_log_lines: bool = True,
    ):
        if mpm not in MPMS:
            raise ValueError(f"mpm must be one of {MPMS}, got {mpm!r}")
        self.root = Path(root).resolve()
        self.mpm = mpm
        self.with_bastion = with_bastion
        self.module_path = Path(module_path).resolve() if module_path else paths.MODULE_PATH
        self.modules: list[str | tuple[str, str]] = list(DEFAULT_MODULES if modules is None else modules)
        self.add_modules(*extra_modules)
        self.log_levels: dict[str, str] = dict(log_levels or {})
        self.mpm_conf = MPM_CONF[mpm] if mpm_conf is None else mpm_conf
        self.env = dict(env or {})
        self.strict_raw_log_lines = strict_raw_log_lines
        self.snippets: list[str] = []

        self.conf_dir = self.root / "conf"
        self.conf_file = self.conf_dir / "httpd.conf"
        self.htdocs = self.root / "htdocs"
        self.logs_dir = self.root / "logs"
        self.run_dir = self.root / "run"
        self.cgi_bin = self.root / "cgi-bin"
        self.error_log = self.logs_dir / "error.log"
        self.access_log = self.logs_dir / "access.log"
        self.pid_file = self.run_dir / "httpd.pid"

        self._ports: dict[str, int] = {"http": free_port()}
        self._pid: int | None = None
        self._checked_offset = 0
        self._test_offset = 0
        self._allow_persistent: list[str] = list(DEFAULT_LOG_ALLOW)
        self._allow: list[str] = list(DEFAULT_LOG_ALLOW)
        self.generation = 0

        self._kill_leftovers()
        if self.root.exists():
            shutil.rmtree(self.root)
        for d in (self.conf_dir, self.htdocs, self.logs_dir, self.run_dir, self.cgi_bin):
            paths.make_dirs(d)
        (self.conf_dir / "mime.types").write_text(MIME_TYPES)
        self.write_file("index.html", "<html><body>mod_bastion test server</body></html>\n")
        self.error_log.touch()
        HttpdServer.live.append(self)

    def __repr__(self) -> str:
        return f"<HttpdServer {self.root} mpm={self.mpm} port={self.http_port} pid={self._pid}>"

    # ------------------------------------------------------------------ ports and URLs
    @property
    def http_port(self) -> int:
        return self._ports["http"]

    def port(self, name: str) -> int:
        """A free port reserved for this server under ``name`` (same number on every call)."""
        if name not in self._ports:
            self._ports[name] = free_port()
        return self._ports[name]

    def url(self, path: str = "/", *, scheme: str = "http", host: str = "127.0.0.1",
            port: int | str | None = None) -> str:
        """``scheme://host:port/path``; ``port`` is a number, a name for :meth:`port`, or
        None (the http port for http, ``port("https")`` for https)."""
        if port is None:
            port = self.http_port if scheme == "http" else self.port(scheme)
        elif isinstance(port, str):
            port = self.port(port)
        if not path.startswith("/"):
            path = "/" + path
        return f"{scheme}://{host}:{port}{path}"

    # ------------------------------------------------------------------ configuration
    def add_conf(self, snippet: str) -> "HttpdServer":
        """Append a configuration snippet (after the base config and all LoadModule lines)."""
        self.snippets.append(snippet)
        return self

    def set_conf(self, snippets: Iterable[str] | str) -> "HttpdServer":
        """Replace all snippets."""
        self.snippets = [snippets] if isinstance(snippets, str) else list(snippets)
        return self

    def clear_conf(self) -> "HttpdServer":
        self.snippets = []
        return self

    def add_modules(self, *names: str | tuple[str, str]) -> "HttpdServer":
        """Load more httpd modules ('ssl', 'http2', 'proxy_fcgi', 'md', or (name, path));
        their dependencies are added in front automatically."""
        for n in names:
            for dep in MODULE_DEPS.get(n if isinstance(n, str) else n[0], ()):
                if dep not in self.modules:
                    self.modules.append(dep)
            if n not in self.modules:
                self.modules.append(n)
        return self

    def set_log_level(self, module: str, level: str) -> "HttpdServer":
        """Per-module LogLevel, e.g. ``set_log_level("bastion", "debug")``."""
        self.log_levels[module] = level
        return self

    def config_text(self) -> str:
        """The complete httpd.conf for the current settings."""
        r = self.root
        loglevel = " ".join(["warn"] + [f"{m}:{l}" for m, l in self.log_levels.items()])
        names = [(m if isinstance(m, str) else m[0]) for m in self.modules]
        lines = [
            "# Generated by tests/harness. Do not edit: it is rewritten on every (re)start.",
            f'ServerRoot "{r}"',
            "ServerName 127.0.0.1",
            f'DefaultRuntimeDir "{self.run_dir}"',
            f'PidFile "{self.pid_file}"',
            f'ErrorLog "{self.error_log}"',
            f"LogLevel {loglevel}",
            "User www-data",
            "Group www-data",
            "Timeout 10",
            "KeepAlive On",
            "KeepAliveTimeout 5",
            "MaxKeepAliveRequests 1000",
            f"Listen 127.0.0.1:{self.http_port}",
            "",
            f'LoadModule mpm_{self.mpm}_module "{paths.APACHE_MODULES_DIR}/mod_mpm_{self.mpm}.so"',
            self.mpm_conf.rstrip("\n"),
            "",
        ]
        lines += [_module_line(m)[1] for m in self.modules]
        if self.with_bastion:
            lines.append(f'LoadModule bastion_module "{self.module_path}"')
        lines += [
            "",
            r'LogFormat "%h %{remote}p %v:%p [%t] \"%r\" %>s %b %D %k" harness',
            f'CustomLog "{self.access_log}" harness',
            f'DocumentRoot "{self.htdocs}"',
            "<Directory />",
            "    AllowOverride None",
            "    <IfModule authz_core_module>",
            "        Require all denied",
            "    </IfModule>",
            "</Directory>",
            f'<Directory "{self.htdocs}">',
            "    Options FollowSymLinks",
            "    AllowOverride None",
            "    <IfModule authz_core_module>",
            "        Require all granted",
            "    </IfModule>",
            "</Directory>",
        ]
        if "ssl" in names:
            lines.append(f'SSLSessionCache "shmcb:{self.run_dir}/ssl_scache(512000)"')
        if "mime" in names:
            lines.append(f'TypesConfig "{self.conf_dir}/mime.types"')
        if "dir" in names:
            lines.append("DirectoryIndex index.html")
        if "cgid" in names:
            lines.append(f'ScriptSock "{self.run_dir}/cgid.sock"')
        if "cgid" in names or "cgi" in names:
            if "alias" in names:
                lines.append(f'ScriptAlias /cgi-bin/ "{self.cgi_bin}/"')
            lines += [
                f'<Directory "{self.cgi_bin}">',
                "    AllowOverride None",
                "    Options +ExecCGI",
                "    <IfModule authz_core_module>",
                "        Require all granted",
                "    </IfModule>",
                "</Directory>",
            ]
        if "status" in names:
            lines += [
                "<Location /server-status>",
                "    SetHandler server-status",
                "    <IfModule authz_host_module>",
                "        Require ip 127.0.0.1",
                "    </IfModule>",
                "</Location>",
            ]
        lines.append("")
        for i, s in enumerate(self.snippets):
            lines.append(f"# --- snippet {i}")
            lines.append(s.rstrip("\n"))
        return "\n".join(lines) + "\n"

    def write_config(self) -> str:
        """Write conf/httpd.conf and return its text."""
        text = self.config_text()
        self.conf_file.write_text(text)
        return text

    # ------------------------------------------------------------------ files
    def write_file(self, relpath: str, content: str | bytes, *, mode: int = 0o644,
                   base: Path | None = None) -> Path:
        """Write ``content`` to ``base``/``relpath`` (base defaults to htdocs), parents mode 755."""
        p = Path(base or self.htdocs) / relpath
        paths.make_dirs(p.parent)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chmod(p, mode)
        return p

    def write_cgi(self, name: str, script: str | bytes) -> Path:
        """An executable script in cgi-bin/ (URL ``/cgi-bin/<name>``); give it a ``#!`` line."""
        return self.write_file(name, script, mode=0o755, base=self.cgi_bin)

    # ------------------------------------------------------------------ apache2 commands
    def _env(self) -> dict[str, str]:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        for k in ("RUST_BACKTRACE", "RUST_LOG", "LD_LIBRARY_PATH", "ASAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        env.update(self.env)
        return env

    def _check_module(self) -> None:
        if self.with_bastion and not self.module_path.exists():
            raise ModuleMissingError(module_missing_message(self.module_path))

    def apache2(self, *args: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``apache2 -d <root> -f <conf> *args``; return (returncode, stdout+stderr)."""
        cmd = [str(paths.APACHE2), "-d", str(self.root), "-f", str(self.conf_file), *args]
        # A file, not a pipe: the daemon inherits the descriptors and must not hold our read open.
        with tempfile.TemporaryFile() as out:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=self._env(), timeout=timeout, cwd=self.root).returncode
            out.seek(0)
            return rc, out.read().decode("utf-8", "replace")

    def configtest(self) -> tuple[int, str]:
        """Write the config and run ``apache2 -t``: (returncode, combined output)."""
        self._check_module()
        self.write_config()
        return self.apache2("-t")

    # ------------------------------------------------------------------ lifecycle
    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @property
    def pid(self) -> int | None:
        """The parent's pid if it is running."""
        pid = self._read_pid() or self._pid
        return pid if procfs.alive(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def _fail(self, what: str, output: str = "", since: int = 0) -> HttpdError:
        msg = f"{what} ({self.root})"
        if output.strip():
            msg += f"\n--- apache2 output:\n{output.strip()}"
        new = self.log_lines(since)[-40:]
        msg += f"\n--- error log ({self.error_log}) since the call:\n" + "\n".join(new)
        return HttpdError(msg)

    def start(self, timeout: float = 10.0) -> "HttpdServer":
        """Write the config, ``apache2 -k start``, and wait until the pid file exists and the
        HTTP port accepts connections. Raises HttpdError (with the error-log tail) on failure."""
        self._check_module()
        if self.is_running():
            raise HttpdError(f"{self} is already running")
        self.write_config()
        if self.pid_file.exists():
            self.pid_file.unlink()
        offset = self.log_size()
        rc, out = self.apache2("-k", "start")
        if rc != 0:
            raise self._fail(f"apache2 -k start failed with rc {rc}", out, offset)
        deadline = time.monotonic() + timeout
        next_scan = time.monotonic() + 0.1
        while True:
            pid = self._read_pid()
            if pid:
                if not procfs.alive(pid):
                    raise self._fail(f"apache2 (pid {pid}) exited during startup", out, offset)
                if port_accepts(self.http_port, timeout=0.2):
                    break
            elif time.monotonic() >= next_scan:
                next_scan = time.monotonic() + 0.1
                if not procfs.pids_with_arg(str(self.conf_file)) and not self.pid_file.exists():
                    raise self._fail("apache2 exited during startup", out, offset)
            if time.monotonic() > deadline:
                raise self._fail(f"apache2 did not come up within {timeout}s", out, offset)
            time.sleep(POLL)
        self._pid = pid
        self.generation += 1
        return self

    def _reload(self, how: str, timeout: float) -> "HttpdServer":
        pid = self.pid
        if pid is None:
            raise HttpdError(f"{self}: cannot {how}, not running")
        self._check_module()
        self.write_config()
        old_children = set(procfs.children(pid))
        offset = self.log_size()
        rc, out = self.apache2("-k", how)
        if rc != 0:
            raise self._fail(f"apache2 -k {how} failed with rc {rc}", out, offset)
        deadline = time.monotonic() + timeout
        while not RESUMING_RE.search(self.read_log(offset)):
            if not procfs.alive(pid):
                self._pid = None
                raise self._fail(f"apache2 (pid {pid}) died during {how}", out, offset)
            if time.monotonic() > deadline:
                raise self._fail(f"no new generation within {timeout}s after {how}", out, offset)
            time.sleep(POLL)
        # a child of the new generation, then the listener
        while not (set(procfs.children(pid)) - old_children) or not port_accepts(self.http_port):
            if not procfs.alive(pid):
                self._pid = None
                raise self._fail(f"apache2 (pid {pid}) died after {how}", out, offset)
            if time.monotonic() > deadline:
                raise self._fail(f"no new child within {timeout}s after {how}", out, offset)
            time.sleep(POLL)
        self.generation += 1
        return self

    def graceful(self, timeout: float = 10.0) -> "HttpdServer":
        """Rewrite the config, ``apache2 -k graceful``, wait for the new generation."""
        return self._reload("graceful", timeout)

    def restart(self, timeout: float = 10.0) -> "HttpdServer":
        """Rewrite the config, ``apache2 -k restart``, wait for the new generation."""
        return self._reload("restart", timeout)

    def reload_config(self, snippets: Iterable[str] | str | None = None, *,
                      restart: bool = False, timeout: float = 10.0) -> "HttpdServer":
        """Replace the snippets (if given) and do a graceful (or full) restart."""
        if snippets is not None:
            self.set_conf(snippets)
        return self.restart(timeout) if restart else self.graceful(timeout)

    def stop(self, timeout: float = 10.0) -> "HttpdServer":
        """``apache2 -k stop`` and wait until the parent is gone; SIGKILL everything after
        ``timeout``. A no-op if not running."""
        pid = self.pid
        if pid is None:
            self._pid = None
            return self
        kids = procfs.children(pid)
        rc, _ = self.apache2("-k", "stop")
        if rc != 0:  # e.g. the config on disk no longer parses: signal directly
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while procfs.alive(pid) and time.monotonic() < deadline:
            time.sleep(POLL)
        if procfs.alive(pid):
            kids = sorted(set(kids) | set(procfs.children(pid)))
            self._kill(pid, *kids)
        # children normally are reaped by the parent; make sure none is left over
        self._kill(*[k for k in kids if procfs.alive(k) and str(self.conf_file) in procfs.cmdline(k)])
        try:
            self.pid_file.unlink()
        except FileNotFoundError:
            pass
        self._pid = None
        return self

    @staticmethod
    def _kill(*pids: int) -> None:
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while any(procfs.alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(POLL)

    def _kill_leftovers(self) -> None:
        """Kill a daemon left running by an earlier (crashed) run on this same config file."""
        if not self.conf_file.exists():
            return
        stale = procfs.pids_with_arg(str(self.conf_file))
        if stale:
            self._kill(*stale)

    def close(self) -> list[str]:
        """Stop, and return the error-log problems not yet checked; unregister from ``live``."""
        try:
            self.stop()
        finally:
            if self in HttpdServer.live:
                HttpdServer.live.remove(self)
        self._allow = list(self._allow_persistent)
        return self.check_log(raise_=False)

    # ------------------------------------------------------------------ processes (/proc)
    def child_pids(self) -> list[int]:
        """Live children of the parent (MPM children and the cgid daemon)."""
        pid = self.pid
        return procfs.children(pid) if pid else []

    def all_pids(self) -> list[int]:
        pid = self.pid
        return [pid] + procfs.children(pid) if pid else []

    def thread_counts(self) -> dict[int, int]:
        return {p: procfs.thread_count(p) for p in self.all_pids()}

    def fd_counts(self) -> dict[int, int]:
        return {p: procfs.fd_count(p) for p in self.all_pids()}

    def rss_bytes(self) -> dict[int, int]:
        return {p: procfs.rss_bytes(p) for p in self.all_pids()}

    def cpu_seconds(self, include_reaped: bool = True) -> float:
        """utime+stime of parent and live children; with ``include_reaped`` also the children
        the parent already reaped (its cutime+cstime), so the value never goes down."""
        pid = self.pid
        if not pid:
            return 0.0
        total = procfs.cpu_seconds(pid, include_reaped_children=include_reaped)
        return total + sum(procfs.cpu_seconds(c) for c in procfs.children(pid))

    def process_stats(self) -> ProcessStats:
        pids = self.all_pids()
        return ProcessStats(
            parent=pids[0] if pids else None,
            children=pids[1:],
            threads={p: procfs.thread_count(p) for p in pids},
            fds={p: procfs.fd_count(p) for p in pids},
            rss={p: procfs.rss_bytes(p) for p in pids},
            cpu_seconds=self.cpu_seconds(),
        )

    def wait_children(self, n: int = 1, timeout: float = 10.0) -> list[int]:
        """Wait until the parent has at least ``n`` children; return them."""
        deadline = time.monotonic() + timeout
        while True:
            kids = self.child_pids()
            if len(kids) >= n:
                return kids
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self}: {len(kids)} children after {timeout}s, wanted {n}")
            time.sleep(POLL)

    # ------------------------------------------------------------------ error log
    def log_size(self) -> int:
        try:
            return self.error_log.stat().st_size
        except FileNotFoundError:
            return 0

    def read_log(self, since: int = 0) -> str:
        """The error log from byte offset ``since``."""
        try:
            with open(self.error_log, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def _complete_lines(self, since: int) -> tuple[list[str], int]:
        """Complete lines from byte offset ``since`` and the offset just after the last one."""
        try:
            with open(self.error_log, "rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return [], since
        end = data.rfind(b"\n") + 1  # a line being written right now is left for later
        return data[:end].decode("utf-8", "replace").splitlines(), since + end

    def log_lines(self, since: int = 0) -> list[str]:
        """Complete lines of the error log from byte offset ``since``."""
        return self._complete_lines(since)[0]

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_lines()[-n:])

    def read_access_log(self) -> list[str]:
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def mark_test_start(self) -> None:
        """Called by the per-test fixture: remember the log size, reset the allow list."""
        self._test_offset = self.log_size()
        self._allow = list(self._allow_persistent)

    def log_lines_since_test_start(self) -> list[str]:
        return self.log_lines(self._test_offset)

    def wait_for_log(self, regex: str | re.Pattern, timeout: float = 10.0,
                     since: int | None = None) -> re.Match:
        """Wait until a line from ``since`` (default: the test's start) matches ``regex``."""
        pat = re.compile(regex) if isinstance(regex, str) else regex
        start = self._test_offset if since is None else since
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log_lines(start):
                m = pat.search(line)
                if m:
                    return m
            if time.monotonic() > deadline:
                raise TimeoutError(f"no error-log line matching {pat.pattern!r} within {timeout}s;"
                                   f" tail:\n{self.log_tail()}")
            time.sleep(POLL)

    def log_allow(self, *regexes: str, persistent: bool = False) -> "HttpdServer":
        """Allow error-log lines matching any regex (re.search) for the current test, or for the
        server's whole life with ``persistent=True`` (e.g. for warnings at startup)."""
        self._allow.extend(regexes)
        if persistent:
            self._allow_persistent.extend(regexes)
        return self

    def log_allow_reset(self) -> "HttpdServer":
        """Drop every allowed pattern, the defaults (DEFAULT_LOG_ALLOW) and persistent ones too."""
        self._allow, self._allow_persistent = [], []
        return self

    def log_problems(self) -> list[str]:
        """Unexpected lines (warn or worse, or raw) since the last check; does not advance."""
        return errorlog.find_problems(self.log_lines(self._checked_offset), self._allow,
                                      strict_raw=self.strict_raw_log_lines)

    def check_log(self, raise_: bool = True) -> list[str]:
        """Check the lines since the last check, advance the mark, raise LogCheckError if any."""
        lines, self._checked_offset = self._complete_lines(self._checked_offset)
        problems = errorlog.find_problems(lines, self._allow, strict_raw=self.strict_raw_log_lines)
        if problems and raise_:
            raise LogCheckError(self, problems)
        return problems
