"""The SQLite store at a first start: every engine job writing at once on a fresh database, none fails.

The app's first start on a new DATA_DIR runs every APScheduler job at the same moment (the demo feed's first
batch, acknowledgements, the knowledge base's seeding and indexing, calibration, outcomes, routing). Writers
queue on SQLite's write lock (BEGIN IMMEDIATE, a 30 s busy timeout, WAL), so none may end in "database is
locked" or any other failure."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.core.models import JobStatus
from engine.core.settings import load_settings
from engine.runtime import build_runtime
from engine.scheduler import engine_jobs, start_scheduler, stop_scheduler
from tests.kb.embeddings_emulator import EmbeddingsEmulator
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_a_first_start_on_a_fresh_sqlite_database_has_no_job_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with EmbeddingsEmulator() as embeddings:
        settings = load_settings(
            _env_file=None,
            DATA_DIR=tmp_path / "data",
            DEMO_FEED_ENABLED=True,
            EMBEDDINGS_PROVIDER="openai",
            OPENAI_BASE_URL=embeddings.url + "/v1",
            OPENAI_API_KEY="sk-test",
            WORKER_ID="first-start",
        )
        assert settings.database_url.startswith("sqlite"), "the default store: a SQLite file in DATA_DIR"
        runtime = build_runtime(settings)
        jobs = set(engine_jobs(runtime))
        scheduler = start_scheduler(runtime)
        try:

            def every_job_ran() -> bool:
                with runtime.factory() as session:
                    ran = {row.job for row in session.scalars(select(JobStatus)) if row.runs}
                return jobs <= ran

            wait_until(every_job_ran, timeout=600, interval=1, what="every engine job's first run")
        finally:
            stop_scheduler(scheduler)
            runtime.engine.dispose()
    with runtime.factory() as session:
        statuses = session.scalars(select(JobStatus)).all()
    assert {status.job for status in statuses} >= jobs
    assert [(status.job, status.last_error) for status in statuses if status.failures] == []
    assert not [record.getMessage() for record in caplog.records if "database is locked" in record.getMessage()]
