"""The two small protocols every connector implements: a ticket source that is polled, a mail transport.

Sources page through what changed since a cursor they define themselves; ingest makes the result
idempotent. Transports send one message and, where the provider allows, say whether a message id
was already delivered, so a crash between "sent" and "marked sent" never doubles a message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from engine.ingest import TicketIn


@dataclass(frozen=True)
class RejectedItem:
    """A source item that could not be read as a ticket; kept whole for a person to look at."""

    external_id: str | None
    error: str
    payload: str


@dataclass(frozen=True)
class PolledPage:
    """One page of a poll: what it held and the cursor to resume after it."""

    items: list[TicketIn]
    cursor: str | None
    rejected: list[RejectedItem] = field(default_factory=list)


@runtime_checkable
class TicketSource(Protocol):
    name: str

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        """Yield pages of new or changed items after `cursor`, oldest first."""
        ...


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutgoingEmail:
    message_id: str
    from_address: str
    from_name: str
    to_address: str
    subject: str
    body_text: str
    body_html: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[OutgoingAttachment, ...] = ()


class DeliveryError(Exception):
    """Sending failed. `permanent` failures (rejected recipient, bad request) are not retried; `uncertain` ones
    (the request went out but the answer was lost: a timeout, a reset, a cut-off body) may have been delivered,
    so the outbox asks the transport before it sends again; `deferred` ones never reached the provider (its
    circuit breaker is open) and do not count as an attempt."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        uncertain: bool = False,
        deferred: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.uncertain = uncertain
        self.deferred = deferred


@runtime_checkable
class MailTransport(Protocol):
    name: str
    confirms_delivery: bool
    """Whether `was_delivered` can ever say yes or no; None from such a transport means "not now, ask again"."""

    def send(self, email: OutgoingEmail) -> str:
        """Hand `email` to the provider and return its id for the message; raise DeliveryError on failure."""
        ...

    def was_delivered(self, message_id: str) -> bool | None:
        """Whether the provider already has `message_id`: True, False, or None when it cannot tell."""
        ...


@dataclass(frozen=True)
class SourceUpdate:
    """One decision about a ticket, to be written back to the system the ticket came from.

    `note` adds a work note or comment; `status` moves the source record (and, when escalating, its
    assignment group; when resolving, its close notes).
    """

    event_id: int
    external_id: str
    kind: Literal["note", "status"]
    text: str
    status: str | None = None
    team: str | None = None
    resolution: str | None = None
    public: bool = False
    """Whether the customer may see it: only customer-facing messages are public; notes stay internal."""

    @property
    def marker(self) -> str:
        """The tag in the note's text that tells this update's note apart from every other one."""
        return f"· event {self.event_id}]"


@runtime_checkable
class SyncBack(Protocol):
    name: str

    def push(self, update: SourceUpdate, *, check_first: bool = False) -> None:
        """Apply `update` at the source or raise ConnectorError; the sync cursor moves past it only on return.

        `check_first`: an earlier push of it lost its answer, so its note may be there already; look for the
        note's marker and do not write it twice.
        """
        ...
