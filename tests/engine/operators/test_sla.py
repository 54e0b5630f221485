"""SLA targets in SQL: the next deadline (first response while unanswered, then resolution), breaching soon,
breaches, and the queue's "time left" sort and "breaching soon" view."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import TicketStatus
from engine.core.models import Ticket, utcnow
from engine.core.settings import Settings
from engine.operators.queries import QueueFilter, queue_page
from engine.operators.sla import SlaTargets, breaching_soon, sla_breaches
from tests.factories import new_ticket

SLA = SlaTargets(first_response_hours={"high": 1, "": 4}, resolution_hours={"high": 8, "": 24}, soon_hours=2)


def aged(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    hours: float,
    priority: str | None,
    answered: bool,
    status: str = TicketStatus.NEW,
) -> int:
    ticket_id = new_ticket(factory, settings)
    now = utcnow()
    with factory.begin() as session:
        session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id)
            .values(
                created_at=now - timedelta(hours=hours),
                priority=priority,
                first_response_at=now if answered else None,
                status=status,
            )
        )
    return ticket_id


@pytest.fixture
def desk(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    return {
        "answer due in 30 min": aged(session_factory, settings, hours=0.5, priority="high", answered=False),
        "resolution due in 5 h": aged(session_factory, settings, hours=3, priority="high", answered=True),
        "answer 1 h late": aged(session_factory, settings, hours=5, priority=None, answered=False),
        "resolution due in 1 h": aged(session_factory, settings, hours=23, priority="low", answered=True),
        "resolved": aged(
            session_factory, settings, hours=10, priority="high", answered=True, status=TicketStatus.RESOLVED
        ),
        "resolution 1.5 h late": aged(session_factory, settings, hours=9.5, priority="HIGH", answered=True),
    }


def test_counts_breaches_and_what_breaches_soon(desk: dict[str, int], session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        breaches = sla_breaches(session, SLA)
        soon = set(session.scalars(select(Ticket.id).where(breaching_soon(SLA))))
    assert (breaches.first_response, breaches.resolution, breaches.soon) == (1, 1, 2)
    names = {ticket_id: name for name, ticket_id in desk.items()}
    assert {names[ticket_id] for ticket_id in soon} == {
        "answer due in 30 min",
        "answer 1 h late",
        "resolution due in 1 h",
        "resolution 1.5 h late",
    }


def test_the_queue_sorts_by_time_left_and_views_what_breaches_soon(
    desk: dict[str, int], session_factory: sessionmaker[Session]
) -> None:
    names = {ticket_id: name for name, ticket_id in desk.items()}
    with session_factory() as session:
        rows, total = queue_page(session, QueueFilter(sort="time left"), sla=SLA)
        soon, soon_total = queue_page(session, QueueFilter(breaching_soon=True, sort="time left"), sla=SLA)
        with pytest.raises(ValueError, match="SLA targets"):
            queue_page(session, QueueFilter(breaching_soon=True))
    assert total == 6 and [names[row["id"]] for row in rows] == [
        "resolution 1.5 h late",
        "answer 1 h late",
        "answer due in 30 min",
        "resolution due in 1 h",
        "resolution due in 5 h",
        "resolved",
    ]
    assert soon_total == 4 and [names[row["id"]] for row in soon] == [names[row["id"]] for row in rows][:4]


def test_targets_come_from_the_settings(settings: Settings) -> None:
    sla = SlaTargets.of(settings)
    assert sla.first_response_hours["critical"] < sla.resolution_hours["critical"]
    assert sla.soon_hours == settings.SLA_BREACHING_SOON_HOURS
