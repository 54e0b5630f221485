"""Canned replies: leads manage them, placeholders are a closed list filled per ticket, and seeds come only from
resolutions a person approved on tickets that stayed solved."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutcomeState, Role
from engine.core.models import AuditEntry, CannedReply, ResolutionOutcome, Ticket
from engine.core.settings import Settings
from engine.operators.actions import approve_draft, edit_draft
from engine.operators.macros import (
    approved_answers,
    canned_replies,
    delete_canned_reply,
    fill,
    placeholders_in,
    save_canned_reply,
    seed_from_approved_answers,
)
from engine.operators.permissions import Actor, PermissionDeniedError
from tests.factories import drafted, new_ticket, resolved_automatically

LEE = Actor("lee", Role.LEAD)
ANN = Actor("ann", Role.AGENT)


def test_leads_save_change_and_delete_with_a_trail(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        with pytest.raises(PermissionDeniedError):
            save_canned_reply(session, ANN, title="Hi", body="Hello")
        first = save_canned_reply(session, LEE, title="Password reset", body="Hello {requester_name}", team="Identity")
        save_canned_reply(session, LEE, title="Thanks", body="Thank you, {operator}")
        with pytest.raises(ValueError, match="exists already"):
            save_canned_reply(session, LEE, title="Thanks", body="again")
        save_canned_reply(
            session, LEE, title="Password reset", body="Hi {requester_name}", team="Identity", reply_id=first.id
        )
    with session_factory() as session:
        assert [r.title for r in canned_replies(session, "Identity")] == ["Password reset", "Thanks"]
        assert [r.title for r in canned_replies(session, "Network")] == ["Thanks"]
        assert session.get(CannedReply, first.id).body == "Hi {requester_name}"
    with session_factory.begin() as session:
        delete_canned_reply(session, LEE, first.id)
        with pytest.raises(LookupError):
            delete_canned_reply(session, LEE, first.id)
    with session_factory() as session:
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["save_canned_reply"] * 3 + ["delete_canned_reply"]


@pytest.mark.parametrize(
    "body",
    ["{ticket.__class__}", "{ticket[0]}", "{secret}", "{ticket!r}", "{ticket:>99}", "Hello {", "Hello }"],
)
def test_placeholders_are_a_closed_list(body: str) -> None:
    with pytest.raises(ValueError):
        placeholders_in(body)


def test_fills_the_placeholders_for_a_ticket(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(session_factory, settings, subject="VPN down", requester_name="Mallory <b>")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        text = fill(
            "Hello {requester_name}, {ticket} ({subject}) for {team} by {operator}. {{literal}}",
            ticket,
            ANN,
            "Service Desk",
        )
    # a sender's display name is not vouched for by a directory: it never becomes the greeting
    assert text == f"Hello there, TCKT-{ticket_id} (VPN down) for Service Desk by ann. {{literal}}"


def test_seeds_only_from_resolutions_a_person_approved_that_held(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    kept, kept_action = drafted(session_factory, settings, subject="Printer offline", category="hardware")
    reopened, reopened_action = drafted(session_factory, settings)
    resolved_automatically(session_factory, settings)  # no person decided it: never a seed
    with session_factory.begin() as session:
        edit_draft(
            session,
            ANN,
            kept_action,
            1,
            subject="Fixed",
            body="Hello,\n\nPower-cycle the printer {now}.\n\nBest regards",
        )
        approve_draft(session, settings, ANN, kept_action, 2)
        approve_draft(session, settings, ANN, reopened_action, 1)
        session.add(ResolutionOutcome(ticket_id=reopened, automated=False, source="test", state=OutcomeState.REOPENED))
    with session_factory() as session:
        answers = approved_answers(session)
    assert [(a.ticket_id, a.body) for a in answers] == [(kept, "Power-cycle the printer {now}.")]
    with session_factory.begin() as session:
        assert seed_from_approved_answers(session, LEE) == 1
        assert seed_from_approved_answers(session, LEE) == 0  # each answer is kept once
    with session_factory() as session:
        [seeded] = canned_replies(session)
        ticket = session.get(Ticket, kept)
        assert fill(seeded.body, ticket, ANN, "Service Desk") == "Power-cycle the printer {now}."
    assert seeded.title == f"Answer from TCKT-{kept} · hardware" and seeded.source_ticket_id == kept
