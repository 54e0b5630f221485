"""The engine's web endpoint, `python -m engine run --webhook-port N`: the webhook receivers the connector registry
offers, each at its own path under /webhooks/ (delivery, bounce and complaint events reach the ticket timeline
within a second instead of at the next poll of the provider's event log), and the customers' "Did this solve your
problem?" links (engine/delivery/confirmation_links.py, under /r/).

Both paths feed `record_delivery_event` (engine/delivery/delivery_events.py), which records each provider event id
once, so a webhook and a later poll of the same event never show it twice. Answers follow the providers' retry
contract (Mailgun's): 200 when the event is stored (or is not ours), 406 for anything we will never accept (a
body not of the provider's shape, a wrong, stale or replayed signature; a 406 is not retried), and 500 only when
the database fails while storing (the provider retries later). The signature's token is written in the
transaction that stores the event, so a refused attempt leaves it unused and the retry is accepted: an outage
loses no event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

from connectors import registry
from connectors.base import RejectedWebhookError, VerifiedWebhook, WebhookReceiver
from engine.core.db import transaction
from engine.core.models import WebhookToken, utcnow
from engine.core.settings import Settings
from engine.delivery.confirmation_links import PREFIX, confirmation_app
from engine.delivery.delivery_events import record_delivery_event

log = logging.getLogger(__name__)
logging.getLogger("waitress.queue").setLevel(logging.ERROR)
"""waitress warns "Task queue depth is N" whenever a request waits a moment for one of the WEB_THREADS workers,
which a bounded pool does by design under any burst: not a warning for whoever reads the engine's log."""
MAX_BODY_BYTES = 1024 * 1024
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


MAX_HEADER_BYTES = 32 * 1024
SHUTDOWN_SECONDS = 5.0
API_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
]
"""Every answer's headers unless the page sets its own (the confirmation page's policy allows its inline style):
nothing is sniffed into HTML, cached by a proxy or a browser, framed, or loaded by what we answer."""


class _RequestDeadlineChannel(HTTPChannel):
    """waitress's connection, remembering when the request being read began: its idle timeout alone never closes
    a client that trickles one byte every few seconds."""

    request_started = 0.0

    def received(self, data: bytes) -> bool:
        pending = self.request
        result = bool(super().received(data))
        if self.request is not None and self.request is not pending:
            self.request_started = time.time()
        return result


class _DeskWSGIServer(TcpWSGIServer):
    """waitress's server (requests read whole by one event loop, then run by a bounded pool of threads; idle
    connections closed after `channel_timeout`), plus a deadline on each request's arrival."""

    channel_class = _RequestDeadlineChannel
    request_timeout = 30.0

    def maintenance(self, now: float) -> None:
        super().maintenance(now)
        cutoff = now - self.request_timeout
        for channel in list(self.active_channels.values()):
            if not channel.requests and channel.request is not None and channel.request_started < cutoff:
                channel.will_close = True


class WebEndpoint:
    """The running endpoint: its port (the one asked for, or the one the system chose for port 0) and `shutdown()`."""

    def __init__(self, server: _DeskWSGIServer) -> None:
        self._server = server
        self.server_address: tuple[str, int] = (str(server.effective_host), int(server.effective_port))
        self.server_port = self.server_address[1]
        self._thread = threading.Thread(target=server.run, name="desk-web", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Close the listening socket and every connection from the server's own loop, then stop the workers
        (a request still running gets SHUTDOWN_SECONDS to finish); returns within about that time."""
        server = self._server

        def close_everything() -> None:
            for dispatcher in list(server._map.values()):
                if isinstance(dispatcher, HTTPChannel):
                    dispatcher.handle_close()  # also drops its buffers
                else:
                    dispatcher.close()  # the listening socket and the trigger

        if self._thread.is_alive():  # a second shutdown() finds the loop gone and its trigger closed
            try:
                server.trigger.pull_trigger(close_everything)
            except OSError as error:
                # Seen once in a test run (EBADF: the trigger's pipe was already closed, cause not found): close
                # from here instead; the loop uses poll(), which reports a closed descriptor rather than failing.
                log.warning("web endpoint: its wake-up pipe is gone (%s); closing its connections directly", error)
                close_everything()
            self._thread.join(SHUTDOWN_SECONDS)
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=SHUTDOWN_SECONDS)


def with_api_headers(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Add API_HEADERS to every answer that does not set them itself."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            named = {name.lower() for name, _ in headers}
            headers = headers + [(name, value) for name, value in API_HEADERS if name.lower() not in named]
            return start_response(status, headers, *exc_info)

        return app(environ, start)

    return wrapped


def webhook_app(
    factory: sessionmaker[Session], receivers: dict[str, WebhookReceiver]
) -> Callable[..., Iterable[bytes]]:
    """The WSGI application behind the webhook URLs configured at the providers: each path to its receiver."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def answer(status: str, text: str) -> list[bytes]:
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode()]

        receiver = receivers.get(str(environ.get("PATH_INFO", "")))
        if receiver is None:
            return answer("404 Not Found", "unknown path")

        def refuse(reason: str) -> list[bytes]:
            log.warning("%s webhook refused: %s", receiver.name, reason)
            return answer("406 Not Acceptable", reason)

        if environ.get("REQUEST_METHOD") != "POST":
            return answer("405 Method Not Allowed", "POST only")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            return answer("413 Content Too Large", f"body must be 1 to {MAX_BODY_BYTES} bytes")
        if str(environ.get("CONTENT_TYPE", "")).split(";", 1)[0].strip().lower() != receiver.content_type:
            return refuse(f"Content-Type must be {receiver.content_type}")
        try:
            signed = receiver.verify(environ["wsgi.input"].read(length))
        except RejectedWebhookError as error:
            return refuse(str(error))
        try:
            with transaction(factory) as session:
                first_time = claim_token(session, signed, receiver.max_age)
                record = signed.delivery if first_time else None
                kind = record_delivery_event(session, record) if record is not None else None
        except SQLAlchemyError as error:
            log.error(
                "%s webhook %s not stored, the provider will retry: %s",
                receiver.name,
                signed.event_id,
                type(error).__name__,
            )
            return answer("500 Internal Server Error", "not stored; retry later")
        if not first_time:
            return refuse(f"token already used by a stored delivery (replay of event {signed.event_id})")
        log.info("%s webhook %s %s: %s", receiver.name, signed.event_name, signed.event_id, kind or "ignored")
        return answer("200 OK", kind or "ignored")

    return app


def claim_token(session: Session, signed: VerifiedWebhook, max_age: float) -> bool:
    """Record the signature's token in the caller's transaction, so it counts as used only once its event is
    stored; False when a stored delivery used it already. Tokens too old to pass the freshness check go."""
    session.execute(delete(WebhookToken).where(WebhookToken.signed_at < utcnow() - timedelta(seconds=max_age)))
    if session.get(WebhookToken, signed.token) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(WebhookToken(token=signed.token, signed_at=signed.signed_at))
    except IntegrityError:  # the same token stored by a concurrent delivery a moment ago
        return False
    return True


def desk_web_app(
    factory: sessionmaker[Session], settings: Settings, receivers: dict[str, WebhookReceiver]
) -> Callable[..., Iterable[bytes]]:
    """The webhook receivers (those that can verify) and the confirmation links (when DESK_PUBLIC_URL is set)."""
    webhooks = webhook_app(factory, receivers)
    links = confirmation_app(factory, settings) if settings.DESK_PUBLIC_URL else None

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if links is not None and str(environ.get("PATH_INFO", "")).startswith(PREFIX):
            return links(environ, start_response)
        return webhooks(environ, start_response)

    return app


def start_webhook_server(
    port: int, factory: sessionmaker[Session], settings: Settings, *, address: str = "127.0.0.1"
) -> WebEndpoint:
    """Serve the webhook and the confirmation links from a daemon thread until `shutdown()`; OSError if the port
    is taken (port 0: a free one, see `server_port`).

    Served by waitress: one event loop reads requests (headers at most MAX_HEADER_BYTES, bodies at most
    MAX_BODY_BYTES) and hands only complete ones to WEB_THREADS workers, so slow or half-sent requests hold a
    socket, never a worker; a connection quiet for WEB_IDLE_TIMEOUT_SECONDS, or a request not whole after
    WEB_REQUEST_TIMEOUT_SECONDS, is closed; at most WEB_CONNECTION_LIMIT connections are open at once.
    A public deployment puts it behind the TLS proxy that the providers post to and DESK_PUBLIC_URL names.
    """
    receivers, unavailable = registry.webhook_receivers(settings)
    if not receivers and not settings.DESK_PUBLIC_URL:
        raise ValueError(
            "; ".join(unavailable or ["no connector receives webhooks"])
            + " and DESK_PUBLIC_URL is not set (no confirmation links): nothing to serve"
        )
    idle = settings.WEB_IDLE_TIMEOUT_SECONDS
    request_timeout = settings.WEB_REQUEST_TIMEOUT_SECONDS
    server = _DeskWSGIServer(
        with_api_headers(desk_web_app(factory, settings, receivers)),
        host=address,
        port=port,
        threads=settings.WEB_THREADS,
        connection_limit=settings.WEB_CONNECTION_LIMIT,
        channel_timeout=idle,
        cleanup_interval=max(1, min(idle, request_timeout) // 2),
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=MAX_BODY_BYTES,
        inbuf_overflow=64 * 1024,
        asyncore_use_poll=True,  # select() cannot watch descriptors above 1023
        ident="",  # no Server header naming the software
        expose_tracebacks=False,
    )
    server.request_timeout = request_timeout
    endpoint = WebEndpoint(server)
    paths = ", ".join([*receivers, PREFIX])
    log.info("web endpoint on http://%s:%s (%s)", address, endpoint.server_port, paths)
    return endpoint
