"""Notifications: customer replies on tickets assigned to the operator or held by their team, and @mentions;
read up to a moment, never someone else's."""

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.models import Ticket
from engine.core.settings import Settings
from engine.operators.assignment import assign_to_person, set_operator_team
from engine.operators.notes import add_note
from engine.operators.notifications import mark_notifications_read, notifications
from engine.operators.permissions import Actor
from tests.factories import desk_operators, new_ticket, reply

ADA = Actor("ada", Role.ADMIN)
ANN = Actor("ann", Role.AGENT)
LEE = Actor("lee", Role.LEAD)


@pytest.fixture
def people(session_factory: sessionmaker[Session]) -> None:
    desk_operators(session_factory, ("ann", Role.AGENT), ("lee", Role.LEAD))
    with session_factory.begin() as session:
        set_operator_team(session, ADA, "lee", "Network")


def seen(factory: sessionmaker[Session], username: str) -> list[tuple[int, str, str, bool]]:
    with factory() as session:
        return [(n.ticket_id, n.kind, n.what, n.unread) for n in notifications(session, username)]


def test_replies_on_my_tickets_and_my_teams_and_mentions(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    assigned = new_ticket(session_factory, settings, subject="Assigned to ann")
    teams = new_ticket(session_factory, settings, subject="Network's")
    nobodys = new_ticket(session_factory, settings, subject="Nobody's")
    with session_factory.begin() as session:
        assign_to_person(session, LEE, assigned, "ann")
        session.execute(update(Ticket).where(Ticket.id == teams).values(team="Network"))
    for ticket_id in (assigned, teams, nobodys):
        reply(session_factory, settings, ticket_id, "Any news?")
    with session_factory.begin() as session:
        add_note(session, LEE, nobodys, "@ann can you take this one?")
        add_note(session, ANN, nobodys, "@ann note to self")  # your own note is no notification

    assert seen(session_factory, "ann") == [
        (nobodys, "mention", "lee mentioned you in a note", True),
        (assigned, "reply", "the customer replied", True),
    ]
    assert seen(session_factory, "lee") == [(teams, "reply", "the customer replied", True)]
    assert seen(session_factory, "ada") == []


def test_marking_read_keeps_only_what_comes_after_unread(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings, subject="Mine")
    with session_factory.begin() as session:
        assign_to_person(session, ANN, ticket_id, "ann")
    reply(session_factory, settings, ticket_id, "First")
    with session_factory.begin() as session:
        mark_notifications_read(session, ANN)
    assert [unread for *_, unread in seen(session_factory, "ann")] == [False]
    reply(session_factory, settings, ticket_id, "Second")
    assert [unread for *_, unread in seen(session_factory, "ann")] == [True, False]
