"""Read models for the dashboard: why drafts wait, counted without their particulars; what needs a person; what a
ticket page's header shows."""

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role, TicketStatus
from engine.core.models import Action, Ticket
from engine.core.settings import Settings
from engine.operators.actions import request_reanalysis
from engine.operators.permissions import Actor
from engine.operators.queries import attention_counts, held_draft_reasons, held_reason, ticket_story
from engine.pipeline import process_pending
from tests.factories import Proposes, drafted

ANN = Actor("ann", Role.AGENT)


def test_hold_reasons_are_counted_by_kind_not_by_their_particulars() -> None:
    assert (
        held_reason("confidence 0.42 below 0.75")
        == held_reason("confidence 0.7 below 0.8")
        == "below the minimum confidence"
    )
    assert held_reason("autopilot is off for jira/billing") == "autopilot off for jira"
    assert held_reason("guard: possible social engineering: access change (password, MFA)") == (
        "sensitive request: access change"
    )
    assert held_reason("guard: possible prompt injection: 'ignore all previous'") == "possible prompt injection"
    assert held_reason("input: attachment a.pdf could not be read (corrupt)") == "input a person should read"
    assert held_reason("taken over by ann") == "taken over by ann"


def test_every_reason_of_every_waiting_draft_counts_once(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """Counted in the database by list of reasons, then by kind: two reasons of one kind in one draft count once."""
    listed = [
        ["confidence 0.42 below 0.75", "autopilot is off for jira/billing"],
        ["confidence 0.7 below 0.8"],
        ["autopilot is off for jira/billing", "confidence 0.42 below 0.75"],
        ["confidence 0.42 below 0.75", "confidence 0.5 below 0.8"],
        [],
    ]
    for reasons in listed:
        _, action_id = drafted(session_factory, settings)
        with session_factory.begin() as session:
            session.execute(update(Action).where(Action.id == action_id).values(policy={"reasons": reasons}))
    with session_factory() as session:
        assert held_draft_reasons(session) == [("below the minimum confidence", 4), ("autopilot off for jira", 2)]
        assert held_draft_reasons(session, limit=1) == [("below the minimum confidence", 4)]


def test_a_ticket_headline_changes_when_a_new_analysis_lands(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id, _ = drafted(session_factory, settings)

    def headline() -> tuple[object, ...]:
        with session_factory() as session:
            story = ticket_story(session, ticket_id)
            assert story is not None
            return story.headline

    drafted_state = headline()
    with session_factory.begin() as session:
        request_reanalysis(session, ANN, ticket_id)
    queued = headline()
    process_pending(session_factory, settings, Proposes(confidence=0.6), worker="w")
    analysed = headline()
    assert drafted_state != queued != analysed
    assert analysed[4] != drafted_state[4], "the newest analysis is part of what the header shows"


def test_a_customer_reply_on_an_escalated_ticket_needs_a_person(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id, _ = drafted(session_factory, settings)
    with session_factory() as session:
        assert attention_counts(session)["open tickets needing attention"] == 0
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        ticket.status, ticket.action_required = TicketStatus.ESCALATED, True
    with session_factory() as session:
        assert attention_counts(session)["open tickets needing attention"] == 1
