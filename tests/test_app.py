"""The dashboard's server (app.py): the engine starts with it, not with the first page someone opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import Ticket
from engine.core.settings import Settings
from tests.app_process import streamlit_app
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow]


def tickets(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Ticket)) or 0


def test_after_a_restart_the_sources_are_polled_before_anyone_opens_a_page(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Only the health check is asked for, never a page: the demo feed's tickets still arrive."""
    env = {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.DATA_DIR),
        "ENGINE_ENABLED": "true",
        "DEMO_FEED_ENABLED": "true",
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "streamlit.log"
    with streamlit_app(env, log):
        wait_until(lambda: tickets(session_factory) > 0, timeout=240, what="the demo feed's tickets, polled unasked")
    assert "missing ScriptRunContext" not in log.read_text(), "the start's own build is no warning for an operator"
