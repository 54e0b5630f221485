"""Full-text search by the database (PostgreSQL tsvector, SQLite FTS5): every text of a ticket is found, kept in
step with edits and deletions, and what a person types is never query syntax."""

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.core.fulltext import search_words, ticket_ids_matching
from engine.core.models import EmailInteraction, Ticket, TicketNote
from engine.core.settings import Settings
from tests.factories import new_ticket, reply


def found(factory: sessionmaker[Session], text: str) -> list[int]:
    with factory() as session:
        condition = ticket_ids_matching(session, text)
        assert condition is not None
        return list(session.scalars(select(Ticket.id).where(condition).order_by(Ticket.id)))


def test_finds_words_in_descriptions_replies_and_notes(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    by_body = new_ticket(session_factory, settings, subject="Question", body="Where are the signed contracts kept?")
    by_reply = new_ticket(session_factory, settings, subject="Laptop", body="The screen flickers.")
    by_note = new_ticket(session_factory, settings, subject="Printer", body="It jams on every page.")
    new_ticket(session_factory, settings, subject="Unrelated", body="Nothing to see.")
    reply(session_factory, settings, by_reply, "It happens after the firmware upgrade.")
    with session_factory.begin() as session:
        session.add(TicketNote(ticket_id=by_note, author="ann", body="Vendor escalation: toner recall"))

    assert found(session_factory, "contracts") == [by_body]
    assert found(session_factory, "contract") == [by_body]  # the same word, stemmed alike in both databases
    assert found(session_factory, "firmware upgrade") == [by_reply]
    assert found(session_factory, "TONER recall") == [by_note]
    assert found(session_factory, "contracts firmware") == []  # every word must be in the ticket


def test_follows_edits_and_deletions(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(session_factory, settings, subject="Mailbox full", body="Quota exceeded.")
    reply(session_factory, settings, ticket_id, "Still full after archiving.")
    with session_factory.begin() as session:
        session.execute(update(Ticket).where(Ticket.id == ticket_id).values(subject="Mailbox migrated"))
        session.execute(update(EmailInteraction).where(EmailInteraction.ticket_id == ticket_id).values(body="done"))
    assert found(session_factory, "migrated") == [ticket_id]
    assert found(session_factory, "archiving") == []
    with session_factory.begin() as session:
        session.execute(delete(Ticket).where(Ticket.id == ticket_id))
    assert found(session_factory, "migrated") == []


def test_typed_text_is_never_query_syntax(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(session_factory, settings, subject="Refund", body='He wrote "NEAR" OR AND -x * ( : ^')
    assert found(session_factory, '"near" OR (') == [ticket_id]
    assert search_words("!!! ---") == []
    with session_factory() as session:
        assert ticket_ids_matching(session, "?!") is None


def test_finds_the_requester_by_name_and_address(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(
        session_factory, settings, requester_email="grace.hopper@navy.example", requester_name="Grace Hopper"
    )
    new_ticket(session_factory, settings)
    assert found(session_factory, "hopper") == [ticket_id]
    assert found(session_factory, "grace.hopper@navy.example") == [ticket_id]
