"""Mailgun webhooks over real HTTP: signed events land on the timeline once (also when the events poll sees them
later), forged, stale, replayed and malformed ones get 406 (never 500), a delivery the database refused is
accepted when Mailgun retries it, and the engine refuses to listen without a signing key."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connectors.mailgun import MailgunEvents
from connectors.registry import webhook_path
from engine.core.db import make_session_factory
from engine.core.models import Ticket, TimelineEvent, WebhookToken
from engine.core.settings import Settings
from engine.delivery.delivery_events import poll_delivery_events
from engine.delivery.outbox import deliver_outbox, make_transport
from engine.delivery.webhooks import start_webhook_server
from tests.app_process import free_port
from tests.connectors.conftest import mailgun_values, with_settings
from tests.emulators.mailgun import MailgunEmulator
from tests.engine_process import run_engine
from tests.factories import queue, sign

KEY = "webhook-signing-key-4242"
PATH = webhook_path("mailgun")


@pytest.fixture
def configured(settings: Settings, mailgun: MailgunEmulator) -> Settings:
    return with_settings(settings, **mailgun_values(mailgun), MAILGUN_WEBHOOK_SIGNING_KEY=SecretStr(KEY))


@pytest.fixture
def webhook_url(session_factory: sessionmaker[Session], configured: Settings) -> Iterator[str]:
    server = start_webhook_server(free_port(), session_factory, configured)
    try:
        yield f"http://127.0.0.1:{server.server_port}{PATH}"
    finally:
        server.shutdown()


def signed(event: dict[str, Any], *, key: str = KEY, age: float = 0) -> dict[str, Any]:
    stamp, token = str(int(time.time() - age)), uuid.uuid4().hex
    return {
        "signature": {"timestamp": stamp, "token": token, "signature": sign(key, stamp, token)},
        "event-data": event,
    }


def post(url: str, body: bytes, content_type: str | None = "application/json") -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": content_type} if content_type else {}, timeout=10)


def delivered_event(factory: sessionmaker[Session], settings: Settings, mailgun: MailgunEmulator) -> dict[str, Any]:
    """A reply sent through the emulator, and the `delivered` event Mailgun reports for it."""
    queue(factory, settings)
    deliver_outbox(factory, settings, make_transport(settings))
    return next(event for event in mailgun.events if event["event"] == "delivered")


def timeline(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(TimelineEvent.type).order_by(TimelineEvent.id)))


def test_signed_events_land_once_and_forgeries_are_refused(
    engine: Engine,
    session_factory: sessionmaker[Session],
    configured: Settings,
    mailgun: MailgunEmulator,
    webhook_url: str,
) -> None:
    delivered = delivered_event(session_factory, configured, mailgun)
    bounced = mailgun.bounce(mailgun.messages[0])

    first = requests.post(webhook_url, json=signed(delivered), timeout=5)
    assert (first.status_code, first.text) == (200, "email_delivered")
    replay = signed(bounced)
    assert requests.post(webhook_url, json=replay, timeout=5).text == "email_bounced"
    assert requests.post(webhook_url, json=replay, timeout=5).status_code == 406, "replayed token"
    assert requests.post(webhook_url, json=signed(bounced, key="guessed"), timeout=5).status_code == 406
    assert requests.post(webhook_url, json=signed(bounced, age=3600), timeout=5).status_code == 406, "stale"
    assert post(webhook_url, b"{not json").status_code == 406
    assert requests.post(webhook_url, data=b"x" * (2 * 1024 * 1024), timeout=5).status_code == 413
    assert requests.get(webhook_url, timeout=5).status_code == 405
    stranger = {**delivered, "id": "other", "message": {"headers": {"message-id": "someone-else@x"}}}
    assert requests.post(webhook_url, json=signed(stranger), timeout=5).text == "ignored"

    poll_delivery_events(engine, session_factory, MailgunEvents(configured))
    types = timeline(session_factory)
    assert types.count("email_delivered") == 1 and types.count("email_bounced") == 1, "webhook and poll agree"
    with session_factory() as session:
        assert session.scalars(select(Ticket)).one().action_required, "a bounce asks a person"


def _with_message_id(message_id: object) -> dict[str, Any]:
    return {"event": "delivered", "id": "ev-1", "message": {"headers": {"message-id": message_id}}}


SIGNED_OK = json.dumps(signed(_with_message_id("m1@x"))).encode()
MALFORMED = {
    "signature as a string": (json.dumps({"signature": "abc", "event-data": {}}).encode(), "signature must be"),
    "signature as a list": (json.dumps({"signature": ["1", "t", "s"], "event-data": {}}).encode(), "signature must"),
    "signature missing": (json.dumps({"event-data": _with_message_id("m1@x")}).encode(), "signature must be"),
    "200,000-deep JSON": (b'{"signature": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "nested deeper than"),
    "not an object": (b'"event"', "body must be a JSON object"),
    "message-id as a number": (json.dumps(signed(_with_message_id(42))).encode(), "message-id must be a string"),
    "message-id as a list": (json.dumps(signed(_with_message_id(["a@x"]))).encode(), "message-id must be a string"),
    "event-data id as a list": (json.dumps(signed({"event": "delivered", "id": ["e"]})).encode(), "id must be"),
    "event timestamp as text": (
        json.dumps(signed({"event": "delivered", "id": "e", "timestamp": "today"})).encode(),
        "timestamp must be a number",
    ),
}


@pytest.mark.parametrize(("body", "reason"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_bodies_get_406_with_a_reason_and_a_warning(
    webhook_url: str, body: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="engine.delivery.webhooks"):
        answer = post(webhook_url, body)
    assert (answer.status_code, reason in answer.text) == (406, True), answer.text[:300]
    assert [record.levelname for record in caplog.records] == ["WARNING"]
    assert reason in caplog.records[0].getMessage() and not caplog.records[0].exc_info


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_declared_json_gets_406(webhook_url: str, content_type: str | None) -> None:
    answer = post(webhook_url, SIGNED_OK, content_type)
    assert (answer.status_code, answer.text) == (406, "Content-Type must be application/json")


def test_an_event_refused_with_500_is_accepted_when_mailgun_retries_and_stored_once(
    engine: Engine, session_factory: sessionmaker[Session], configured: Settings, mailgun: MailgunEmulator
) -> None:
    body = json.dumps(signed(delivered_event(session_factory, configured, mailgun))).encode()
    flaky = make_session_factory(engine)
    failures = [OperationalError("COMMIT", {}, Exception("database is locked"))]

    @event.listens_for(flaky, "before_commit")
    def locked_once(_session: Session) -> None:
        if failures:
            raise failures.pop()

    server = start_webhook_server(free_port(), flaky, configured)
    url = f"http://127.0.0.1:{server.server_port}{PATH}"
    try:
        refused, retried, replayed = post(url, body), post(url, body), post(url, body)
    finally:
        server.shutdown()
    assert (refused.status_code, refused.text) == (500, "not stored; retry later")
    assert (retried.status_code, retried.text) == (200, "email_delivered")
    assert replayed.status_code == 406 and "already used" in replayed.text
    assert timeline(session_factory).count("email_delivered") == 1
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WebhookToken)) == 1
    restarted = start_webhook_server(free_port(), session_factory, configured)
    try:
        again = post(f"http://127.0.0.1:{restarted.server_port}{PATH}", body)
    finally:
        restarted.shutdown()
    assert again.status_code == 406, "a restart does not forget used tokens"


def test_a_database_outage_answers_500_so_mailgun_retries(plain_settings: Settings, tmp_path: Path) -> None:
    unreachable = sessionmaker(create_engine(f"sqlite:///{tmp_path}/missing-folder/desk.db"))
    keyed = plain_settings.model_copy(update={"MAILGUN_WEBHOOK_SIGNING_KEY": SecretStr(KEY)})
    server = start_webhook_server(free_port(), unreachable, keyed)
    event = {"event": "delivered", "id": "ev-1", "message": {"headers": {"message-id": "m1@x"}}}
    try:
        answer = requests.post(f"http://127.0.0.1:{server.server_port}{PATH}", json=signed(event), timeout=10)
    finally:
        server.shutdown()
    assert answer.status_code == 500 and "retry" in answer.text


def test_the_engine_will_not_listen_without_a_signing_key(settings: Settings, tmp_path: Path) -> None:
    done = run_engine(settings, "run", "--webhook-port", str(free_port()), cwd=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "MAILGUN_WEBHOOK_SIGNING_KEY is not set" in done.stderr
