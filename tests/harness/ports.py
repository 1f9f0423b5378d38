"""Free TCP ports on 127.0.0.1, never handed out twice in one process."""

from __future__ import annotations

import random
import socket
import threading

_lock = threading.Lock()
_given: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
            return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Same as httpd: SO_REUSEADDR, so a port with only TIME_WAIT leftovers counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and was never returned before in this process.

    Candidates come first from below the kernel's ephemeral range (20000..ephemeral low), so a
    client connection cannot grab the port as its source port between this call and httpd's bind;
    the fallback is the kernel's choice (bind to port 0).
    """
    lo, _ = _ephemeral_range()
    with _lock:
        top = min(lo, 65536)
        if top - 20000 > 1000:
            for _ in range(200):
                port = random.randrange(20000, top)
                if port not in _given and _bindable(port):
                    _given.add(port)
                    return port
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            if port not in _given:
                _given.add(port)
                return port
    raise RuntimeError("no free TCP port found on 127.0.0.1")


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (see :func:`free_port`)."""
    return [free_port() for _ in range(n)]


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """True if a TCP connect to ``host:port`` succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
