"""An outage is told once: the first failure with its traceback, later ones in one line, nothing while the
connector's breaker is open, one line when it opens and one when it closes; a slow job says once how many runs
it made the scheduler skip; `engine run --once` fails when a job failed, with only its result on stdout."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session, sessionmaker

from connectors.http import CircuitBreaker, UnreachableError, breaker_for, reset_breakers
from engine import jobs
from engine.core.models import utcnow
from engine.core.settings import Settings
from engine.jobs import run_job
from engine.scheduler import SKIPPED, count_skipped_runs
from tests.engine_process import run_engine
from tests.waiting import wait_until


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    reset_breakers()
    jobs._failing.clear()
    yield
    reset_breakers()
    jobs._failing.clear()


def test_an_outage_is_logged_once_and_its_end_once(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    breaker = breaker_for("mailbox", threshold=3, reset_seconds=60)
    up = False

    def poll() -> dict[str, int]:
        breaker.probe()
        breaker.before_call()
        if not up:
            breaker.record_failure("connection refused")
            raise UnreachableError("mailbox", "connection refused", retryable=True)
        breaker.record_success()
        return {}

    caplog.set_level(logging.INFO)
    for _ in range(20):
        run_job(session_factory, "w", "poll_mailbox", poll)
    up = True
    run_job(session_factory, "w", "poll_mailbox", poll)
    run_job(session_factory, "w", "poll_mailbox", poll)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 5, lines
    assert "Traceback" in lines[0]
    assert "failed again (2 in a row)" in lines[1] and "\n" not in lines[1]
    assert "3 failed calls in a row, pausing calls" in lines[2], "the third failure opens the breaker: one line"
    assert "reachable again after 20 failed calls" in lines[3]
    assert "works again after 20 failed runs" in lines[4]


def test_a_paused_source_is_tried_again_on_its_next_poll_not_after_the_reset() -> None:
    now = [0.0]
    breaker = CircuitBreaker("mailbox", threshold=1, reset_seconds=60, clock=lambda: now[0])
    breaker.record_failure("down")
    now[0] = 5.0
    assert breaker.state == "open"
    breaker.probe()
    assert breaker.state == "half-open"
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"


def test_a_real_schedulers_skipped_runs_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """APScheduler's own warnings, from a job that outlasts its 50 ms interval: counted for its run's one line."""
    count_skipped_runs()
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    release = threading.Event()
    scheduler.add_job(release.wait, "interval", seconds=0.05, id="slow_poll", next_run_time=utcnow())
    with caplog.at_level(logging.WARNING, logger="apscheduler"):
        scheduler.start()
        try:
            wait_until(lambda: SKIPPED.counts["slow_poll"] >= 3, timeout=60, what="skipped runs of a slow job")
        finally:
            release.set()
            scheduler.shutdown(wait=True)
    assert "maximum number of running instances" not in caplog.text
    assert SKIPPED.take("slow_poll") >= 3 and SKIPPED.take("slow_poll") == 0


def test_missed_run_times_are_counted_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    count_skipped_runs()

    class Job:
        id = "poll_imap"

    with caplog.at_level(logging.WARNING, logger="apscheduler.executors.default"):
        for _ in range(20):
            logging.getLogger("apscheduler.executors.default").warning(
                'Run time of job "%s" was missed by %s', Job(), "0:01:05"
            )
    assert "was missed by" not in caplog.text
    assert SKIPPED.take("poll_imap") == 20


def test_run_once_fails_when_a_job_failed_and_keeps_logs_off_stdout(settings: Settings, tmp_path: Path) -> None:
    result = run_engine(
        settings,
        "run",
        "--once",
        cwd=tmp_path,
        SNOW_API_URL="http://127.0.0.1:9/api/now/table/incident",
        SNOW_AUTH_USERNAME="integration",
        SNOW_AUTH_PASSWORD="snow-password-1",
        CONNECTOR_RETRY_ATTEMPTS=1,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert "servicenow" in report["poll_servicenow"]["failed"]
    assert "poll_servicenow" in result.stderr
    logged = [line for line in result.stderr.splitlines() if line.startswith("{")]
    assert logged and all(json.loads(line)["level"] for line in logged)
