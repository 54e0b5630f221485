"""An idle session ends on every page, data pages included, and shows nothing of the ticket it was on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import make_engine, upgrade_database
from engine.core.settings import Settings
from tests.factories import new_ticket
from tests.pages.conftest import open_page, texts


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """Session expiry lives in the browser session, not the database: SQLite is enough here."""
    url = f"sqlite:///{tmp_path / 'test.db'}"
    engine = make_engine(url)
    upgrade_database(engine)
    engine.dispose()
    yield url


def test_an_idle_session_on_a_ticket_is_signed_out_and_shows_no_ticket(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = new_ticket(session_factory, app, subject="Payroll export for the board")
    at = open_page("pages/2_Ticket.py", "lee", id=str(ticket_id))
    assert "Payroll export" in at.title[0].value
    idle = app.DASHBOARD_SESSION_IDLE_MINUTES * 60
    at.session_state["auth_user"] = {**at.session_state["auth_user"], "last_seen": time.time() - idle - 1}
    at.run()
    assert "auth_user" not in at.session_state
    assert [button.label for button in at.button] == ["Sign in"]
    assert "Payroll export" not in texts(at) and not at.dataframe


def test_activity_keeps_a_session_alive(app: Settings) -> None:
    at = open_page("Home.py", "ann")
    almost = time.time() - app.DASHBOARD_SESSION_IDLE_MINUTES * 60 + 60
    at.session_state["auth_user"] = {**at.session_state["auth_user"], "last_seen": almost}
    at.run()
    assert at.session_state["auth_user"]["last_seen"] > almost + 30, "each page run counts as activity"
    assert at.title[0].value == "Today"
