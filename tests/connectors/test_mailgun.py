"""Mailgun transport, events and webhook checks against the Messages/Events API emulator."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import DeliveryError, OutgoingAttachment, OutgoingEmail
from connectors.mailgun import (
    MAX_WEBHOOK_JSON_DEPTH,
    MailgunEvents,
    MailgunTransport,
    MalformedWebhookError,
    configuration_problems,
    json_depth,
    parse_webhook,
    verify_webhook_signature,
)
from engine.core.enums import OutboxState
from engine.core.models import OutboxMessage, Ticket, TimelineEvent, utcnow
from engine.core.settings import Settings
from engine.delivery.delivery_events import poll_delivery_events
from engine.delivery.outbox import _as_email, deliver_outbox, make_transport
from tests.connectors.conftest import Sleeps, mailgun_values, with_settings
from tests.emulators.base import SLOWER_THAN_ANY_TIMEOUT, Response
from tests.emulators.mailgun import MailgunEmulator
from tests.factories import queue, sign


def transport(settings: Settings, mailgun: MailgunEmulator, sleeps: Sleeps | None = None, **values: object):
    configured = with_settings(settings, **{**mailgun_values(mailgun), **values})
    return MailgunTransport(configured, sleep=sleeps if sleeps is not None else Sleeps())


def email(**overrides: object) -> OutgoingEmail:
    values: dict = {
        "message_id": "<abc123.tckt-7@mg.example.test>",
        "from_address": "support@mg.example.test",
        "from_name": "Support",
        "to_address": "customer@example.com",
        "subject": "We received your request [TCKT-7]",
        "body_text": "Hello",
        "in_reply_to": "<orig@example.com>",
        "references": ("<orig@example.com>",),
        "headers": {"Auto-Submitted": "auto-replied"},
        "attachments": (OutgoingAttachment("steps.txt", "text/plain", b"1. reboot"),),
    }
    values.update(overrides)
    return OutgoingEmail(**values)


def test_send_keeps_our_message_id_threading_headers_and_attachments(
    plain_settings: Settings, mailgun: MailgunEmulator
) -> None:
    provider_id = transport(plain_settings, mailgun).send(email())
    assert provider_id == "<abc123.tckt-7@mg.example.test>"
    [sent] = mailgun.messages
    assert sent.one("h:Message-Id") == "<abc123.tckt-7@mg.example.test>"
    assert sent.one("h:In-Reply-To") == "<orig@example.com>"
    assert sent.one("h:References") == "<orig@example.com>"
    assert sent.one("h:Auto-Submitted") == "auto-replied"
    assert sent.one("from") == "Support <support@mg.example.test>"
    assert sent.attachments == [("steps.txt", b"1. reboot")]
    assert "cc" not in sent.fields


def test_copies_go_in_mailguns_cc_field(plain_settings: Settings, mailgun: MailgunEmulator) -> None:
    transport(plain_settings, mailgun).send(email(cc=("boss@example.com", "it@example.com")))
    [sent] = mailgun.messages
    assert sent.one("cc") == "boss@example.com, it@example.com"


def test_was_delivered_asks_the_events_api(plain_settings: Settings, mailgun: MailgunEmulator) -> None:
    mailgun_transport = transport(plain_settings, mailgun)
    assert mailgun_transport.was_delivered("<abc123.tckt-7@mg.example.test>") is False
    mailgun_transport.send(email())
    assert mailgun_transport.was_delivered("<abc123.tckt-7@mg.example.test>") is True
    mailgun.fail(Response.json({"message": "boom"}, 500), path=f"/v3/{mailgun.domain}/events", times=5)
    assert mailgun_transport.was_delivered("<abc123.tckt-7@mg.example.test>") is None


def test_rate_limits_are_retried_after_the_servers_delay(
    plain_settings: Settings, mailgun: MailgunEmulator, sleeps: Sleeps
) -> None:
    mailgun.fail(Response.json({"message": "Too many requests"}, 429, **{"Retry-After": "3"}), times=1)
    transport(plain_settings, mailgun, sleeps, CONNECTOR_MAX_RETRY_AFTER_SECONDS=60).send(email())
    assert sleeps == [3.0]
    assert len(mailgun.messages) == 1


def test_failures_say_whether_to_retry(plain_settings: Settings, mailgun: MailgunEmulator) -> None:
    with pytest.raises(DeliveryError, match="not a valid address") as bad:
        transport(plain_settings, mailgun).send(email(to_address="nobody"))
    assert bad.value.permanent
    mailgun.fail(Response.json({"message": "busy"}, 503, **{"Retry-After": "120"}), times=10)
    with pytest.raises(DeliveryError, match="503") as busy:
        transport(plain_settings, mailgun, CONNECTOR_RETRY_ATTEMPTS=2).send(email())
    assert not busy.value.permanent and busy.value.retry_after == 120


def test_a_slow_send_is_not_repeated(plain_settings: Settings, mailgun: MailgunEmulator) -> None:
    mailgun.fail(None, path=f"/v3/{mailgun.domain}/messages", delay=SLOWER_THAN_ANY_TIMEOUT)
    with pytest.raises(DeliveryError, match="timed out"):
        transport(plain_settings, mailgun, CONNECTOR_READ_TIMEOUT_SECONDS=0.2).send(email())
    assert mailgun.paths("POST").count(f"/v3/{mailgun.domain}/messages") == 1, "the send may have happened"


def test_wrong_key_is_reported_without_the_key(
    plain_settings: Settings, mailgun: MailgunEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    from pydantic import SecretStr

    wrong = "key-WRONG-0123456789"
    with pytest.raises(DeliveryError, match=r"401.*MAILGUN_API_KEY") as raised:
        transport(plain_settings, mailgun, MAILGUN_API_KEY=SecretStr(wrong)).send(email())
    assert wrong not in str(raised.value) and wrong not in caplog.text
    assert not raised.value.permanent


def test_configuration_problems(plain_settings: Settings) -> None:
    assert configuration_problems(plain_settings) == [
        "MAILGUN_API_KEY: not set (Mailgun → API Security → sending or private API key)",
        "MAILGUN_DOMAIN: not set (the sending domain, e.g. mg.example.com)",
        "MAILGUN_FROM_EMAIL: not set (the address customers see and reply to)",
    ]


def test_webhook_signatures() -> None:
    key, now = "signing-key-789", 1_700_000_000.0
    good = sign(key, "1700000000", "tok-1")
    assert verify_webhook_signature(key, "1700000000", "tok-1", good, now=now)
    assert verify_webhook_signature(key, "1700000000", "tok-1", good.upper(), now=now), "hex in either case"
    assert not verify_webhook_signature(key, "1700000000", "tok-2", good, now=now), "wrong signature"
    stale = sign(key, "1699999000", "tok-3")
    assert not verify_webhook_signature(key, "1699999000", "tok-3", stale, now=now), "stale"
    assert not verify_webhook_signature(key, "soon", "tok-4", sign(key, "soon", "tok-4"), now=now)
    assert not verify_webhook_signature(key, "nan", "tok-4", sign(key, "nan", "tok-4"), now=now)
    assert not verify_webhook_signature("", "1700000000", "tok-5", sign("", "1700000000", "tok-5"), now=now)
    assert not verify_webhook_signature(key, "1700000000", "tok-6", "é" * 64, now=now), "non-ASCII signature"


def test_json_depth_counts_brackets_outside_strings_without_recursion() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[{{{"}]}') == 3
    assert json_depth(b'{"a": "\\"}') == 1
    assert json_depth(b"[" * 200_000 + b"]" * 200_000) == MAX_WEBHOOK_JSON_DEPTH + 1
    assert json_depth(b'"' + b'\\"' * 100_000) == 0, "an unterminated string is scanned once"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[1, 2]", "body must be a JSON object"),
        (b'{"signature": "abc", "event-data": {}}', "signature must be an object"),
        (b'{"signature": {"timestamp": 1, "token": "t", "signature": "s"}}', "signature must be an object"),
        (b'{"signature": {"timestamp": "1", "token": "t", "signature": "s"}, "event-data": []}', "event-data must"),
        (b'{"signature": {"timestamp": "1", "token": "t", "signature": "s"}, "event-data": {"id": 5}}', ".id must"),
    ],
)
def test_webhook_bodies_of_the_wrong_shape_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedWebhookError, match=reason):
        parse_webhook(body)


def test_event_pages_follow_paging_next(plain_settings: Settings, mailgun: MailgunEmulator) -> None:
    for n in range(7):
        mailgun.add_event("delivered", f"<m{n}@x>", "a@example.com")
    events = MailgunEvents(with_settings(plain_settings, **mailgun_values(mailgun), CONNECTOR_PAGE_SIZE=3))
    pages = list(events.pages(None))
    assert [len(page.events) for page in pages] == [3, 3, 1]
    mailgun.add_event("delivered", "<m7@x>", "a@example.com")
    [later] = list(events.pages(pages[-1].cursor))
    assert [event.message_id for event in later.events] == ["<m7@x>"]


def test_outbox_delivers_through_mailgun_and_reconciles_a_crash(
    session_factory: sessionmaker[Session], settings: Settings, mailgun: MailgunEmulator
) -> None:
    configured = with_settings(settings, **mailgun_values(mailgun))
    mailgun_transport = make_transport(configured)
    assert isinstance(mailgun_transport, MailgunTransport)
    outbox_id = queue(session_factory, configured)
    with session_factory() as session, session.begin():
        message = session.get(OutboxMessage, outbox_id)
        assert message is not None
        mailgun_transport.send(_as_email(message, configured))  # the send got out, then the worker died
        message.state, message.claim_token = OutboxState.SENDING, "dead-worker"
        message.claim_expires = utcnow() - timedelta(seconds=1)
    report = deliver_outbox(session_factory, configured, mailgun_transport)
    assert report.reconciled == 1 and report.uncertain == 0 and report.sent == 0
    with session_factory() as session:
        message = session.get(OutboxMessage, outbox_id)
        assert message is not None and message.state == OutboxState.SENT
        assert mailgun.messages[0].one("h:Message-Id") == message.message_id
    assert len(mailgun.messages) == 1, "reconciled, not sent twice"


def test_delivery_events_land_on_the_timeline_once(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, mailgun: MailgunEmulator
) -> None:
    configured = with_settings(settings, **mailgun_values(mailgun))
    queue(session_factory, configured)
    deliver_outbox(session_factory, configured, make_transport(configured))
    events = MailgunEvents(configured)
    first = poll_delivery_events(engine, session_factory, events)
    assert first == {"ignored": 1, "email_delivered": 1}
    mailgun.bounce(mailgun.messages[0])
    mailgun.add_event("opened", mailgun.messages[0].id, "customer@example.com")
    assert poll_delivery_events(engine, session_factory, events) == {"email_bounced": 1, "ignored": 1}
    assert poll_delivery_events(engine, session_factory, events) == {}
    with session_factory() as session:
        types = session.scalars(select(TimelineEvent.type).order_by(TimelineEvent.id)).all()
        assert types.count("email_delivered") == 1 and types.count("email_bounced") == 1
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.action_required
        bounced = session.scalars(select(TimelineEvent).where(TimelineEvent.type == "email_bounced")).one()
        assert "does not exist" in bounced.title
