"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, settings, factories."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.demo import ALLOWED_DOMAINS, CONTACT_POINTS
from engine.core.db import make_engine, make_session_factory, upgrade_database
from engine.core.models import Base
from engine.core.private_files import create_private_file
from engine.core.settings import Settings, load_settings
from engine.operators import auth
from tests.mail_servers import mail_servers  # noqa: F401 (Postfix and Dovecot, session-wide)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


SHARED_SERVERS = {"mail_servers": "mail"}
"""Session-wide servers a test may share: with `make test`'s workers (pytest-xdist, `--dist loadgroup`) every test
that uses one runs on the same worker, so one Postfix and Dovecot serve the run instead of one per worker."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, group in SHARED_SERVERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.xdist_group(group))


class _ArgonOncePerInput(PasswordHasher):
    """argon2 with the product's parameters costs 0.1-0.25 s of CPU per hash or verification, and tests create
    operators with the same few passwords and sign them in again and again: each password is hashed once per run and
    each (hash, password) verified once. Both are pure functions of their input, so every answer (a mismatch raises,
    as before) is the one argon2 gives; what the code under test calls is unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self._hashes: dict[str | bytes, str] = {}
        self._verified: dict[tuple[str | bytes, str | bytes], Exception | None] = {}

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        if salt is not None:
            return super().hash(password, salt=salt)
        if password not in self._hashes:
            self._hashes[password] = super().hash(password)
        return self._hashes[password]

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        key = (hash, password)
        if key not in self._verified:
            try:
                super().verify(hash, password)
                self._verified[key] = None
            except (VerificationError, InvalidHashError) as error:
                self._verified[key] = error
        if (error := self._verified[key]) is not None:
            raise error.with_traceback(None)
        return True


@pytest.fixture(scope="session", autouse=True)
def _argon_once_per_input() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "_hasher", _ArgonOncePerInput())
        yield


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end. CI fails if the server is down."""
    name = f"nts_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives restarts
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    migrated = make_engine(url)
    upgrade_database(migrated)
    migrated.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_all_tables(engine: Engine) -> None:
    """Empty the PostgreSQL database as TRUNCATE ... RESTART IDENTITY would: on tables as small as a test leaves
    them, DELETE and resetting the used sequences take about a tenth of TRUNCATE's second (new files for 31 tables)."""
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
        connection.execute(
            text(
                "SELECT setval(format('%I.%I', schemaname, sequencename), start_value, false) "
                "FROM pg_sequences WHERE last_value IS NOT NULL"
            )
        )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to the newest schema once per run: migrating takes about half a second, copying
    the file a few milliseconds."""
    path = tmp_path_factory.mktemp("sqlite-template") / "migrated.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade_database(engine)
    engine.dispose()  # the last connection's close checkpoints the WAL into the file
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """This test's own migrated SQLite database: a private (0600) copy of the template, as make_engine creates it."""
    path = tmp_path / "test.db"
    create_private_file(path)
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every database test runs on both SQLite and PostgreSQL, each starting empty."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    _empty_all_tables(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for one test: its own data folder and database, no demo feed, nothing from `.env`; the desk
    speaks for the demo articles' company (its domains and contact points), whose articles many tests load. Tickets
    do not wait for a first calibration (KB_READY_WAIT_SECONDS=0): most tests index articles and analyse at once;
    tests/engine/test_readiness.py turns the wait on."""
    return load_settings(
        _env_file=None,
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=database_url,
        DEMO_FEED_ENABLED=False,
        OUTGOING_ALLOWED_DOMAINS=",".join(ALLOWED_DOMAINS),
        OUTGOING_CONTACT_POINTS=",".join(CONTACT_POINTS),
        ENGINE_ENABLED=False,
        WORKER_ID="test-worker",
        KB_READY_WAIT_SECONDS=0,
    )
