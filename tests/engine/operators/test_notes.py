"""Internal notes: operators only, @mentions of real operators, in the timeline and the audit log, written back to
the source as internal, and never in anything the customer receives."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.models import AuditEntry, OutboxMessage, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.delivery.sync import as_update
from engine.operators.actions import approve_draft, send_manual_reply
from engine.operators.notes import MAX_NOTE, add_note, mentioned_operators, ticket_notes
from engine.operators.permissions import Actor, PermissionDeniedError
from tests.factories import desk_operators, drafted, new_ticket

ADA = Actor("ada", Role.ADMIN)
ANN = Actor("ann", Role.AGENT)
SECRET = "Customer is on the legal hold list, do not promise a refund"


@pytest.fixture
def people(session_factory: sessionmaker[Session]) -> None:
    desk_operators(session_factory, ("lee.smith", Role.LEAD), ("ann", Role.AGENT))


def test_a_note_names_the_operators_it_mentions(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    with session_factory.begin() as session:
        note = add_note(session, ANN, ticket_id, "@Lee.Smith please check. cc @ada, @nobody, mail@ann.example")
        assert note.mentions == ["lee.smith", "ada"]
    with session_factory() as session:
        event = session.scalar(select(TimelineEvent).where(TimelineEvent.type == "note_added"))
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "add_note"))
        assert [n.body for n in ticket_notes(session, ticket_id)] == [note.body]
    assert event.title == "ann added an internal note for lee.smith, ada" and event.actor == "operator:ann"
    assert audit.details == {"note": note.id, "mentions": ["lee.smith", "ada"]}


def test_refuses_viewers_empty_and_oversized_notes(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    with session_factory() as session:
        with pytest.raises(PermissionDeniedError):
            add_note(session, Actor("vic", Role.VIEWER), ticket_id, "hello")
        with pytest.raises(ValueError, match="needs some text"):
            add_note(session, ANN, ticket_id, "   ")
        with pytest.raises(ValueError, match="at most 20,000"):
            add_note(session, ANN, ticket_id, "x" * (MAX_NOTE + 1))
        with pytest.raises(LookupError, match="TCKT-999"):
            add_note(session, ANN, 999, "hello")
        assert mentioned_operators(session, "no mention here") == []


def test_a_note_is_written_back_as_internal_and_never_reaches_the_customer(
    people: None, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session:
        add_note(session, ANN, ticket_id, SECRET)
    with session_factory.begin() as session:
        approve_draft(session, settings, ANN, action_id, 1)
        send_manual_reply(session, settings, ANN, ticket_id, subject="Update", body="We are on it.")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        event = session.scalar(select(TimelineEvent).where(TimelineEvent.type == "note_added"))
        update = as_update(session, event, ticket)
        sent = session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id)).all()
    assert update.kind == "note" and not update.public and update.text.endswith(SECRET)
    assert len(sent) >= 2
    assert all(SECRET not in f"{m.subject} {m.body_text} {m.body_html or ''} {m.headers}" for m in sent)
