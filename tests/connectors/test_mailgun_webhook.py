"""Mailgun webhooks over real HTTP: signed events land on the timeline once (also when the events poll sees them
later), forged, stale and replayed ones get 406, and the engine refuses to listen without a signing key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.mailgun import MailgunEvents
from engine.delivery_events import poll_delivery_events
from engine.models import Ticket, TimelineEvent
from engine.outbox import deliver_outbox, make_transport
from engine.settings import Settings
from engine.webhooks import PATH, start_webhook_server
from tests.app_process import free_port
from tests.connectors.conftest import mailgun_values, with_settings
from tests.connectors.test_mailgun import queue, sign
from tests.emulators.mailgun import MailgunEmulator
from tests.engine_process import run_engine

KEY = "webhook-signing-key-4242"


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
    queue(session_factory, configured)
    deliver_outbox(session_factory, configured, make_transport(configured))
    delivered = next(event for event in mailgun.events if event["event"] == "delivered")
    bounced = mailgun.bounce(mailgun.messages[0])

    first = requests.post(webhook_url, json=signed(delivered), timeout=5)
    assert (first.status_code, first.text) == (200, "email_delivered")
    replay = signed(bounced)
    assert requests.post(webhook_url, json=replay, timeout=5).text == "email_bounced"
    assert requests.post(webhook_url, json=replay, timeout=5).status_code == 406, "replayed token"
    assert requests.post(webhook_url, json=signed(bounced, key="guessed"), timeout=5).status_code == 406
    assert requests.post(webhook_url, json=signed(bounced, age=3600), timeout=5).status_code == 406, "stale"
    assert requests.post(webhook_url, data=b"{not json", timeout=5).status_code == 406
    assert requests.post(webhook_url, data=b"x" * (2 * 1024 * 1024), timeout=5).status_code == 413
    assert requests.get(webhook_url, timeout=5).status_code == 405
    stranger = {**delivered, "id": "other", "message": {"headers": {"message-id": "someone-else@x"}}}
    assert requests.post(webhook_url, json=signed(stranger), timeout=5).text == "ignored"

    poll_delivery_events(engine, session_factory, MailgunEvents(configured))
    types = timeline(session_factory)
    assert types.count("email_delivered") == 1 and types.count("email_bounced") == 1, "webhook and poll agree"
    with session_factory() as session:
        assert session.scalars(select(Ticket)).one().action_required, "a bounce asks a person"


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
