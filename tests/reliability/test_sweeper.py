"""Nothing stays in Analyzing forever: a ticket there with no work queued and no live lease is queued again."""

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role, TicketStatus
from engine.core.models import Analysis, Ticket, TimelineEvent, utcnow
from engine.core.settings import Settings
from engine.operators.actions import set_status
from engine.operators.permissions import Actor
from engine.pipeline import claim_pending_tickets, process_pending, requeue_stranded
from tests.factories import Proposes, new_ticket

ANN = Actor("ann", Role.AGENT)
ESCALATES = Proposes(decision="escalate")


def analysed_once(factory: sessionmaker[Session], settings: Settings) -> int:
    """A ticket the engine has analysed and escalated; its id."""
    ticket_id = new_ticket(factory, settings)
    process_pending(factory, settings, ESCALATES, worker="w1")
    return ticket_id


def test_a_ticket_left_in_analyzing_with_nothing_queued_is_queued_again_and_analysed(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = analysed_once(session_factory, settings)
    with session_factory.begin() as session:
        session.get(Ticket, ticket_id).status = TicketStatus.ANALYZING

    report = process_pending(session_factory, settings, ESCALATES, worker="w2")

    assert (report.claimed, report.processed) == (1, 1)
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == TicketStatus.ESCALATED
        assert ticket.pending_since is None and ticket.claim_token is None
        assert len(session.scalars(select(Analysis).where(Analysis.ticket_id == ticket_id)).all()) == 2
        events = session.scalars(select(TimelineEvent.type).where(TimelineEvent.ticket_id == ticket_id)).all()
    assert events.count("requeued") == 1


def test_a_ticket_set_to_analyzing_by_hand_is_queued_at_once(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = analysed_once(session_factory, settings)
    with session_factory.begin() as session:
        set_status(session, ANN, ticket_id, TicketStatus.ANALYZING, reason="look again")

    assert process_pending(session_factory, settings, ESCALATES, worker="w2").processed == 1
    with session_factory() as session:
        events = session.scalars(select(TimelineEvent.type).where(TimelineEvent.ticket_id == ticket_id)).all()
    assert events.count("analysed") == 2 and "requeued" not in events


def test_an_expired_lease_without_pending_work_is_queued_again(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    claim_pending_tickets(session_factory, settings, worker="crashed")
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        ticket.pending_since = None
        ticket.claim_expires = utcnow()

    process_pending(session_factory, settings, Proposes(), worker="w2")

    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status != TicketStatus.ANALYZING and ticket.pending_since is None
        assert len(session.scalars(select(Analysis).where(Analysis.ticket_id == ticket_id)).all()) == 1


def test_claims_in_flight_are_left_alone(session_factory: sessionmaker[Session], settings: Settings) -> None:
    new_ticket(session_factory, settings)
    new_ticket(session_factory, settings)
    claims = claim_pending_tickets(session_factory, settings, worker="w1")
    with session_factory.begin() as session:
        assert requeue_stranded(session, utcnow()) == 0
        tokens = {ticket.id: ticket.claim_token for ticket in session.scalars(select(Ticket))}
    assert tokens == {claim.ticket_id: claim.token for claim in claims}
