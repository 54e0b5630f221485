"""A live sender working through a batch is never mistaken for a crashed one.

Rows of a batch are claimed together; each send must hold its own lease from the moment it starts, or a
batch that takes longer than the lease hands its last rows to another worker's reconciliation while they
are still being sent: `uncertain` over SMTP, and sent twice where the provider cannot see the message yet.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import OutgoingEmail
from engine.core.enums import MessageKind, OutboxState
from engine.core.models import OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.delivery.outbox import deliver_outbox, enqueue_email
from engine.intake.ingest import ingest
from tests.factories import ticket_in


@dataclass
class Clock:
    now: datetime = field(default_factory=utcnow)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Provider:
    """What reached the customer, and what the provider can tell about a message still in flight."""

    delivered_answer: bool | None
    received: list[str] = field(default_factory=list)


@dataclass
class Transport:
    """A sender whose sends take `seconds` each on the clock; `meanwhile` runs while one is in flight."""

    provider: Provider
    clock: Clock
    seconds: list[float]
    meanwhile: dict[int, object] = field(default_factory=dict)
    name: str = "slow"
    confirms_delivery: bool = False

    def send(self, email: OutgoingEmail) -> str:
        call = len(self.provider.received)
        self.clock.now += timedelta(seconds=self.seconds[call])
        if call in self.meanwhile:
            self.meanwhile[call]()  # type: ignore[operator]
        self.provider.received.append(email.message_id)
        return email.message_id

    def was_delivered(self, message_id: str) -> bool | None:
        return self.provider.delivered_answer


def queue_acknowledgements(factory: sessionmaker[Session], settings: Settings, count: int) -> None:
    with factory.begin() as session:
        for _ in range(count):
            ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
            content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE)
            enqueue_email(
                session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key=f"ack:{ticket.id}"
            )


@pytest.mark.parametrize("delivered_answer", [False, None], ids=["provider-not-yet-aware", "smtp"])
def test_a_batch_longer_than_the_lease_is_neither_doubled_nor_uncertain(
    delivered_answer: bool | None,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lease = settings.CLAIM_LEASE_SECONDS
    queue_acknowledgements(session_factory, settings, 2)
    clock = Clock()
    monkeypatch.setattr("engine.delivery.outbox.utcnow", clock)
    provider = Provider(delivered_answer)
    other_worker = Transport(provider, clock, seconds=[0, 0, 0])
    live_worker = Transport(provider, clock, seconds=[0.75 * lease, 0.5 * lease])
    live_worker.meanwhile[1] = lambda: deliver_outbox(session_factory, settings, other_worker)

    deliver_outbox(session_factory, settings, live_worker)

    with session_factory() as session:
        states = sorted(session.scalars(select(OutboxMessage.state)))
    assert sorted(provider.received) == sorted(set(provider.received)), "a message was sent twice"
    assert states == [OutboxState.SENT, OutboxState.SENT]
