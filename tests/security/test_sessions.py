"""An idle session ends on every page, data pages included, and shows nothing of the ticket it was on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import OperatorSession, utcnow
from engine.core.settings import Settings
from tests.factories import age_session, new_ticket
from tests.pages.conftest import open_page, texts


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """What a page does with an ended session does not depend on the database: SQLite is enough here."""
    return sqlite_url


def test_an_idle_session_on_a_ticket_is_signed_out_and_shows_no_ticket(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = new_ticket(session_factory, app, subject="Payroll export for the board")
    at = open_page("pages/2_Ticket.py", "lee", id=str(ticket_id))
    assert "Payroll export" in at.title[0].value
    idle = timedelta(minutes=app.DASHBOARD_SESSION_IDLE_MINUTES, seconds=1)
    age_session(session_factory, at.session_state["auth_user"]["session_id"], idle=idle)
    at.run()
    assert "auth_user" not in at.session_state
    assert [button.label for button in at.button] == ["Sign in"]
    assert "Payroll export" not in texts(at) and not at.dataframe


def test_activity_keeps_a_session_alive(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page("Home.py", "ann")
    session_id = at.session_state["auth_user"]["session_id"]
    almost = timedelta(minutes=app.DASHBOARD_SESSION_IDLE_MINUTES) - timedelta(minutes=1)
    age_session(session_factory, session_id, idle=almost)
    at.run()
    assert at.title[0].value == "Today"
    with session_factory() as session:
        last_seen = session.get(OperatorSession, session_id).last_seen_at
    assert utcnow() - last_seen < almost / 2, "each page run counts as activity"
