import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import TicketStatus
from engine.core.lifecycle import IllegalTransitionError, transition
from engine.core.models import Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from tests.factories import ticket_in


def test_every_transition_writes_its_event_in_the_same_transaction(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
        transition(session, ticket, TicketStatus.ANALYZING, reason="analysis started")
        transition(session, ticket, TicketStatus.ESCALATED, actor="operator:ann", reason="outage")
        transition(session, ticket, TicketStatus.IN_PROGRESS, actor="operator:ann", reason="taken over by ann")
    with session_factory() as session:
        events = session.scalars(select(TimelineEvent).where(TimelineEvent.type == "status_changed")).all()
        assert [(e.data["previous"], e.data["status"], e.actor) for e in events] == [
            ("New", "Analyzing", "engine"),
            ("Analyzing", "Escalated", "operator:ann"),
            ("Escalated", "InProgress", "operator:ann"),
        ]


def test_illegal_transition_raises_and_changes_nothing(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
        transition(session, ticket, TicketStatus.RESOLVED, reason="fixed")
        events_before = len(ticket.timeline)
        with pytest.raises(IllegalTransitionError, match=r"TCKT-\d+: cannot go from Resolved to AwaitingApproval"):
            transition(session, ticket, TicketStatus.AWAITING_APPROVAL)
        assert ticket.status == TicketStatus.RESOLVED
        session.flush()
        session.refresh(ticket)
        assert len(ticket.timeline) == events_before
