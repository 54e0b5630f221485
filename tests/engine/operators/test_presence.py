"""Presence: one row per person and ticket renewed by heartbeats; others are seen until their heartbeat ages out."""

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.models import TicketPresence, utcnow
from engine.core.settings import Settings
from engine.operators.permissions import Actor
from engine.operators.presence import FORGOTTEN_AFTER, mark_viewing, others_viewing
from tests.factories import new_ticket

ANN = Actor("ann", Role.AGENT)
LEE = Actor("lee", Role.LEAD)
WINDOW = timedelta(seconds=30)


def test_sees_others_until_their_heartbeat_stops(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(session_factory, settings)
    other = new_ticket(session_factory, settings)
    start = utcnow()
    with session_factory.begin() as session:
        mark_viewing(session, ANN, ticket_id, now=start)
        mark_viewing(session, LEE, ticket_id, now=start)
        mark_viewing(session, LEE, ticket_id, now=start + timedelta(seconds=10))  # a second heartbeat, same row
        mark_viewing(session, LEE, other, now=start)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(TicketPresence)) == 3
        seen = others_viewing(session, ticket_id, "ann", within=WINDOW, now=start + timedelta(seconds=20))
        assert [(name, at - start) for name, at in seen] == [("lee", timedelta(seconds=10))]
        assert others_viewing(session, ticket_id, "lee", within=WINDOW, now=start + timedelta(seconds=20)) == [
            ("ann", start)
        ]
        assert others_viewing(session, ticket_id, "ann", within=WINDOW, now=start + timedelta(seconds=41)) == []


def test_old_visits_are_forgotten(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(session_factory, settings)
    start = utcnow()
    with session_factory.begin() as session:
        mark_viewing(session, LEE, ticket_id, now=start)
        mark_viewing(session, ANN, ticket_id, now=start + FORGOTTEN_AFTER + timedelta(seconds=1))
    with session_factory() as session:
        assert session.scalars(select(TicketPresence.username)).all() == ["ann"]
