"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, for outbox tests."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.core.settings import Settings


class Mailbox:
    """Collects messages; `fail_next` makes the server answer the next DATA commands with an error,
    `refuse_next_rcpt` answers the next RCPT commands with an error, and `vanish_next` makes it keep the next
    messages but drop the connection instead of answering."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        """Each message's envelope recipients (RCPT TO), in the order of `messages`."""
        self.fail_next: list[str] = []
        self.refuse_next_rcpt: list[str] = []
        self.vanish_next = 0
        self.lock = threading.Lock()

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            if self.refuse_next_rcpt:
                return self.refuse_next_rcpt.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        with self.lock:
            if self.fail_next:
                return self.fail_next.pop(0)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.recipients.append(list(envelope.rcpt_tos))
            if self.vanish_next:
                self.vanish_next -= 1
                assert server.transport is not None
                server.transport.abort()
        return "250 Message accepted for delivery"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [str(message["Message-ID"]) for message in self.messages]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_sink(**kwargs: Any) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def send_through(settings: Settings, port: int) -> None:
    """Point the outbox of `settings` at the sink on `port` (plain SMTP on loopback)."""
    settings.OUTBOX_TRANSPORT, settings.SMTP_HOST, settings.SMTP_PORT, settings.SMTP_SECURITY = (
        "smtp",
        "127.0.0.1",
        port,
        "none",
    )
