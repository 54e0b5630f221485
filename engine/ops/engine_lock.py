"""SQLite is single-engine: one process at a time runs the engine's jobs on a SQLite file.

SQLite has no row locks to share work safely (claims, the outbox and write-back rely on `FOR UPDATE SKIP LOCKED`
and advisory locks on PostgreSQL), and two engines on one file wrote notes twice. An exclusive lock on a file
beside the database, held for the life of the process, makes a second engine refuse to start with a clear
message; the operating system releases it when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from engine.core.settings import Settings

_held: dict[Path, IO[str]] = {}


class EngineAlreadyRunningError(RuntimeError):
    """Another process runs the engine on the same SQLite file."""


def sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def claim_engine(settings: Settings) -> None:
    """Take this process's engine slot on a SQLite database, or raise naming the holder and the way out."""
    database = sqlite_file(settings)
    if database is None or database in _held:
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    path = database.with_name(database.name + ".engine.lock")
    handle = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise EngineAlreadyRunningError(
            f"an engine is already running on the SQLite database {database} ({holder}). SQLite allows one engine "
            "process; run extra workers on PostgreSQL (DATABASE_URL=postgresql+psycopg://...)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    _held[database] = handle
