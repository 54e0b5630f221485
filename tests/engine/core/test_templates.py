"""Automatic messages greet without the sender's display name and never quote the customer in an acknowledgement."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import Ticket
from engine.core.settings import Settings
from engine.core.templates import acknowledgement, conversation_subject, template_texts
from engine.intake.ingest import ingest
from tests.factories import email_in, ticket_in

SIGNATURE = "Kind regards,\nThe support desk"


def test_only_a_directory_name_greets_the_requester() -> None:
    for name in ("Dana Lee", "Verify at nw-selfservice.example", "パスワード再確認はこちら"):
        sender = acknowledgement(Ticket(id=4, requester_name=name, requester_name_verified=False), SIGNATURE)
        assert sender.body_text.startswith("Hello there,") and name not in sender.body_text + sender.body_html
    directory = acknowledgement(Ticket(id=4, requester_name="Dana Lee", requester_name_verified=True), SIGNATURE)
    assert directory.body_text.startswith("Hello Dana Lee,")
    hostile = acknowledgement(
        Ticket(id=4, requester_name="Verify at nw-selfservice.example", requester_name_verified=True), SIGNATURE
    )
    assert hostile.body_text.startswith("Hello there,")


def test_the_acknowledgement_never_quotes_the_subject_even_in_a_leads_template() -> None:
    ticket = Ticket(id=4, subject="Parking at park.bos-parking.example", description="", requester_name=None)
    ack = acknowledgement(ticket, SIGNATURE, {"acknowledgement": "We received $summary as $reference.\n$signature"})
    assert ack.subject == "Re: your request [TCKT-4]"
    assert ack.body_text.startswith("We received your request as TCKT-4.") and "parking" not in ack.body_text.lower()


def test_template_texts_are_the_literal_wording_around_placeholders() -> None:
    texts = template_texts({"acknowledgement": "Hi $name, ticket ${reference} is open.\n$signature"})
    assert "Hi " in texts and " is open.\n" in texts and "Re: " in texts and "your request" in texts
    assert not any("$" in text for text in texts)


def test_ingest_keeps_whether_the_source_directory_vouches_for_the_name(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        caller = ingest(session, ticket_in(requester_name="Dana Lee", requester_name_from_directory=True), settings)
        sender = ingest(session, email_in(requester_name="Dana Lee"), settings)
        greetings = {
            result.ticket_id: acknowledgement(session.get(Ticket, result.ticket_id), SIGNATURE).body_text
            for result in (caller, sender)
        }
    assert greetings[caller.ticket_id].startswith("Hello Dana Lee,")
    assert greetings[sender.ticket_id].startswith("Hello there,")


def test_every_message_of_a_conversation_has_one_subject() -> None:
    assert conversation_subject("TCKT-8") == "Re: your request [TCKT-8]"
    assert conversation_subject("TCKT-19", " Outlook   problem ") == "Re: Outlook problem [TCKT-19]"
    assert conversation_subject("TCKT-19", "") == "Re: your request [TCKT-19]"
