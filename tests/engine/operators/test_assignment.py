"""Assignment to a person and operators' teams: role-checked, on the timeline and in the audit log."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.models import AuditEntry, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.operators.actions import take_over
from engine.operators.assignment import (
    assign_to_person,
    assignable_operators,
    operator_team,
    operator_teams,
    set_operator_team,
)
from engine.operators.permissions import Actor, PermissionDeniedError
from tests.factories import desk_operators, new_ticket

ADA = Actor("ada", Role.ADMIN)
ANN = Actor("ann", Role.AGENT)
LEE = Actor("lee", Role.LEAD)


@pytest.fixture
def people(session_factory: sessionmaker[Session]) -> None:
    desk_operators(session_factory, ("ann", Role.AGENT), ("lee", Role.LEAD), ("vic", Role.VIEWER))


def test_assigns_and_unassigns_with_a_trail(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    with session_factory.begin() as session:
        assign_to_person(session, ANN, ticket_id, "lee")
        assign_to_person(session, ANN, ticket_id, "lee")  # no change, no second entry
        assign_to_person(session, LEE, ticket_id, None)
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).assignee is None
        titles = session.scalars(
            select(TimelineEvent.title).where(TimelineEvent.type == "assigned_to_person").order_by(TimelineEvent.id)
        ).all()
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "assign_person")).all()
    assert titles == ["ann assigned the ticket to lee", "lee unassigned it"]
    assert [(entry.details["before"], entry.details["after"]) for entry in audit] == [(None, "lee"), ("lee", None)]


def test_refuses_viewers_strangers_and_missing_tickets(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    with session_factory() as session:
        with pytest.raises(PermissionDeniedError):
            assign_to_person(session, Actor("vic", Role.VIEWER), ticket_id, "ann")
        with pytest.raises(ValueError, match="vic is a viewer"):
            assign_to_person(session, ANN, ticket_id, "vic")
        with pytest.raises(LookupError, match="no active operator called bob"):
            assign_to_person(session, ANN, ticket_id, "bob")
        with pytest.raises(LookupError, match="TCKT-999"):
            assign_to_person(session, ANN, 999, "ann")
        assert assignable_operators(session) == ["ada", "ann", "lee"]


def test_take_over_assigns_to_whoever_took_it(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    with session_factory.begin() as session:
        take_over(session, ANN, ticket_id)
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).assignee == "ann"


def test_leads_put_operators_in_teams(people: None, session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        with pytest.raises(PermissionDeniedError):
            set_operator_team(session, ANN, "ann", "Network")
        set_operator_team(session, LEE, "ann", "  Network ")
        set_operator_team(session, LEE, "lee", "")
    with session_factory() as session:
        assert operator_team(session, "ann") == "Network" and operator_team(session, "lee") is None
        assert ("ann", "agent", "Network") in operator_teams(session)
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "set_operator_team"))
    assert entry.target_id == "ann" and entry.details == {"before": None, "after": "Network"}
