"""The engine's web endpoint, `python -m engine run --webhook-port N`: Mailgun's webhooks (delivery, bounce and
complaint events reach the ticket timeline within a second instead of at the next poll of the events API) and
the customers' "Did this solve your problem?" links (engine/delivery/confirmation_links.py, under /r/).

Both paths feed `record_delivery_event` (engine/delivery/delivery_events.py), which records each Mailgun event id
once, so a webhook and a later poll of the same event never show it twice. Answers follow Mailgun's retry
contract: 200 when the event is stored (or is not ours), 406 for anything we will never accept (not a JSON
body of Mailgun's shape, a wrong, stale or replayed signature; Mailgun does not retry a 406), and 500 only
when the database fails while storing (Mailgun retries later). The signature's token is written in the
transaction that stores the event, so a refused attempt leaves it unused and the retry is accepted: an outage
loses no event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connectors.mailgun import (
    MalformedWebhookError,
    SignedEvent,
    delivery_event,
    parse_webhook,
    verify_webhook_signature,
)
from engine.core.db import transaction
from engine.core.models import WebhookToken, utcnow
from engine.core.settings import Settings
from engine.delivery.confirmation_links import PREFIX, confirmation_app
from engine.delivery.delivery_events import record_delivery_event

log = logging.getLogger(__name__)
PATH = "/webhooks/mailgun"
MAX_BODY_BYTES = 1024 * 1024
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128
    """socketserver's default backlog of 5 resets connections when customers click at once (bench/outcomes.py)."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by the app with their outcome; wsgiref's stderr line would add nothing."""


def mailgun_webhook_app(factory: sessionmaker[Session], settings: Settings) -> Callable[..., Iterable[bytes]]:
    """The WSGI application behind the webhook URL configured at Mailgun."""
    signing_key = settings.MAILGUN_WEBHOOK_SIGNING_KEY.get_secret_value()
    max_age = settings.MAILGUN_WEBHOOK_MAX_AGE_SECONDS

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def answer(status: str, text: str) -> list[bytes]:
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode()]

        def refuse(reason: str) -> list[bytes]:
            log.warning("mailgun webhook refused: %s", reason)
            return answer("406 Not Acceptable", reason)

        if environ.get("PATH_INFO") != PATH:
            return answer("404 Not Found", "unknown path")
        if environ.get("REQUEST_METHOD") != "POST":
            return answer("405 Method Not Allowed", "POST only")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            return answer("413 Content Too Large", f"body must be 1 to {MAX_BODY_BYTES} bytes")
        if str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower() != "application/json":
            return refuse("Content-Type must be application/json")
        try:
            signed = parse_webhook(environ["wsgi.input"].read(length))
        except MalformedWebhookError as error:
            return refuse(str(error))
        if not verify_webhook_signature(signing_key, signed.timestamp, signed.token, signed.signature, max_age=max_age):
            return refuse("signature not accepted: wrong signing key or stale timestamp")
        event_id = signed.event["id"]
        try:
            with transaction(factory) as session:
                first_time = claim_token(session, signed, max_age)
                record = delivery_event(signed.event) if first_time else None
                kind = record_delivery_event(session, record) if record is not None else None
        except SQLAlchemyError as error:
            log.error("mailgun webhook %s not stored, Mailgun will retry: %s", event_id, type(error).__name__)
            return answer("500 Internal Server Error", "not stored; retry later")
        if not first_time:
            return refuse(f"token already used by a stored delivery (replay of event {event_id})")
        log.info("mailgun webhook %s %s: %s", signed.event["event"], event_id, kind or "ignored")
        return answer("200 OK", kind or "ignored")

    return app


def claim_token(session: Session, signed: SignedEvent, max_age: float) -> bool:
    """Record the signature's token in the caller's transaction, so it counts as used only once its event is
    stored; False when a stored delivery used it already. Tokens too old to pass the freshness check go."""
    session.execute(delete(WebhookToken).where(WebhookToken.signed_at < utcnow() - timedelta(seconds=max_age)))
    if session.get(WebhookToken, signed.token) is not None:
        return False
    try:
        with session.begin_nested():
            signed_at = datetime.fromtimestamp(float(signed.timestamp), UTC)
            session.add(WebhookToken(token=signed.token, signed_at=signed_at))
    except IntegrityError:  # the same token stored by a concurrent delivery a moment ago
        return False
    return True


def desk_web_app(factory: sessionmaker[Session], settings: Settings) -> Callable[..., Iterable[bytes]]:
    """Mailgun's webhook (when its signing key is set) and the confirmation links (when DESK_PUBLIC_URL is)."""
    keyed = bool(settings.MAILGUN_WEBHOOK_SIGNING_KEY.get_secret_value())
    mailgun = mailgun_webhook_app(factory, settings) if keyed else None
    links = confirmation_app(factory, settings) if settings.DESK_PUBLIC_URL else None

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if links is not None and str(environ.get("PATH_INFO", "")).startswith(PREFIX):
            return links(environ, start_response)
        if mailgun is not None:
            return mailgun(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"unknown path"]

    return app


def start_webhook_server(
    port: int, factory: sessionmaker[Session], settings: Settings, *, address: str = "127.0.0.1"
) -> WSGIServer:
    """Serve the webhook and the confirmation links from a daemon thread until `shutdown()`; OSError if the port
    is taken.

    A public deployment puts it behind the TLS proxy that Mailgun posts to and DESK_PUBLIC_URL names.
    """
    if not settings.MAILGUN_WEBHOOK_SIGNING_KEY.get_secret_value() and not settings.DESK_PUBLIC_URL:
        raise ValueError(
            "MAILGUN_WEBHOOK_SIGNING_KEY is not set (webhooks cannot be verified) and DESK_PUBLIC_URL is not set "
            "(no confirmation links): nothing to serve"
        )
    server = make_server(
        address,
        port,
        desk_web_app(factory, settings),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="desk-web", daemon=True).start()
    log.info("web endpoint on http://%s:%s (%s, %s)", address, server.server_port, PATH, PREFIX)
    return server
