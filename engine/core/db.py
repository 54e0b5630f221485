"""Database engines and sessions for SQLite (embedded default) and PostgreSQL, and the schema upgrade."""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from engine.core.private_files import create_private_file, private_directory

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def make_engine(url: str) -> Engine:
    """An engine tuned per dialect: WAL and a busy timeout for SQLite, pre-ping for PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_directory(Path(parsed.database).parent)
            create_private_file(Path(parsed.database))  # SQLite gives its -wal and -shm files the same mode
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_recycle=1800)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener own transactions
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    """Take SQLite's write lock at BEGIN, so two writers queue instead of failing mid-transaction."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else session_or_engine
    return bind.dialect.name == "postgresql"


def newest_revision() -> str:
    """The newest migration's revision, read off the file names (each migration is named after its revision, and
    tests/engine/core/test_migrations.py holds that true against Alembic's own head)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def schema_is_current(engine: Engine) -> bool:
    """Whether the database already holds the newest migration: then a start needs no Alembic at all (importing it
    and running its environment cost the first page after a restart about half a second)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            newest_revision()
        ]


def upgrade_database(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe to call on every start, from several processes."""
    if schema_is_current(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key("migrations")})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def advisory_key(name: str) -> int:
    """A stable 32-bit key for a PostgreSQL advisory lock named in words."""
    return zlib.crc32(f"no-touch:{name}".encode())


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Run-once-at-a-time across every process: a PostgreSQL advisory lock, or a process lock on SQLite."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            acquired = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(name)}).scalar()
            )
            try:
                yield acquired
            finally:
                if acquired:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key(name)})
                connection.commit()
        return
    with _local_locks_guard:
        lock = _local_locks.setdefault(f"{engine.url}:{name}", threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def serialize_transaction(session: Session, name: str) -> None:
    """Make transactions that call this with the same `name` run one after the other, until this one ends.

    A PostgreSQL transaction-level advisory lock (waits, released at commit or rollback), so a check-then-insert
    such as "no admin yet, create one" cannot run twice at once on any replica. SQLite needs nothing: every
    transaction here begins IMMEDIATE and so holds the database's write lock already.
    """
    if is_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
