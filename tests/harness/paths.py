"""Well-known paths of the test harness (all overridable by environment variables)."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (the directory holding ``Cargo.toml`` and ``tests/``).
REPO_ROOT: Path = Path(__file__).resolve().parents[2]

#: The module under test; env ``BASTION_MODULE`` overrides.
MODULE_PATH: Path = Path(
    os.environ.get("BASTION_MODULE", REPO_ROOT / "target" / "release" / "libmod_bastion.so")
).resolve()

#: Everything the tests generate lives below this directory; env ``BASTION_TEST_GEN`` overrides.
GEN_ROOT: Path = Path(os.environ.get("BASTION_TEST_GEN", REPO_ROOT / "build" / "test-gen")).resolve()

#: The apache2 binary; env ``APACHE2`` overrides.
APACHE2: Path = Path(os.environ.get("APACHE2", "/usr/sbin/apache2"))

#: Where Debian keeps the loadable httpd modules; env ``APACHE_MODULES_DIR`` overrides.
APACHE_MODULES_DIR: Path = Path(os.environ.get("APACHE_MODULES_DIR", "/usr/lib/apache2/modules"))

#: Files of certificates, shared by the whole session.
CERTS_DIR: Path = GEN_ROOT / "certs"


def make_dirs(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` and its missing parents with ``mode`` (umask-proof), so www-data can traverse."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        os.chmod(d, mode)
    return path


def gen_root() -> Path:
    """``GEN_ROOT``, created (mode 755) if missing."""
    return make_dirs(GEN_ROOT)
