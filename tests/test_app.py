"""The dashboard's server (app.py): the engine starts with it, not with the first page someone opens."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import JobStatus, Ticket
from engine.core.settings import Settings
from tests.app_process import app_environment, streamlit_app
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow]


def tickets(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Ticket)) or 0


def job_runs(factory: sessionmaker[Session]) -> int:
    """Runs of the engine's jobs recorded in the database, by every server process so far."""
    with factory() as session:
        return session.scalar(select(func.coalesce(func.sum(JobStatus.runs), 0))) or 0


def test_after_a_crash_and_a_restart_the_sources_are_polled_before_anyone_opens_a_page(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Only the health check is asked for, never a page: the first server polls the demo feed, dies by SIGKILL as in
    a crash (its engine lock held), and the restarted server's engine runs again with nobody signed in."""
    env = app_environment(settings, ENGINE_ENABLED="true", DEMO_FEED_ENABLED="true")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with streamlit_app(env, first_log, stop=signal.SIGKILL):
        wait_until(lambda: tickets(session_factory) > 0, timeout=240, what="the demo feed's tickets, polled unasked")
    before_restart = job_runs(session_factory)
    with streamlit_app(env, second_log):
        wait_until(
            lambda: job_runs(session_factory) > before_restart,
            timeout=240,
            what="the restarted server's engine running its jobs, unasked",
        )
    for log in (first_log, second_log):
        text = log.read_text()
        assert "missing ScriptRunContext" not in text, "the start's own build is no warning for an operator"
        assert "did not start with the server" not in text
