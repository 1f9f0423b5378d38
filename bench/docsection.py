"""Writing a generated section of docs/benchmarks.md between its markers (bench/fcgi.py and
bench/md.py; bench/run.py keeps its own layout)."""

from __future__ import annotations

from pathlib import Path


def replace_section(docs: Path, begin: str, end: str, block: str) -> None:
    """Put ``block`` between the ``begin`` and ``end`` markers of ``docs`` (markers appended at
    the end of the file when missing)."""
    text = docs.read_text()
    if begin not in text:
        text = text.rstrip("\n") + "\n\n" + begin + "\n" + end + "\n"
    pre, rest = text.split(begin, 1)
    post = rest.split(end, 1)[1]
    docs.write_text(pre + begin + "\n" + block + "\n" + end + post)


def problems_text(problems: list[str]) -> str:
    """The closing line of a generated section: the run's warn/error log lines, or that there
    were none."""
    if not problems:
        return "No error-log lines at warn or worse during the run."
    return "Error-log lines at warn or worse during the run:\n\n```\n" + "\n".join(problems[:20]) + "\n```"
