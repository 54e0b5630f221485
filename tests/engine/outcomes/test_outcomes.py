"""Resolution states (confirmed, assumed, reopened, durable) for automatic and human resolutions, replies
classified, the clock moved by hand, the autopilot floor, and the labels the confidence calibration reads."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.core.desk_policy import DeskPolicy, current_policy, save_policy
from engine.core.enums import OutcomeState, Role, TicketStatus
from engine.core.models import Action, AuditEntry, DeskPolicyVersion, KbChunk, Ticket, TimelineEvent, utcnow
from engine.core.settings import Settings
from engine.delivery.sync import sync_back
from engine.operators.actions import approve_draft
from engine.operators.permissions import Actor
from engine.outcomes.outcomes import advance_outcomes, outcome_funnel, outcome_labels, record_reply_outcome
from engine.outcomes.teaching import index_ticket, ticket_sections
from engine.pipeline import process_pending
from tests.factories import (
    FakeSource,
    Proposes,
    new_ticket,
    outcome_of,
    reply,
    resolution_outcome,
    resolved_automatically,
)


def settled() -> datetime:
    """A moment past the durable window of resolutions made now."""
    return utcnow() + timedelta(days=8)


def test_an_automatic_resolution_is_tracked_with_its_confidence(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    outcome = outcome_of(session_factory, resolved_automatically(session_factory, settings))
    assert (outcome.automated, outcome.state, outcome.category, outcome.confidence) == (
        True,
        OutcomeState.PENDING,
        "network",
        0.95,
    )


def test_a_resolution_a_person_approved_counts_as_human(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    process_pending(session_factory, settings, Proposes(confidence=0.3), worker="w")
    with session_factory.begin() as session:
        draft = session.scalars(select(Action).where(Action.ticket_id == ticket_id)).one()
        approve_draft(session, settings, Actor("ann", Role.AGENT), draft.id, draft.version)
    assert outcome_of(session_factory, ticket_id).automated is False


def test_a_thank_you_reply_confirms_and_keeps_the_ticket_resolved(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = resolved_automatically(session_factory, settings)
    ticket = reply(session_factory, settings, ticket_id, "Thanks, that fixed it!")
    assert ticket.status == TicketStatus.RESOLVED and ticket.pending_since is None
    outcome = outcome_of(session_factory, ticket_id)
    assert (outcome.state, outcome.answer, outcome.answered_via) == (OutcomeState.CONFIRMED, "yes", "reply")


def test_a_reply_saying_it_still_fails_reopens(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = resolved_automatically(session_factory, settings)
    ticket = reply(session_factory, settings, ticket_id, "Thanks, but the VPN still drops.")
    assert ticket.status == TicketStatus.NEW and ticket.pending_since is not None
    assert outcome_of(session_factory, ticket_id).state == OutcomeState.REOPENED


def test_a_verdict_counts_only_from_the_requester(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = resolved_automatically(session_factory, settings)
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        for verdict in ("solved", "unsolved"):
            assert not record_reply_outcome(session, ticket, verdict, sender="mallory@attacker.example")
    outcome = outcome_of(session_factory, ticket_id)
    assert (outcome.state, outcome.answer, outcome.answered_at) == (OutcomeState.PENDING, None, None)
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        assert record_reply_outcome(session, ticket, "solved", sender=f"Requester <{ticket.email.upper()}>")
    assert outcome_of(session_factory, ticket_id).state == OutcomeState.CONFIRMED


def test_silence_makes_a_resolution_assumed_then_durable(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = resolved_automatically(session_factory, settings)
    assert advance_outcomes(session_factory, settings, now=utcnow() + timedelta(hours=23)).assumed == 0
    assert advance_outcomes(session_factory, settings, now=utcnow() + timedelta(hours=25)).assumed == 1
    assert outcome_of(session_factory, ticket_id).state == OutcomeState.ASSUMED
    assert advance_outcomes(session_factory, settings, now=utcnow() + timedelta(days=8)).durable == 1
    assert outcome_of(session_factory, ticket_id).state == OutcomeState.DURABLE
    with session_factory() as session:
        assert session.scalar(select(TimelineEvent.title).where(TimelineEvent.type == "resolution_outcome"))
        funnel = outcome_funnel(session, utcnow() - timedelta(days=1))
    assert funnel["received"] == 1 and funnel["automatic"]["durable"] == 1 and funnel["human"]["resolved"] == 0


def test_a_reopened_resolution_never_becomes_durable(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = resolved_automatically(session_factory, settings)
    reply(session_factory, settings, ticket_id, "It does not work.")
    assert advance_outcomes(session_factory, settings, now=utcnow() + timedelta(days=8)).durable == 0
    assert outcome_of(session_factory, ticket_id).state == OutcomeState.REOPENED


def test_the_floor_switches_a_categorys_autopilot_off_and_tells_the_leads(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        save_policy(
            session,
            DeskPolicy(autopilot={"*:*": True}, durable_floor={"*": 0.8}, durable_floor_min_resolutions=3),
            actor="lee",
        )
        for state in (OutcomeState.DURABLE, OutcomeState.REOPENED, OutcomeState.REOPENED):
            resolution_outcome(session, category="network", state=state)
        for state in (OutcomeState.DURABLE,) * 3:
            resolution_outcome(session, category="billing", state=state)
        for state in (OutcomeState.REOPENED,) * 3:
            resolution_outcome(session, category="access", state=state, automated=False)
    assert advance_outcomes(session_factory, settings).autopilot_switched_off == 0  # too young to have settled
    assert advance_outcomes(session_factory, settings, now=settled()).autopilot_switched_off == 1
    with session_factory() as session:
        policy = current_policy(session, settings)
        assert not policy.autopilot_on("test", "network")
        assert policy.autopilot_on("test", "billing") and policy.autopilot_on("test", "access")
        newest = session.scalar(select(DeskPolicyVersion).order_by(DeskPolicyVersion.version.desc()).limit(1))
        assert newest.changed_by == "engine"
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "autopilot_floor_switch_off")).one()
        assert (audit.actor, audit.target_id, audit.details["durable_rate"]) == ("engine", "network", 0.333)
    assert advance_outcomes(session_factory, settings, now=settled()).autopilot_switched_off == 0


def test_too_few_resolutions_are_not_judged(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory.begin() as session:
        save_policy(session, DeskPolicy(autopilot={"*:*": True}, durable_floor={"network": 0.9}), actor="lee")
        resolution_outcome(session, category="network", state=OutcomeState.REOPENED)
    assert advance_outcomes(session_factory, settings, now=settled()).autopilot_switched_off == 0


def test_judged_automatic_resolutions_become_calibration_labels(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        resolution_outcome(session, category="network", state=OutcomeState.CONFIRMED, confidence=0.9)
        resolution_outcome(session, category="network", state=OutcomeState.REOPENED, confidence=0.7)
        resolution_outcome(session, category="network", state=OutcomeState.PENDING)
        resolution_outcome(session, category="network", state=OutcomeState.DURABLE, automated=False)
    with session_factory() as session:
        labels = sorted((label.confidence, label.solved) for label in outcome_labels(session))
    assert labels == [(0.7, False), (0.9, True)]


def test_a_customers_thanks_never_makes_knowledge_only_a_persons_approval_does(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """An attacker thanking his own automatic answer must not teach it to other customers (issue 20)."""
    confirmed = resolved_automatically(session_factory, settings)
    reply(session_factory, settings, confirmed, "Thank you, works now")
    assert outcome_of(session_factory, confirmed).answer == "yes"
    approved = new_ticket(session_factory, settings)
    process_pending(session_factory, settings, Proposes(confidence=0.3), worker="w")
    with session_factory.begin() as session:
        draft = session.scalars(select(Action).where(Action.ticket_id == approved)).one()
        approve_draft(session, settings, Actor("ann", Role.AGENT), draft.id, draft.version)
    for ticket_id in (confirmed, approved):
        index_ticket(session_factory, settings, ticket_id)
    with session_factory() as session:
        taught = session.scalars(select(KbChunk.source_id).where(KbChunk.source_kind == "ticket")).all()
        assert ticket_sections(session, session.get(Ticket, confirmed)) == []
    assert set(taught) == {approved}


def test_the_customers_verdict_and_the_final_state_are_written_back_to_the_source(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = resolved_automatically(session_factory, settings)
    reply(session_factory, settings, ticket_id, "Thank you, works now")
    advance_outcomes(session_factory, settings, now=settled())
    source = FakeSource()
    sync_back(engine, session_factory, settings, [source])
    with session_factory() as session:
        pushed = session.scalars(
            select(TimelineEvent.type).where(TimelineEvent.id.in_([event_id for _, event_id, _ in source.pushed]))
        ).all()
    assert {"resolution_confirmed", "resolution_outcome"} <= set(pushed)
