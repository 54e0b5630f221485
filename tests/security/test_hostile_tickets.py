"""Hostile tickets from a source: stored verbatim or refused with a reason, never executed, never auto-answered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AttachmentIn, PolledPage, RejectedItem, TicketIn
from engine.analysers.retrieval_analyser import RetrievalAnalyser
from engine.core.enums import TicketStatus
from engine.core.models import Action, Attachment, Blob, EmailInteraction, IngestError, Operator, OutboxMessage, Ticket
from engine.core.settings import Settings
from engine.jobs import poll_source
from engine.pipeline import process_pending
from tests.corpus.hostile.make_corpus import INJECTION, make_large_attachment, make_many_recipients_eml
from tests.factories import email_in, ticket_in
from tests.security.conftest import HOSTILE, customer_messages, lines_of

SQL = lines_of("sql-injection.txt")
CONTROL = (HOSTILE / "control-characters.txt").read_bytes().decode("ascii")
BROKEN_BYTES = (HOSTILE / "mixed-encoding.txt").read_bytes()


class ListSource:
    """A source that delivers one page of the given items."""

    name = "hostile"

    def __init__(self, items: list[TicketIn], rejected: list[RejectedItem]) -> None:
        self.items, self.rejected = items, rejected

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        yield PolledPage(items=self.items, cursor="done", rejected=self.rejected)


def undecodable() -> RejectedItem:
    """What a connector does with text it could only decode into lone surrogates: TicketIn refuses it."""
    with pytest.raises(ValidationError, match="unable to parse raw data as a unicode string") as refused:
        email_in(source="hostile", external_id="undecodable", body=BROKEN_BYTES.decode("utf-8", "surrogateescape"))
    return RejectedItem(external_id="undecodable", error=str(refused.value), payload=BROKEN_BYTES.hex())


def every_field(payload: str, number: int) -> TicketIn:
    """`payload` in every text field a source fills (an address needs an @ and no spaces)."""
    return email_in(
        source="hostile",
        external_id=f"{payload[:200]}#{number}",
        requester_email=f"{payload.replace(' ', '')[:60]}@customer.example",
        requester_name=payload,
        subject=payload,
        body=payload,
        priority=payload[:50],
        category=payload[:100],
        external_url=payload,
        thread_id=f"{payload}#{number}",
        message_id=f"<{payload}#{number}>",
        in_reply_to=payload,
        references=[payload],
        headers={"X-Payload": payload},
        attachments=[AttachmentIn(filename=payload, content_type=payload, data=payload.encode())],
        additional_info={"payload": payload},
    )


def hostile_batch() -> dict[str, TicketIn]:
    """Each hostile case as a ticket a connector could deliver, with one ordinary ticket among them."""
    cases = {f"sql-{number}": every_field(payload, number) for number, payload in enumerate(SQL)}
    cases["control-characters"] = email_in(
        source="hostile",
        requester_name=CONTROL,
        subject=CONTROL,
        body=CONTROL,
        category=CONTROL,
        headers={"X-Control": CONTROL},
        additional_info={"note": [CONTROL]},
        attachments=[AttachmentIn(filename=f"{CONTROL}.txt", data=CONTROL.encode())],
    )
    cases["broken-encoding"] = email_in(
        source="hostile", subject="Caf\ufffd printer", body=BROKEN_BYTES.decode("utf-8", errors="replace")
    )
    many = make_many_recipients_eml().decode()
    cases["many-recipients"] = email_in(
        source="hostile", subject="Printer on floor 3 jams", body=many, headers={"To": many.split("\r\n")[1][4:]}
    )
    cases["large-attachment"] = ticket_in(
        source="hostile",
        attachments=[
            AttachmentIn(filename="dump.pdf", content_type="application/pdf", data=make_large_attachment()),
            AttachmentIn(filename="small.txt", content_type="text/plain", data=b"a small log"),
        ],
    )
    cases["attachment-injection"] = ticket_in(
        source="hostile",
        attachments=[AttachmentIn(filename="log.txt", data=(HOSTILE / "attachment-injection.txt").read_bytes())],
    )
    cases["body-injection"] = ticket_in(source="hostile", body=INJECTION)
    cases["ordinary"] = ticket_in(source="hostile")
    return cases


@pytest.fixture
def ingested(engine: Engine, session_factory: sessionmaker[Session], settings: Settings) -> dict[str, TicketIn]:
    cases = hostile_batch()
    poll_source(engine, session_factory, settings, ListSource(list(cases.values()), [undecodable()]))
    return cases


def by_external_id(session: Session, item: TicketIn) -> Ticket | None:
    return session.scalar(select(Ticket).where(Ticket.source == item.source, Ticket.external_id == item.external_id))


def test_each_hostile_ticket_is_stored_or_refused_with_a_reason(
    ingested: dict[str, TicketIn], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        errors = {row.external_id: row.error for row in session.scalars(select(IngestError))}
        outcome = {
            name: "stored" if by_external_id(session, item) else errors.get(item.external_id, "lost")
            for name, item in ingested.items()
        }
        assert outcome == dict.fromkeys(ingested, "stored")
        assert list(errors) == ["undecodable"]
        assert "unable to parse raw data as a unicode string" in errors["undecodable"]


def test_sql_injection_is_stored_verbatim_and_never_executed(
    ingested: dict[str, TicketIn], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Operator)) == 0
        for number, payload in enumerate(SQL):
            ticket = by_external_id(session, ingested[f"sql-{number}"])
            assert ticket is not None, payload
            assert (ticket.subject, ticket.description, ticket.requester_name) == (payload, payload, payload)
            assert (ticket.category, ticket.external_url) == (payload[:100], payload)
            assert ticket.additional_info["payload"] == payload
            [message] = session.scalars(select(EmailInteraction).where(EmailInteraction.ticket_id == ticket.id))
            assert (message.body, message.headers, message.in_reply_to) == (payload, {"X-Payload": payload}, payload)
            [attachment] = session.scalars(select(Attachment).where(Attachment.ticket_id == ticket.id))
            assert (attachment.filename, bytes(session.get(Blob, attachment.sha256).data)) == (
                payload,
                payload.encode(),
            )
        assert session.scalar(select(func.count()).select_from(Ticket)) == len(ingested)


def test_control_characters_are_stripped_from_what_people_read(
    ingested: dict[str, TicketIn], session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        ticket = by_external_id(session, ingested["control-characters"])
        clean = "Printer jams on[31m page two  and more"
        assert (ticket.subject, ticket.description, ticket.requester_name, ticket.category) == (clean,) * 4
        assert ticket.additional_info["note"] == [clean]
        assert ticket.additional_info["input_warnings"] == ["control characters were removed from the text"]
        [message] = session.scalars(select(EmailInteraction).where(EmailInteraction.ticket_id == ticket.id))
        assert message.headers == {"X-Control": clean}
        [attachment] = session.scalars(select(Attachment).where(Attachment.ticket_id == ticket.id))
        assert attachment.filename == f"{clean}.txt"
        assert bytes(session.get(Blob, attachment.sha256).data) == CONTROL.encode(), "the file's bytes are kept as sent"


def test_a_50_mb_attachment_is_recorded_not_stored_and_the_ticket_still_arrives(
    ingested: dict[str, TicketIn], session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        ticket = by_external_id(session, ingested["large-attachment"])
        large, small = session.scalars(
            select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
        )
        assert (large.status, large.sha256, large.size) == ("too_large", None, 50 * 1024 * 1024)
        assert "MAX_ATTACHMENT_BYTES" in large.error
        assert small.sha256 is not None
        assert session.scalar(select(func.max(Blob.size))) < settings.MAX_ATTACHMENT_BYTES
        assert "attachment_rejected" in [event.type for event in ticket.timeline]


def hostile_ids(session_factory: sessionmaker[Session], cases: dict[str, TicketIn]) -> dict[str, int]:
    """Ticket id per hostile case, the ordinary ticket left out."""
    with session_factory() as session:
        return {name: by_external_id(session, item).id for name, item in cases.items() if name != "ordinary"}


def test_no_hostile_ticket_gets_an_automatic_answer(
    ingested: dict[str, TicketIn], session_factory: sessionmaker[Session], autopilot: Settings
) -> None:
    process_pending(session_factory, autopilot, RetrievalAnalyser(session_factory, autopilot), worker="w")
    ids = hostile_ids(session_factory, ingested)
    sent = customer_messages(session_factory, list(ids.values()))
    assert {kind for _, kind in sent} <= {"request_info"}, "only the fixed request-info template may go out"
    with session_factory() as session:
        injected = session.get(Ticket, ids["body-injection"])
        assert injected.status == TicketStatus.ESCALATED
        [action] = session.scalars(select(Action).where(Action.ticket_id == injected.id))
        assert action.reason.startswith("possible prompt injection")
        bodies = session.scalars(select(OutboxMessage.body_html).where(OutboxMessage.ticket_id.in_(ids.values())))
        assert not [body for body in bodies if "<script" in body.lower()]


def test_no_hostile_ticket_gets_any_automatic_message(
    ingested: dict[str, TicketIn], session_factory: sessionmaker[Session], autopilot: Settings
) -> None:
    process_pending(session_factory, autopilot, RetrievalAnalyser(session_factory, autopilot), worker="w")
    assert customer_messages(session_factory, list(hostile_ids(session_factory, ingested).values())) == []
