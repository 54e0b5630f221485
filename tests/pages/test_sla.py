"""SLA on the pages: breaches on Home, the queue's Breaching soon view and its time-left sort."""

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import Ticket, utcnow
from engine.core.settings import Settings
from tests.factories import new_ticket
from tests.pages.conftest import open_page, texts


def created_ago(factory: sessionmaker[Session], ticket_id: int, hours: float, priority: str) -> None:
    with factory.begin() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id)
            .values(created_at=utcnow() - timedelta(hours=hours), priority=priority, first_response_at=None)
        )


def test_home_shows_breaches_and_the_queue_lists_them_soonest_first(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    late = new_ticket(session_factory, app, subject="Late one")
    soon = new_ticket(session_factory, app, subject="Soon one")
    calm = new_ticket(session_factory, app, subject="Calm one")
    created_ago(session_factory, late, 2, "high")  # first answer due after 1 h
    created_ago(session_factory, soon, 3, "medium")  # first answer due after 4 h, within the 2 h warning
    created_ago(session_factory, calm, 0, "low")
    home = open_page("Home.py")
    assert "SLA breached: 1 ticket past the first-response target." in texts(home)
    assert "1 ticket will breach an SLA target within 2 h." in texts(home)

    at = open_page("pages/1_Queue.py")
    at.button_group(key="queue_view").set_value("Breaching soon").run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{late}", f"TCKT-{soon}"]
    at.button_group(key="queue_view").set_value("All tickets").run()
    at.selectbox(key="queue_sort").set_value("time left").run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{late}", f"TCKT-{soon}", f"TCKT-{calm}"]


def test_home_says_nothing_when_every_ticket_is_on_time(app: Settings, session_factory: sessionmaker[Session]) -> None:
    new_ticket(session_factory, app)
    assert "SLA" not in texts(open_page("Home.py"))
