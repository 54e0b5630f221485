"""SQLite is single-engine: a second engine process on the same file refuses to start and says why."""

from __future__ import annotations

from pathlib import Path

from engine.core.db import make_engine, upgrade_database
from engine.core.settings import load_settings
from engine.ops.engine_lock import claim_engine
from tests.engine_process import run_engine, start_engine
from tests.waiting import wait_until


def test_a_second_engine_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, DATA_DIR=tmp_path / "data", DEMO_FEED_ENABLED=False)
    upgrade_database(make_engine(settings.database_url))
    lock = Path(settings.database_url.removeprefix("sqlite:///") + ".engine.lock")
    first = start_engine(settings, "run", cwd=tmp_path)
    try:
        wait_until(lambda: lock.exists() and "pid" in lock.read_text(), timeout=180, what="the first engine's lock")
        for args in (("run",), ("run", "--once")):
            second = run_engine(settings, *args, cwd=tmp_path)
            assert second.returncode == 2, second.stderr
            assert "already running on the SQLite database" in second.stderr
            assert f"pid {first.pid}" in second.stderr and "PostgreSQL" in second.stderr
    finally:
        first.terminate()
        first.wait(timeout=120)
    assert run_engine(settings, "run", "--once", cwd=tmp_path).returncode == 0


def test_the_same_process_may_claim_its_own_engine_slot_again(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, DATA_DIR=tmp_path / "data", DEMO_FEED_ENABLED=False)
    claim_engine(settings)
    claim_engine(settings)
