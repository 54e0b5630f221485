"""The small protocols connectors implement (a ticket source that is polled, a mail transport, a web search, a
webhook receiver), the settings every connector shares and the status names the desk writes back.

Sources page through what changed since a cursor they define themselves; ingest makes the result
idempotent. Transports send one message and, where the provider allows, say whether a message id
was already delivered, so a crash between "sent" and "marked sent" never doubles a message.

Connectors are the bottom of the stack and import no engine code: what both sides need is defined here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class TicketStatus(StrEnum):
    """A ticket's state: the desk's vocabulary (engine.core.enums re-exports it) and what write-back maps to a
    vendor's states, defined once so the two can never drift apart."""

    NEW = "New"
    ANALYZING = "Analyzing"
    AWAITING_APPROVAL = "AwaitingApproval"
    AWAITING_CUSTOMER = "AwaitingCustomer"
    IN_PROGRESS = "InProgress"
    """A person took the ticket over and owns it; automation leaves it alone."""
    ESCALATED = "Escalated"
    RESOLVED = "Resolved"
    CLOSED = "Closed"


MESSAGE_ID_KEY_LENGTH = 250
"""Message-IDs up to this length are kept as they are; RFC 5322 allows up to 998 characters in a line, so a
longer one is stored as a key derived from it (see `message_id_key`)."""


def message_id_key(message_id: str) -> str:
    """A bounded key for a Message-ID: the id itself when short, else a SHA-256 of it in Message-ID form. The same
    id always gives the same key, so dedupe and threading (In-Reply-To, References) keep working."""
    message_id = message_id.strip()
    if len(message_id) <= MESSAGE_ID_KEY_LENGTH:
        return message_id
    return f"<sha256-{hashlib.sha256(message_id.encode('utf-8', 'surrogateescape')).hexdigest()}@long-message-id>"


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
    left_at_source: Literal["too_large", "not_fetched"] | None = None
    """Set when the connector did not bring the file's bytes (`data` is then empty): over MAX_ATTACHMENT_BYTES, or
    refused (a download address off the configured server). The ticket shows it with `reason` and waits for a
    person."""
    reason: str = Field(default="", max_length=1000)
    declared_size: int | None = None
    """The size the source stated, for a file left at the source."""

    _strip_control_characters = field_validator("filename", "content_type", "reason")(_printable)


class DeliveryReportIn(BaseModel):
    """A delivery status notification (RFC 3464) read from a mailbox: every Message-ID it names for the message it
    reports on (the returned message or headers, Original-Message-ID, its own In-Reply-To/References), and what
    happened to the first recipient that did not simply succeed."""

    message_ids: list[str] = Field(default_factory=list)
    action: str = Field(default="", max_length=40)
    """RFC 3464 Action: failed, delayed, delivered, relayed or expanded (lower case)."""
    recipient: str | None = Field(default=None, max_length=320)
    status: str = Field(default="", max_length=40)
    """The enhanced status code (RFC 3463), e.g. 5.1.1."""
    diagnostic: str = Field(default="", max_length=2000)
    """The remote server's answer (Diagnostic-Code), e.g. `smtp; 550 5.1.1 unknown user`."""


class TicketIn(BaseModel):
    """One item from a source: a new ticket, an update of one, or an e-mail that may continue a thread."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True)

    source: str = Field(min_length=1, max_length=50)
    external_id: str = Field(min_length=1, max_length=255)
    requester_email: str = Field(min_length=3, max_length=320)
    requester_name: str | None = Field(default=None, max_length=255)
    requester_name_from_directory: bool = False
    """The name comes from the source's own user directory (a ServiceNow caller record, a Jira reporter's account),
    not from the sender: only such a name may greet the customer in an automatic message."""
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
    delivery_report: DeliveryReportIn | None = None
    """Set when the e-mail is a delivery status notification (a bounce or a delay warning)."""
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
    """What every connector reads besides its own variables: timeouts, retries, the circuit breaker, the CA bundle,
    the page size and the attachment limit. Each connector's settings class inherits it and is a mixin of
    engine.core.settings.Settings, read from the same environment and `.env`, so one value serves all connectors."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True)

    CONNECTOR_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    CONNECTOR_READ_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    CONNECTOR_RETRY_ATTEMPTS: int = Field(default=4, ge=1)
    CONNECTOR_BACKOFF_SECONDS: float = Field(default=1.0, ge=0)
    CONNECTOR_MAX_BACKOFF_SECONDS: float = Field(default=60.0, ge=0)
    CONNECTOR_MAX_RETRY_AFTER_SECONDS: float = Field(default=300.0, ge=0)
    CONNECTOR_BREAKER_THRESHOLD: int = Field(default=5, ge=1)
    CONNECTOR_BREAKER_RESET_SECONDS: float = Field(default=60.0, gt=0)
    CONNECTOR_CA_BUNDLE: str = ""
    CONNECTOR_PAGE_SIZE: int = Field(default=100, ge=1, le=10_000)
    MAX_ATTACHMENT_BYTES: int = Field(default=25 * 1024 * 1024, ge=1)

    @classmethod
    def own_fields(cls) -> list[str]:
        """This connector's own environment variables, without the shared ones above, for the Settings page."""
        return [name for name in cls.model_fields if name not in ConnectorSettings.model_fields]


@dataclass(frozen=True)
class Required:
    """Field metadata (`Annotated[str, Required("hint")]`): the connector cannot run while the variable is empty."""

    hint: str = ""


SettingCheck = Callable[[Any], str | None]
"""What is wrong with a variable's value (without the variable's name), or None when it is fine."""


def setting_problems(settings: ConnectorSettings, model: type[ConnectorSettings], **checks: SettingCheck) -> list[str]:
    """One message per variable of `model`, in declaration order: "NAME: not set (hint)" for an empty required one,
    else what its check in `checks` finds wrong. Values are never quoted unless a check chooses to."""
    problems = []
    for name, info in model.model_fields.items():
        value = getattr(settings, name)
        required = next((marker for marker in info.metadata if isinstance(marker, Required)), None)
        if required is not None and not (value.get_secret_value() if isinstance(value, SecretStr) else value):
            problems.append(f"{name}: not set" + (f" ({required.hint})" if required.hint else ""))
        elif name in checks and (problem := checks[name](value)):
            problems.append(f"{name}: {problem}")
    return problems


def timestamp_check(layout: str, example: str) -> SettingCheck:
    """A check that an optional timestamp variable, when set, reads with the strptime `layout`."""

    def check(value: str) -> str | None:
        try:
            if value:
                datetime.strptime(value, layout)
        except ValueError:
            return f"must look like {example}"
        return None

    return check


def require_configured(label: str, problems: list[str]) -> None:
    """Refuse to build a connector whose settings have problems, naming the vendor and every variable to fix."""
    if problems:
        raise ConfigurationError(f"{label} — " + "; ".join(problems))


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
class OpenBacklog:
    """Records still open at a source whose last change lies before its start window: polls never read them."""

    count: int
    window_start: str
    """The start of the window, as the source writes its timestamps (UTC)."""
    approximate: bool = False
    """The vendor only estimates the count (Jira Cloud's approximate-count)."""
    noun: str = "open record"
    """What is counted, one of them (\"2 open records\")."""
    since: str = "last changed"
    """What happened before the window."""
    """What was counted, in words that go before "before the start window"."""


@runtime_checkable
class BacklogSource(Protocol):
    """A source that can say how much open work lies before its start window and hand it over on request."""

    name: str

    def open_before_window(self, cursor: str | None) -> OpenBacklog:
        """Count the open records last changed before the window that `cursor` (or the first poll) starts."""
        ...

    def open_backlog(self, cursor: str | None) -> Iterator[PolledPage]:
        """Pages of those records as tickets (`additional_info["backlog"]`); the pages carry no cursor, so taking
        the backlog never moves the poll."""
        ...


@runtime_checkable
class WindowedSource(Protocol):
    """A source whose start window an operator can see and move while it runs (the cursor holds it)."""

    name: str

    def window_start(self, cursor: str | None) -> str:
        """The start of the window `cursor` holds (or the first poll would take), UTC, `YYYY-MM-DD HH:MM:SS`."""
        ...

    def moved_window(self, cursor: str | None, start: datetime) -> str:
        """A cursor whose window starts at `start`; what was taken in already is recognised, never taken twice."""
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
    cc: tuple[str, ...] = ()


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


DeliveryKind = Literal["email_delivered", "email_bounced", "email_delayed", "email_complained", "email_unsubscribed"]


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


@dataclass(frozen=True)
class WebResult:
    title: str
    url: str
    snippet: str
    position: int


@runtime_checkable
class WebSearch(Protocol):
    name: str

    def search(self, query: str, *, count: int = 5) -> list[WebResult]:
        """The top results for `query`; an empty list when nothing was found, ConnectorError when the call failed."""
        ...


class RejectedWebhookError(ValueError):
    """A webhook call the receiver will never accept (malformed, forged, stale); the message is the short reason."""


@dataclass(frozen=True)
class VerifiedWebhook:
    """A webhook call whose signature checked out: its one-time token (replays are refused where it is stored) and
    the delivery event it reports, None when the desk does not track that kind."""

    token: str
    signed_at: datetime
    event_id: str
    event_name: str
    delivery: DeliveryEvent | None


@runtime_checkable
class WebhookReceiver(Protocol):
    name: str
    content_type: str
    """The only Content-Type the provider posts; anything else is refused before the body is read."""
    max_age: float
    """Seconds a signature stays fresh: older calls are refused, and tokens are remembered this long."""

    def verify(self, payload: bytes) -> VerifiedWebhook:
        """The call's event if its body and signature are the provider's, else raise RejectedWebhookError."""
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
    quote: str = ""
    """A customer's own words the note reports (a "did not help" comment), kept apart from our text: the connector
    appends them below `text` as a quotation its system shows as written, never as markup, a link, a mention or an
    image. `text` itself is plain text too, and each connector writes it so that it shows as written."""

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
