from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import OutgoingAttachment
from connectors.smtp import SmtpTransport
from engine.core.enums import MessageKind, OutboxState, Role
from engine.core.models import Blob, EmailInteraction, OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.delivery.outbox import DatabaseTransport, deliver_outbox, enqueue_email, resolve_uncertain
from engine.intake.ingest import ingest
from engine.operators.actions import send_manual_reply
from engine.operators.permissions import Actor
from tests.factories import email_in, new_ticket
from tests.mail_sink import Mailbox, free_port, send_through, smtp_sink
from tests.waiting import wait_until


@pytest.fixture
def sink(settings: Settings) -> Iterator[Mailbox]:
    with smtp_sink() as (mailbox, port):
        send_through(settings, port)
        yield mailbox


def queue_ack(factory: sessionmaker[Session], settings: Settings) -> int:
    with factory.begin() as session:
        item = email_in(message_id="<customer-1@customer.example>", subject="VPN drops every hour")
        ticket = session.get(Ticket, ingest(session, item, settings).ticket_id)
        content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE)
        message = enqueue_email(session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="ack")
        again = enqueue_email(session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="ack")
        assert again.id == message.id
        return message.id


def test_database_transport_delivers_once_and_records_the_conversation(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    outbox_id = queue_ack(session_factory, settings)
    assert deliver_outbox(session_factory, settings, DatabaseTransport()).sent == 1
    assert deliver_outbox(session_factory, settings, DatabaseTransport()).sent == 0
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        ticket = session.get(Ticket, message.ticket_id)
        assert message.state == OutboxState.SENT
        assert message.transport_message_id == f"local:{message.message_id}"
        assert ticket.acknowledged_at is not None
        outbound = session.scalars(select(EmailInteraction).where(EmailInteraction.direction == "outbound")).all()
        assert [m.message_id for m in outbound] == [message.message_id]
        assert ticket.timeline[-1].type == "email_sent"


def test_smtp_delivery_threads_and_marks_itself_automatic(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox
) -> None:
    queue_ack(session_factory, settings)
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).sent == 1
    [received] = sink.messages
    assert received["Subject"].startswith("Re: your request [TCKT-")
    assert received["In-Reply-To"] == "<customer-1@customer.example>"
    assert received["Auto-Submitted"] == "auto-replied"
    assert received["X-Loop"] == settings.from_address
    assert received.get_body(("plain",)).get_content().startswith("Hello there")
    assert "<p>" in received.get_body(("html",)).get_content()


def test_a_reply_carries_the_whole_references_chain_and_a_utc_date(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox
) -> None:
    """RFC 5322 3.6.4: the parent's References followed by the parent's Message-ID; Date in +0000, not -0000."""
    with session_factory.begin() as session:
        item = email_in(
            message_id="<c@customer.example>",
            in_reply_to="<b@customer.example>",
            references=["<a@customer.example>", "<b@customer.example>"],
            subject="Printer still jammed",
        )
        ticket = session.get(Ticket, ingest(session, item, settings).ticket_id)
        content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE)
        enqueue_email(session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="ack")
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).sent == 1
    [received] = sink.messages
    assert received["In-Reply-To"] == "<c@customer.example>"
    assert received["References"] == "<a@customer.example> <b@customer.example> <c@customer.example>"
    assert received["Date"].endswith("+0000")
    with session_factory() as session:
        outbound = session.scalar(select(EmailInteraction).where(EmailInteraction.direction == "outbound"))
        assert outbound.references == "<a@customer.example> <b@customer.example> <c@customer.example>"


def test_temporary_failure_backs_off_then_delivers(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox_id = queue_ack(session_factory, settings)
    sink.fail_next = ["451 4.3.0 Try again later"]
    backoff = timedelta(seconds=settings.OUTBOX_BACKOFF_SECONDS)
    now = utcnow()
    with monkeypatch.context() as frozen:
        frozen.setattr("engine.delivery.outbox.utcnow", lambda: now)  # the outbox's clock stands still
        report = deliver_outbox(session_factory, settings, SmtpTransport(settings))
    assert (report.sent, report.retried) == (0, 1)
    with session_factory.begin() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.PENDING
        assert message.next_attempt_at == now + backoff
        assert "451" in message.last_error
        message.next_attempt_at = utcnow()
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).sent == 1
    assert len(sink.messages) == 1


def test_permanent_failure_stops_and_asks_a_person(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox
) -> None:
    outbox_id = queue_ack(session_factory, settings)
    sink.fail_next = ["550 5.1.1 No such user"]
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).failed == 1
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        ticket = session.get(Ticket, message.ticket_id)
        assert message.state == OutboxState.FAILED
        assert ticket.action_required
        assert ticket.timeline[-1].type == "email_failed"


@pytest.mark.parametrize("command", ["RCPT", "DATA"])
def test_a_4xx_refusal_is_retried_and_a_5xx_kept_with_its_code(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox, command: str
) -> None:
    """Postfix answers `450 4.2.1` to RCPT for a locked or full mailbox: retried, not failed for good."""
    queue = sink.refuse_next_rcpt if command == "RCPT" else sink.fail_next
    outbox_id = queue_ack(session_factory, settings)
    queue.append("450 4.2.1 Mailbox temporarily unavailable")
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).retried == 1
    with session_factory.begin() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.PENDING
        assert "450 4.2.1 Mailbox temporarily unavailable" in message.last_error
        message.next_attempt_at = utcnow()
    queue.append("550 5.1.1 No such user here")
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).failed == 1
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.FAILED
        assert "550 5.1.1 No such user here" in message.last_error
        ticket = session.get(Ticket, message.ticket_id)
        assert "550 5.1.1 No such user here" in ticket.timeline[-1].title
    assert sink.messages == []


def test_unreachable_server_is_a_clear_retryable_error(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.SMTP_HOST, settings.SMTP_PORT, settings.SMTP_SECURITY = "127.0.0.1", free_port(), "none"
    settings.SMTP_PASSWORD = type(settings.SMTP_PASSWORD)("s3cret-smtp-pass")
    outbox_id = queue_ack(session_factory, settings)
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).retried == 1
    with session_factory() as session:
        error = session.get(OutboxMessage, outbox_id).last_error
    assert f"127.0.0.1:{settings.SMTP_PORT} unreachable" in error
    assert "s3cret" not in error


def test_crashed_send_on_smtp_waits_for_a_person_then_resends_once(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox
) -> None:
    outbox_id = queue_ack(session_factory, settings)
    with session_factory.begin() as session:
        message = session.get(OutboxMessage, outbox_id)
        message.state, message.claim_token = OutboxState.SENDING, "dead-worker"
        message.claim_expires = utcnow() - timedelta(seconds=1)
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).uncertain == 1
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).sent == 0
    assert sink.messages == []
    with session_factory.begin() as session:
        resolve_uncertain(session, outbox_id, resend=True, actor="operator:ann")
    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).sent == 1
    assert len(sink.messages) == 1


def test_a_send_whose_answer_is_lost_is_never_repeated_blindly(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox
) -> None:
    settings.OUTBOX_BACKOFF_SECONDS = 0.01
    outbox_id = queue_ack(session_factory, settings)
    sink.vanish_next = 1

    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).retried == 1
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.SENDING and "dropped the connection" in message.last_error
    wait_until(
        lambda: deliver_outbox(session_factory, settings, SmtpTransport(settings)).uncertain == 1,
        timeout=10,
        what="the unconfirmed send to be settled once its short lease has run out",
    )

    assert deliver_outbox(session_factory, settings, SmtpTransport(settings)).sent == 0
    assert len(sink.messages) == 1
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.UNCERTAIN
        events = [event.type for event in session.get(Ticket, message.ticket_id).timeline]
    assert events[-2:] == ["email_unconfirmed", "email_uncertain"]


def test_crashed_send_on_the_database_transport_is_simply_retried(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    outbox_id = queue_ack(session_factory, settings)
    with session_factory.begin() as session:
        message = session.get(OutboxMessage, outbox_id)
        message.state, message.claim_token = OutboxState.SENDING, "dead-worker"
        message.claim_expires = utcnow() - timedelta(seconds=1)
    report = deliver_outbox(session_factory, settings, DatabaseTransport())
    assert (report.reconciled, report.sent) == (1, 1)
    with session_factory() as session:
        sent = session.scalar(
            select(func.count()).select_from(EmailInteraction).where(EmailInteraction.direction == "outbound")
        )
        assert sent == 1


REPLY_FILES = (
    OutgoingAttachment("steps.pdf", "application/pdf", b"%PDF-1.7 reboot, then sign in"),
    OutgoingAttachment("screen.png", "image/png", b"\x89PNG fake pixels"),
)


def reply_with_copies(factory: sessionmaker[Session], settings: Settings) -> int:
    """A person's reply with two copies and two files, queued: its outbox id."""
    ticket_id = new_ticket(factory, settings)
    with factory.begin() as session:
        send_manual_reply(
            session,
            settings,
            Actor("ann", Role.AGENT),
            ticket_id,
            subject="About your login",
            body="Please follow the attached steps.",
            cc="boss@customer.example; IT@customer.example",
            files=REPLY_FILES,
        )
        return session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == MessageKind.MANUAL_REPLY))


def test_a_reply_keeps_its_copies_and_files_with_the_message_and_is_delivered_once(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    outbox_id = reply_with_copies(session_factory, settings)
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.cc_addresses == ["boss@customer.example", "it@customer.example"]
        assert [(f["filename"], f["size"]) for f in message.attachments] == [
            (f.filename, len(f.data)) for f in REPLY_FILES
        ]
        kept = {f["sha256"]: session.get(Blob, f["sha256"]).data for f in message.attachments}
        assert sorted(kept.values()) == sorted(file.data for file in REPLY_FILES)
    assert deliver_outbox(session_factory, settings, DatabaseTransport()).sent >= 1
    assert deliver_outbox(session_factory, settings, DatabaseTransport()).sent == 0
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.SENT
        [outbound] = session.scalars(
            select(EmailInteraction).where(EmailInteraction.message_id == message.message_id)
        ).all()
        assert outbound.headers["Cc"] == "boss@customer.example, it@customer.example"
        [sent] = [
            e
            for e in session.get(Ticket, message.ticket_id).timeline
            if e.type == "email_sent" and e.data.get("outbox_id") == outbox_id
        ]
        assert sent.title.startswith(
            f"manual_reply sent to {message.to_address}, cc boss@customer.example, it@customer.example, "
            "with 2 attachments"
        )


def test_smtp_sends_the_copies_as_cc_recipients_and_the_files_as_parts_once(
    session_factory: sessionmaker[Session], settings: Settings, sink: Mailbox
) -> None:
    outbox_id = reply_with_copies(session_factory, settings)
    transport = SmtpTransport(settings)
    deliver_outbox(session_factory, settings, transport)
    deliver_outbox(session_factory, settings, transport)
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
    [(received, recipients)] = [
        (m, r) for m, r in zip(sink.messages, sink.recipients, strict=True) if m["Message-ID"] == message.message_id
    ]
    assert received["To"] == message.to_address
    assert received["Cc"] == "boss@customer.example, it@customer.example"
    assert sorted(recipients) == sorted([message.to_address, "boss@customer.example", "it@customer.example"])
    assert received.get_body(("plain",)).get_content().startswith("Please follow the attached steps.")
    assert [
        (part.get_filename(), part.get_content_type(), part.get_content()) for part in received.iter_attachments()
    ] == [(file.filename, file.content_type, file.data) for file in REPLY_FILES]


def test_a_reply_whose_file_is_gone_fails_with_the_reason_instead_of_going_without_it(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    outbox_id = reply_with_copies(session_factory, settings)
    with session_factory.begin() as session:
        session.execute(
            delete(Blob).where(Blob.sha256 == session.get(OutboxMessage, outbox_id).attachments[0]["sha256"])
        )
    deliver_outbox(session_factory, settings, DatabaseTransport())
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.FAILED
        assert message.last_error == "the attached file steps.pdf is no longer stored"
        assert session.get(Ticket, message.ticket_id).action_required


def test_an_automated_message_never_carries_copies_or_files(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """The hourly cap counts automated mail by its one recipient: a copy would slip past it, so none is allowed."""
    ticket_id = new_ticket(session_factory, settings)
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE)
        for extra in ({"cc": ["boss@customer.example"]}, {"files": REPLY_FILES[:1]}):
            with pytest.raises(ValueError, match="never carries copies or files"):
                enqueue_email(session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="x", **extra)
