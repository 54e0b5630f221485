"""The mail paths against Debian's Postfix and Dovecot (tests/mail_servers.py), not the in-house IMAP server:
delivery read back over IMAPS, replies threaded however clients write them, a Message-ID over 255 characters, a 450
at RCPT retried, a real RFC 3464 bounce tied to its outbox row, a recreated folder (new UIDVALIDITY) taking nothing
in twice, and the start window with its unread backlog. Every wait is on a condition with a generous deadline."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import OpenBacklog
from connectors.imap import ImapSource
from connectors.smtp import SmtpTransport
from engine.connector_status import check_connectors, move_start_window, open_before_window, take_backlog
from engine.core.enums import MessageKind, OutboxState, Role
from engine.core.models import AuditEntry, EmailInteraction, OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.delivery.outbox import deliver_outbox, enqueue_email
from engine.jobs import poll_source
from engine.operators.permissions import Actor, PermissionDeniedError
from tests.connectors.conftest import with_settings
from tests.factories import customer_mail
from tests.mail_servers import (
    CUSTOMER_DOMAIN,
    DESK,
    TEMPORARILY_REFUSED,
    USERS,
    MailServers,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)]
PAT = f"pat@{CUSTOMER_DOMAIN}"
DEADLINE = 180.0
LEAD = Actor("lena", Role.LEAD)


@pytest.fixture
def desk(settings: Settings, mail_servers: MailServers) -> Iterator[Settings]:
    """Settings as the README's "Connect a mailbox" has them; every mailbox emptied first."""
    for user in USERS:
        mail_servers.empty(user)
    yield with_settings(settings, **mail_servers.desk_values(), CONNECTOR_READ_TIMEOUT_SECONDS=60.0)


def poll_until(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, outcome: str, count: int = 1
) -> dict[str, int]:
    """Poll the desk's mailbox until `count` items had `outcome` (Postfix delivers in the background)."""
    source = ImapSource(settings)
    seen: dict[str, int] = {}

    def polled() -> bool:
        for key, value in poll_source(engine, factory, settings, source).items():
            seen[key] = seen.get(key, 0) + value
        return seen.get(outcome, 0) >= count

    wait_until(polled, timeout=DEADLINE, interval=1.0, what=f"{count} {outcome} from the desk's mailbox")
    return seen


def acknowledge(factory: sessionmaker[Session], settings: Settings, ticket_id: int, to: str | None = None) -> int:
    with factory.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        if to is not None:
            ticket.email = to
        content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE)
        return enqueue_email(session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="ack").id


def test_a_customer_mail_becomes_a_ticket_its_acknowledgement_arrives_and_the_reply_threads(
    engine: Engine, session_factory: sessionmaker[Session], desk: Settings, mail_servers: MailServers
) -> None:
    mail_servers.deliver(customer_mail("Printer shows E42", "<first@customer.test>"), PAT, DESK)
    assert poll_until(engine, session_factory, desk, "created")["created"] == 1
    with session_factory() as session:
        [ticket] = session.scalars(select(Ticket)).all()
        ticket_id = ticket.id
    acknowledge(session_factory, desk, ticket_id)
    assert deliver_outbox(session_factory, desk, SmtpTransport(desk)).sent == 1
    [raw] = mail_servers.wait_for_messages(PAT, 1, timeout=DEADLINE)
    received = email.message_from_bytes(raw, policy=email.policy.default)
    with session_factory() as session:
        [sent] = session.scalars(select(OutboxMessage)).all()
    assert received["Message-ID"] == sent.message_id
    assert received["In-Reply-To"] == "<first@customer.test>"
    assert received["References"] == "<first@customer.test>"
    assert received["Date"].endswith("+0000")
    reply = customer_mail(
        f"Re: {received['Subject']}",
        "<second@customer.test>",
        In_Reply_To=sent.message_id,
        References=f"<first@customer.test> {sent.message_id}",
    )
    mail_servers.deliver(reply, PAT, DESK)
    poll_until(engine, session_factory, desk, "reply")
    with session_factory() as session:
        inbound = session.scalars(
            select(EmailInteraction.message_id).where(
                EmailInteraction.ticket_id == ticket_id, EmailInteraction.direction == "inbound"
            )
        ).all()
        assert "<second@customer.test>" in inbound
        assert len(session.scalars(select(Ticket)).all()) == 1


def test_a_450_at_rcpt_is_retried_not_failed(
    engine: Engine, session_factory: sessionmaker[Session], desk: Settings, mail_servers: MailServers
) -> None:
    mail_servers.deliver(customer_mail("Locked mailbox", "<busy-1@customer.test>", TEMPORARILY_REFUSED), PAT, DESK)
    poll_until(engine, session_factory, desk, "created")
    with session_factory() as session:
        [ticket] = session.scalars(select(Ticket)).all()
    outbox_id = acknowledge(session_factory, desk, ticket.id)
    report = deliver_outbox(session_factory, desk, SmtpTransport(desk))
    assert (report.sent, report.failed, report.retried) == (0, 0, 1)
    with session_factory.begin() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message.state == OutboxState.PENDING
        assert "450 4.2.1" in message.last_error and TEMPORARILY_REFUSED in message.last_error
        message.next_attempt_at = utcnow()
    assert deliver_outbox(session_factory, desk, SmtpTransport(desk)).retried == 1, "still refused: retried again"
    assert mail_servers.messages(TEMPORARILY_REFUSED) == []


def test_a_real_bounce_marks_its_acknowledgement_bounced_and_opens_no_ticket(
    engine: Engine, session_factory: sessionmaker[Session], desk: Settings, mail_servers: MailServers
) -> None:
    nobody = f"nobody@{CUSTOMER_DOMAIN}"
    mail_servers.deliver(customer_mail("Wrong reply address", "<nobody-1@customer.test>", nobody), PAT, DESK)
    poll_until(engine, session_factory, desk, "created")
    with session_factory() as session:
        [ticket] = session.scalars(select(Ticket)).all()
    outbox_id = acknowledge(session_factory, desk, ticket.id)
    assert deliver_outbox(session_factory, desk, SmtpTransport(desk)).sent == 1, "Postfix takes it, LMTP refuses it"
    assert poll_until(engine, session_factory, desk, "bounced") == {"bounced": 1}
    with session_factory() as session:
        outbox = session.get(OutboxMessage, outbox_id)
        assert outbox.state == OutboxState.BOUNCED and "5.1.1" in outbox.last_error
        ticket = session.get(Ticket, outbox.ticket_id)
        assert any(event.type == "email_bounced" and nobody in event.title for event in ticket.timeline)
        assert len(session.scalars(select(Ticket)).all()) == 1
    # taken in once: the next poll finds nothing new
    assert poll_source(engine, session_factory, desk, ImapSource(desk)) == {}


def test_a_recreated_folder_takes_nothing_in_twice_with_or_without_message_id(
    engine: Engine,
    session_factory: sessionmaker[Session],
    desk: Settings,
    mail_servers: MailServers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with_id = customer_mail("Laptop fan loud", "<fan-1@customer.test>")
    without_id = b"From: rita@customer.test\r\nTo: desk@desk.test\r\nSubject: No id here\r\n"
    without_id += b"Date: Mon, 07 Dec 2026 03:10:00 +0000\r\n\r\nMy badge does not open door 4.\r\n"
    mail_servers.recreate_folder(DESK, "Support", [with_id, without_id])
    support = with_settings(desk, IMAP_FOLDER="Support")
    assert poll_source(engine, session_factory, support, ImapSource(support)) == {"created": 2}
    mail_servers.recreate_folder(DESK, "Support", [with_id, without_id])
    assert poll_source(engine, session_factory, support, ImapSource(support)) == {"duplicate": 2}
    assert "UIDVALIDITY changed" in caplog.text
    with session_factory() as session:
        assert len(session.scalars(select(Ticket)).all()) == 2


def test_old_mail_stays_out_the_unread_is_counted_and_a_lead_takes_it_or_moves_the_window(
    engine: Engine, session_factory: sessionmaker[Session], desk: Settings, mail_servers: MailServers
) -> None:
    november = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    for number in (1, 2):
        mail_servers.append(DESK, customer_mail(f"Old {number}", f"<old-{number}@customer.test>"), arrived=november)
    mail_servers.append(DESK, customer_mail("Old, read", "<old-read@customer.test>"), arrived=november, seen=True)
    first_poll = with_settings(desk, IMAP_START_AT="")
    assert poll_source(engine, session_factory, first_poll, ImapSource(first_poll)) == {}, "the window starts now"
    found = open_before_window("imap", first_poll, max_age=0)
    assert isinstance(found, OpenBacklog) and (found.count, found.noun) == (2, "unread message")
    assert take_backlog(engine, session_factory, first_poll, "imap", LEAD, acknowledge=False) == {"created": 2}
    assert open_before_window("imap", first_poll, max_age=0).count == 0, "taken ones are flagged read"
    assert poll_source(engine, session_factory, first_poll, ImapSource(first_poll)) == {}
    with pytest.raises(PermissionDeniedError):
        move_start_window(engine, session_factory, first_poll, "imap", november, Actor("abe", Role.AGENT))
    moved = move_start_window(engine, session_factory, first_poll, "imap", datetime(2026, 11, 1), LEAD)
    assert moved == "2026-11-01 00:00:00"
    [card] = [status for status in check_connectors(first_poll) if status.name == "imap"]
    assert card.window_start == moved
    assert poll_source(engine, session_factory, first_poll, ImapSource(first_poll)) == {"created": 1, "duplicate": 2}
    assert poll_source(engine, session_factory, first_poll, ImapSource(first_poll)) == {}
    with session_factory() as session:
        backlog = [t.subject for t in session.scalars(select(Ticket)) if (t.additional_info or {}).get("backlog")]
        assert sorted(backlog) == ["Old 1", "Old 2"]
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0, "no acknowledgement queued"
        audit = session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == "imap")).all()
        assert sorted(audit) == ["move_start_window", "take_backlog"]


def test_replies_thread_however_mail_clients_write_them_and_a_long_message_id_is_taken_in(
    engine: Engine, session_factory: sessionmaker[Session], desk: Settings, mail_servers: MailServers
) -> None:
    long_id = f"<{'x' * 300}@customer.test>"
    mail_servers.deliver(customer_mail("Scanner offline", long_id), PAT, DESK)
    assert poll_until(engine, session_factory, desk, "created")["created"] == 1
    with session_factory() as session:
        [ticket] = session.scalars(select(Ticket)).all()
        ticket_id, reference = ticket.id, ticket.reference
    acknowledge(session_factory, desk, ticket_id)
    assert deliver_outbox(session_factory, desk, SmtpTransport(desk)).sent == 1
    [raw] = mail_servers.wait_for_messages(PAT, 1, timeout=DEADLINE)
    ours = str(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"])
    replies = [
        customer_mail("AW: Scanner offline", "<r1@customer.test>", In_Reply_To=long_id),  # to the long id itself
        customer_mail(f"AW: [{reference}] Scanner offline", "<r2@customer.test>"),  # German client, reference only
        customer_mail(f"[EXT] RE: {reference.lower()} scanner", "<r3@customer.test>"),  # tagged, lower case
        customer_mail("Still offline", "<r4@customer.test>", References=f"{long_id} {ours}"),  # References only
    ]
    for reply in replies:
        mail_servers.deliver(reply, PAT, DESK)
    assert poll_until(engine, session_factory, desk, "reply", count=len(replies))["reply"] == len(replies)
    with session_factory() as session:
        assert len(session.scalars(select(Ticket)).all()) == 1
        inbound = session.scalars(
            select(EmailInteraction.message_id).where(
                EmailInteraction.ticket_id == ticket_id, EmailInteraction.direction == "inbound"
            )
        ).all()
    assert len(inbound) == 1 + len(replies)
