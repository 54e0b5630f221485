"""Files only the desk's own account may read: DATA_DIR (0700), its secrets and the SQLite database (0600).

A secret is never visible with looser rights, not even for a moment: it is written to a private temporary file
and linked into place, so a second process starting at the same time reads the complete secret the first one
made instead of writing its own or reading half of one.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
_warned: set[Path] = set()


def private_directory(path: Path) -> Path:
    """`path` as a directory; made 0700 when it is new. An existing one is left as it is, with a warning once when
    other accounts may read it (an operator may share it on purpose, e.g. a container volume)."""
    path = Path(path)
    try:
        path.mkdir(mode=PRIVATE_DIRECTORY, parents=True)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 and path.resolve() not in _warned:
            _warned.add(path.resolve())
            log.warning("%s can be read by other accounts (mode %o): run `chmod 700 %s`", path, mode, path)
    return path


def create_private_file(path: Path) -> bool:
    """Create `path` empty with mode 0600 unless it exists; True when this call created it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE))
    except FileExistsError:
        return False
    return True


def read_or_create_secret(path: Path, make: Callable[[], str]) -> str:
    """The secret stored in `path`, made with `make()` and stored 0600 the first time.

    Two processes racing to create it both end up with the one that was linked into place first.
    """
    path = Path(path)
    private_directory(path.parent)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    value = make()
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(value)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic, and fails when another process linked its secret first
        except FileExistsError:
            return _read_secret(path)
    finally:
        temporary.unlink(missing_ok=True)
    return value


def _read_secret(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ValueError(f"{path} is empty: delete it and a new secret is made on the next start")
    return value
