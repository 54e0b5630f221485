"""The two small protocols every connector implements: a ticket source that is polled, a mail transport.

Sources page through what changed since a cursor they define themselves; ingest makes the result
idempotent. Transports send one message and, where the provider allows, say whether a message id
was already delivered, so a crash between "sent" and "marked sent" never doubles a message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: object) -> object:
    """Text (also inside lists and dicts) without control characters: PostgreSQL refuses NUL in text and JSONB."""
    if isinstance(value, str):
        return CONTROL_CHARACTERS.sub("", value)
    if isinstance(value, list):
        return [_printable(item) for item in value]
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    return value


class AttachmentIn(BaseModel):
    model_config = ConfigDict(frozen=True)

    filename: str = Field(min_length=1, max_length=500)
    content_type: str | None = None
    data: bytes

    _strip_control_characters = field_validator("filename", "content_type")(_printable)


class TicketIn(BaseModel):
    """One item from a source: a new ticket, an update of one, or an e-mail that may continue a thread."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    source: str = Field(min_length=1, max_length=50)
    external_id: str = Field(min_length=1, max_length=255)
    requester_email: str = Field(min_length=3, max_length=320)
    requester_name: str | None = Field(default=None, max_length=255)
    subject: str = Field(default="", max_length=100_000)
    body: str = Field(default="", max_length=2_000_000)
    kind: Literal["ticket", "email", "comment"] = "ticket"
    """`comment`: a reply written at the source (a ServiceNow caller comment, a Jira reporter comment)."""
    parent_external_id: str | None = Field(default=None, max_length=255)
    """For a `comment`: the external id of the ticket it belongs to."""
    history: bool = False
    """Already resolved or closed at the source when first seen: stored and learned from, never reopened,
    acknowledged or written back. `additional_info["source_status"] == "resolved"` stores it as Resolved (else
    Closed); `additional_info["resolution"]` (the source's close notes) becomes its resolution."""
    priority: str | None = Field(default=None, max_length=50)
    category: str | None = Field(default=None, max_length=100)
    team: str | None = Field(default=None, max_length=100)
    """For history: the team the source resolved it under, which routing learns from."""
    external_url: str | None = Field(default=None, max_length=1000)
    updated_at: datetime | None = None
    thread_id: str | None = Field(default=None, max_length=500)
    message_id: str | None = Field(default=None, max_length=500)
    in_reply_to: str | None = Field(default=None, max_length=500)
    references: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    attachments: list[AttachmentIn] = Field(default_factory=list)
    additional_info: dict[str, object] = Field(default_factory=dict)
    control_characters_removed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _note_control_characters(cls, data: Any) -> Any:
        """Remember that the message needed cleaning: such input is held for a person (engine/trust/decision.py)."""
        if isinstance(data, dict) and any(
            isinstance(data.get(name), str) and CONTROL_CHARACTERS.search(data[name]) for name in ("subject", "body")
        ):
            return {**data, "control_characters_removed": True}
        return data

    @field_validator("requester_email")
    @classmethod
    def _looks_like_address(cls, value: str) -> str:
        address = value.rsplit("<", 1)[-1].strip(">").strip().lower()
        if "@" not in address or " " in address:
            raise ValueError(f"not an e-mail address: {value[:80]!r}")
        return address

    _strip_control_characters = field_validator(
        "source",
        "external_id",
        "requester_name",
        "subject",
        "body",
        "priority",
        "category",
        "external_url",
        "thread_id",
        "message_id",
        "in_reply_to",
        "references",
        "headers",
        "additional_info",
    )(_printable)


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and never its secret value."""


class ConnectorSettings(BaseSettings):
    """A connector's own settings: a mixin of engine.core.settings.Settings, read from the same environment and
    `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True)


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


DeliveryKind = Literal["email_delivered", "email_bounced", "email_complained", "email_unsubscribed"]


@dataclass(frozen=True)
class DeliveryEvent:
    """What a mail provider reports about one message we sent, keyed by the provider's own event id."""

    provider: str
    event_id: str
    kind: DeliveryKind
    message_id: str
    """Our Message-Id, with angle brackets, as the outbox stores it."""
    recipient: str | None
    reason: str


@dataclass(frozen=True)
class DeliveryPage:
    """One page of a provider's event log: the events the desk tracks, how many it skipped, where to resume."""

    events: list[DeliveryEvent]
    ignored: int
    cursor: str


@runtime_checkable
class DeliveryEvents(Protocol):
    name: str

    def pages(self, cursor: str | None) -> Iterator[DeliveryPage]:
        """Yield pages of the provider's events after `cursor`, oldest first."""
        ...


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
