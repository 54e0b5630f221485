"""DATA_DIR is made 0700, secrets and the SQLite database 0600, and a secret is never visible with looser rights or
half-written, even when two processes make it at once."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.core.db import make_engine, upgrade_database
from engine.core.private_files import create_private_file, private_directory, read_or_create_secret
from engine.core.settings import load_settings
from engine.runtime import build_runtime


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    """The umask that made the findings' 0755/0644 files: the rights must come from the code, not the umask."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_data_directory_is_0700_and_an_existing_one_is_left_alone(
    tmp_path: Path, loose_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    assert mode(private_directory(tmp_path / "new" / "data")) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_directory(shared)
    assert mode(shared) == 0o755
    assert "chmod 700" in caplog.text


def test_the_sqlite_database_and_its_journal_files_are_0600(tmp_path: Path, loose_umask: None) -> None:
    database = tmp_path / "data" / "no_touch.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade_database(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE scratch (x)"))
        connection.execute(text("INSERT INTO scratch VALUES (1)"))
        journals = [path for path in database.parent.iterdir() if path.name != database.name]
        assert {path.name for path in journals} >= {"no_touch.db-wal", "no_touch.db-shm"}
        assert {path.name: mode(path) for path in journals} == {path.name: 0o600 for path in journals}
    engine.dispose()
    assert (mode(database.parent), mode(database)) == (0o700, 0o600)


def test_the_runtime_makes_data_dir_private(tmp_path: Path, loose_umask: None) -> None:
    settings = load_settings(_env_file=None, DATA_DIR=tmp_path / "fresh", ENGINE_ENABLED=False, DEMO_FEED_ENABLED=False)
    runtime = build_runtime(settings)
    runtime.engine.dispose()
    assert mode(tmp_path / "fresh") == 0o700
    assert mode(tmp_path / "fresh" / "no_touch.db") == 0o600


def test_a_private_file_is_created_once(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "file"
    assert create_private_file(path) and not create_private_file(path)
    assert mode(path) == 0o600


def test_a_secret_is_made_once_and_kept(tmp_path: Path, loose_umask: None) -> None:
    path = tmp_path / "data" / "key"
    first = read_or_create_secret(path, lambda: "first")
    assert (first, read_or_create_secret(path, lambda: "second")) == ("first", "first")
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    assert [p.name for p in path.parent.iterdir()] == ["key"], "no temporary file left behind"


def _make_secret(path: str, start: multiprocessing.synchronize.Event, results: multiprocessing.Queue) -> None:
    start.wait()
    results.put(read_or_create_secret(Path(path), lambda: f"made by {os.getpid()}"))


def test_processes_racing_to_make_a_secret_all_read_the_same_one(tmp_path: Path, loose_umask: None) -> None:
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    path = tmp_path / "data" / "session-signing-key"
    workers = [context.Process(target=_make_secret, args=(str(path), start, results)) for _ in range(8)]
    for worker in workers:
        worker.start()
    start.set()
    seen = {results.get(timeout=60) for _ in workers}
    for worker in workers:
        worker.join(timeout=60)
    assert len(seen) == 1 and seen == {path.read_text(encoding="utf-8")}
    assert mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["session-signing-key"]
