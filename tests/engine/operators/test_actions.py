import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import ActionState, Role, TicketStatus
from engine.core.models import Action, Analysis, AuditEntry, OutboxMessage, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.operators.actions import (
    StaleDraftError,
    approve_draft,
    edit_draft,
    override_decision,
    reject_draft,
    request_reanalysis,
    send_manual_reply,
    set_status,
    take_over,
)
from engine.operators.permissions import Actor, PermissionDeniedError
from engine.pipeline import claim_pending_tickets, commit_analysis, process_pending
from tests.factories import Proposes, drafted, new_ticket

ANN = Actor("ann", Role.AGENT)
VIC = Actor("vic", Role.VIEWER)


def sent_bodies(session: Session) -> list[str]:
    return list(session.scalars(select(OutboxMessage.body_text).where(OutboxMessage.kind == "resolution")))


def test_approval_sends_exactly_the_version_seen(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session:
        approve_draft(session, settings, ANN, action_id, seen_version=1)
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED
        assert sent_bodies(session) == ["1. Restart the VPN client."]
        assert session.scalar(select(AuditEntry.action)) == "approve_draft"
        with pytest.raises(StaleDraftError, match="executed"):
            approve_draft(session, settings, ANN, action_id, seen_version=1)


def test_an_edit_voids_approvals_of_the_old_version(session_factory: sessionmaker[Session], settings: Settings) -> None:
    _, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session:
        edit_draft(session, ANN, action_id, 1, subject="Resolution", body="1. Reinstall the VPN client.")
    with session_factory.begin() as session, pytest.raises(StaleDraftError, match="version 2; you saw version 1"):
        approve_draft(session, settings, ANN, action_id, seen_version=1)
    with session_factory.begin() as session:
        approve_draft(session, settings, ANN, action_id, seen_version=2)
    with session_factory() as session:
        assert sent_bodies(session) == ["1. Reinstall the VPN client."]


def test_reanalysis_voids_the_draft(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session:
        request_reanalysis(session, ANN, ticket_id)
    with session_factory.begin() as session, pytest.raises(StaleDraftError, match="voided"):
        approve_draft(session, settings, ANN, action_id, seen_version=1)
    process_pending(session_factory, settings, Proposes(confidence=0.5), worker="w")
    with session_factory() as session:
        states = session.scalars(select(Action.state).order_by(Action.id)).all()
        assert states == [ActionState.VOIDED, ActionState.AWAITING_APPROVAL]


def test_reject_needs_a_reason_and_escalates(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session, pytest.raises(ValueError, match="needs a reason"):
        reject_draft(session, ANN, action_id, 1, reason=" ")
    with session_factory.begin() as session:
        session.get(Ticket, ticket_id).team = None
    with session_factory.begin() as session:
        reject_draft(session, ANN, action_id, 1, reason="wrong product", team="Service Desk")
    with session_factory() as session:
        rejected = session.get(Ticket, ticket_id)
        assert (rejected.status, rejected.team) == (TicketStatus.ESCALATED, "Service Desk")
        assert sent_bodies(session) == []


def test_take_over_keeps_the_draft_as_a_starting_point(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session:
        take_over(session, ANN, ticket_id)
    with session_factory() as session:
        ticket, draft = session.get(Ticket, ticket_id), session.get(Action, action_id)
        assert (ticket.status, ticket.taken_over_by) == (TicketStatus.IN_PROGRESS, "ann")
        assert draft.state == ActionState.AWAITING_APPROVAL
    with session_factory.begin() as session:
        approve_draft(session, settings, ANN, action_id, 1)
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED
        assert len(sent_bodies(session)) == 1


def test_taken_over_ticket_gets_no_automation(session_factory: sessionmaker[Session], settings: Settings) -> None:
    settings.AUTOPILOT_ENABLED = True
    ticket_id = new_ticket(session_factory, settings)
    with session_factory.begin() as session:
        take_over(session, ANN, ticket_id)
    assert process_pending(session_factory, settings, Proposes(), worker="w").claimed == 0
    with session_factory.begin() as session:
        send_manual_reply(session, settings, ANN, ticket_id, subject="About your VPN", body="I'll call you at 3pm.")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.status, ticket.taken_over_by) == (TicketStatus.IN_PROGRESS, "ann")
        [reply] = session.scalars(select(OutboxMessage)).all()
        assert reply.subject == f"Re: About your VPN [{ticket.reference}]"
        assert not reply.automated


@pytest.mark.parametrize(
    "decide",
    [
        pytest.param(
            lambda session, settings, ticket_id: set_status(session, ANN, ticket_id, TicketStatus.RESOLVED),
            id="resolve",
        ),
        pytest.param(
            lambda session, settings, ticket_id: override_decision(
                session, settings, ANN, ticket_id, "escalate", reason="billing dispute", team="Finance"
            ),
            id="override",
        ),
    ],
)
def test_a_persons_decision_during_analysis_wins_over_the_engine(
    session_factory: sessionmaker[Session], settings: Settings, decide: object
) -> None:
    settings.AUTOPILOT_ENABLED = True
    ticket_id = new_ticket(session_factory, settings)
    [claim] = claim_pending_tickets(session_factory, settings, worker="w")
    with session_factory.begin() as session:
        decided = decide(session, settings, ticket_id)  # type: ignore[operator]
        status = session.get(Ticket, ticket_id).status

    assert not commit_analysis(session_factory, settings, claim, Proposes().analyse(claim.snapshot))

    assert process_pending(session_factory, settings, Proposes(), worker="w").claimed == 0
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == status and ticket.claim_token is None and ticket.pending_since is None
        assert session.scalars(select(Analysis)).all() == []
        assert [action.id for action in session.scalars(select(Action))] == (
            [] if isinstance(decided, Ticket) else [decided.id]
        )
        assert session.scalars(select(OutboxMessage.kind)).all() == ["acknowledgement"]
        events = session.scalars(select(TimelineEvent.type).where(TimelineEvent.ticket_id == ticket_id)).all()
        assert "analysis_discarded" in events


def test_viewer_may_not_change_anything(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session:
        for attempt in (
            lambda: approve_draft(session, settings, VIC, action_id, 1),
            lambda: edit_draft(session, VIC, action_id, 1, subject="x", body="y"),
            lambda: take_over(session, VIC, ticket_id),
            lambda: set_status(session, VIC, ticket_id, TicketStatus.CLOSED),
        ):
            with pytest.raises(PermissionDeniedError, match="vic \\(viewer\\) may not do this"):
                attempt()
    with session_factory() as session:
        assert session.get(Action, action_id).state == ActionState.AWAITING_APPROVAL
