"""Parsing and checking httpd's error log.

httpd 2.4's default ErrorLogFormat gives lines like::

    [Mon Nov 23 10:49:37.123456 2026] [core:warn] [pid 12:tid 34] AH00098: ...
    [Mon Nov 23 10:49:37.123456 2026] [mpm_prefork:notice] [pid 12] AH00163: ...

httpd escapes newlines in messages, so one entry is one line. A line that does not have this form
was written raw to stderr (a Rust panic before the hook is in place, a crash message, ...);
it is reported as a problem too unless ``strict_raw`` is off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

LINE_RE = re.compile(
    r"^\[(?P<time>[^\]]*)\] \[(?P<module>[^\]:]*):(?P<level>[a-z]+[0-9]*)\] "
    r"\[pid (?P<pid>\d+)(?::tid (?P<tid>\d+))?\]\s?(?P<msg>.*)$"
)

#: Levels that fail a test unless allowed.
BAD_LEVELS = frozenset({"warn", "error", "crit", "alert", "emerg"})

#: Raw lines that are never a problem (empty lines and the like).
_HARMLESS_RAW = re.compile(r"^\s*$")


@dataclass(frozen=True)
class LogLine:
    raw: str
    module: str | None = None
    level: str | None = None
    pid: int | None = None
    tid: int | None = None
    msg: str = ""

    @property
    def formatted(self) -> bool:
        return self.level is not None


def parse_line(line: str) -> LogLine:
    """Split one error-log line into its fields (``level`` is None for a raw line)."""
    line = line.rstrip("\r\n")
    m = LINE_RE.match(line)
    if not m:
        return LogLine(raw=line, msg=line)
    return LogLine(
        raw=line,
        module=m["module"],
        level=m["level"],
        pid=int(m["pid"]),
        tid=int(m["tid"]) if m["tid"] else None,
        msg=m["msg"],
    )


def find_problems(
    lines: Iterable[str], allow: Sequence[str | re.Pattern] = (), strict_raw: bool = True
) -> list[str]:
    """Lines at level warn or worse (and raw lines if ``strict_raw``) not matched by any ``allow``
    regex (``re.search`` over the whole line)."""
    pats = [p if isinstance(p, re.Pattern) else re.compile(p) for p in allow]
    out = []
    for line in lines:
        pl = parse_line(line)
        if pl.formatted:
            if pl.level not in BAD_LEVELS:
                continue
        elif not strict_raw or _HARMLESS_RAW.match(pl.raw):
            continue
        if any(p.search(pl.raw) for p in pats):
            continue
        out.append(pl.raw)
    return out
