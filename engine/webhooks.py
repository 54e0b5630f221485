"""Mailgun's webhooks, received by `python -m engine run --webhook-port N`: delivery, bounce and complaint
events reach the ticket timeline within a second instead of at the next poll of the events API.

Both paths feed `record_delivery_event` (engine/delivery_events.py), which records each Mailgun event id
once, so a webhook and a later poll of the same event never show it twice. Answers follow Mailgun's retry
contract: 200 when the event is stored (or is not ours), 406 when the signature is wrong, stale or replayed
(Mailgun does not retry a 406), 500 when the database is unavailable (Mailgun retries later), so an outage
loses no event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connectors.mailgun import delivery_event, webhook_event
from engine.db import transaction
from engine.delivery_events import record_delivery_event
from engine.settings import Settings

log = logging.getLogger(__name__)
PATH = "/webhooks/mailgun"
MAX_BODY_BYTES = 1024 * 1024
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged by the app with their outcome; wsgiref's stderr line would add nothing."""


def mailgun_webhook_app(factory: sessionmaker[Session], settings: Settings) -> Callable[..., Iterable[bytes]]:
    """The WSGI application behind the webhook URL configured at Mailgun."""
    signing_key = settings.MAILGUN_WEBHOOK_SIGNING_KEY.get_secret_value()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def answer(status: str, text: str) -> list[bytes]:
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode()]

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
        event = webhook_event(
            environ["wsgi.input"].read(length), signing_key, max_age=settings.MAILGUN_WEBHOOK_MAX_AGE_SECONDS
        )
        if event is None:
            log.warning("mailgun webhook refused: bad, stale or replayed signature, or not an event")
            return answer("406 Not Acceptable", "signature not accepted")
        try:
            with transaction(factory) as session:
                record = delivery_event(event)
                kind = record_delivery_event(session, record) if record is not None else None
        except SQLAlchemyError as error:
            log.error("mailgun webhook %s not stored, Mailgun will retry: %s", event.get("id"), type(error).__name__)
            return answer("500 Internal Server Error", "not stored; retry later")
        log.info("mailgun webhook %s: %s", event.get("event"), kind or "ignored")
        return answer("200 OK", kind or "ignored")

    return app


def start_webhook_server(
    port: int, factory: sessionmaker[Session], settings: Settings, *, address: str = "127.0.0.1"
) -> WSGIServer:
    """Serve the webhook from a daemon thread until `shutdown()`; OSError if the port is taken.

    A public deployment puts it behind the TLS proxy that Mailgun posts to.
    """
    if not settings.MAILGUN_WEBHOOK_SIGNING_KEY.get_secret_value():
        raise ValueError("MAILGUN_WEBHOOK_SIGNING_KEY is not set: webhooks cannot be verified, so none are accepted")
    server = make_server(
        address,
        port,
        mailgun_webhook_app(factory, settings),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="mailgun-webhooks", daemon=True).start()
    log.info("mailgun webhooks on http://%s:%s%s", address, server.server_port, PATH)
    return server
