"""Process introspection by reading /proc directly (no psutil)."""

from __future__ import annotations

import os
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class ProcStat:
    pid: int
    comm: str
    state: str
    ppid: int
    utime: int  # clock ticks
    stime: int
    cutime: int
    cstime: int
    num_threads: int
    rss_pages: int


def stat(pid: int) -> ProcStat | None:
    """Parse /proc/<pid>/stat; None if the process does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    comm = data[lpar + 1 : rpar]
    f = data[rpar + 2 :].split()
    # f[0] is field 3 (state); field n is f[n-3]
    return ProcStat(
        pid=pid, comm=comm, state=f[0], ppid=int(f[1]),
        utime=int(f[11]), stime=int(f[12]), cutime=int(f[13]), cstime=int(f[14]),
        num_threads=int(f[17]), rss_pages=int(f[21]),
    )


def alive(pid: int | None) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    if not pid:
        return False
    st = stat(pid)
    return st is not None and st.state not in ("Z", "X")


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children(ppid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``ppid``, sorted."""
    out = []
    for pid in all_pids():
        st = stat(pid)
        if st and st.ppid == ppid and st.state not in ("Z", "X"):
            out.append(pid)
    return sorted(out)


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def pids_with_arg(arg: str) -> list[int]:
    """Live processes whose command line contains the exact argument ``arg``."""
    return [p for p in all_pids() if arg in cmdline(p) and alive(p)]


def thread_count(pid: int) -> int:
    """Number of threads (entries of /proc/<pid>/task); 0 if gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def fd_count(pid: int) -> int:
    """Number of open file descriptors (entries of /proc/<pid>/fd); 0 if gone."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rss_bytes(pid: int) -> int:
    """Resident set size in bytes (from /proc/<pid>/statm); 0 if gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pid: int, include_reaped_children: bool = False) -> float:
    """utime+stime of ``pid`` in seconds (+ cutime+cstime of its reaped children if asked)."""
    st = stat(pid)
    if st is None:
        return 0.0
    ticks = st.utime + st.stime
    if include_reaped_children:
        ticks += st.cutime + st.cstime
    return ticks / CLK_TCK
