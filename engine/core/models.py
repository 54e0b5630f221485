"""Every table of the desk, as typed SQLAlchemy 2 models. Alembic migrations own the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from engine.core.enums import OutboxState, OutcomeState, TicketStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way out, whatever the database keeps (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use engine.core.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSONType, list[Any]: JSONType}


class Ticket(Base):
    """A support request: the seed's `new_tickets` fields plus where it came from and who holds it."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_tickets_source_external_id"),
        Index("ix_tickets_status_created", "status", "created_at"),
        Index("ix_tickets_updated_at", "updated_at"),
        Index("ix_tickets_created_source", "created_at", "source"),
        # the requester's history finds their other tickets by address, case-insensitively
        Index("ix_tickets_email_lower", text("lower(email)")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(50))
    external_id: Mapped[str] = mapped_column(String(255))
    external_url: Mapped[str | None] = mapped_column(String(1000))
    email: Mapped[str] = mapped_column(String(320), index=True)
    requester_name: Mapped[str | None] = mapped_column(String(255))
    requester_name_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    """The name comes from the source's user directory (connectors/base.py `requester_name_from_directory`)."""
    subject: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default=TicketStatus.NEW)
    priority: Mapped[str | None] = mapped_column(String(50))
    category: Mapped[str | None] = mapped_column(String(100))
    team: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(Text)
    action_required: Mapped[bool] = mapped_column(Boolean, default=False)
    additional_info: Mapped[dict[str, Any] | None] = mapped_column()
    escalation_criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)
    follow_up_count: Mapped[int] = mapped_column(Integer, default=0)
    thread_key: Mapped[str | None] = mapped_column(String(500), index=True)
    automatic_reason: Mapped[str | None] = mapped_column(String(200))
    taken_over_by: Mapped[str | None] = mapped_column(String(120))
    assignee: Mapped[str | None] = mapped_column(String(120), index=True)
    """The operator (username) the ticket is assigned to; a take-over assigns it to whoever took it."""
    pending_since: Mapped[datetime | None] = mapped_column(index=True)
    waiting_reason: Mapped[str | None] = mapped_column(String(300))
    """Why the queued ticket waits before its analysis (engine/readiness.py), in people's words; None when not."""
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claim_expires: Mapped[datetime | None] = mapped_column()
    source_updated_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    first_response_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    human_touched_at: Mapped[datetime | None] = mapped_column()
    """When an operator first acted on the ticket; null means fully automated (the automation rate)."""
    related_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    """The ticket a message claimed to continue when its sender was not on that ticket (engine/intake/ingest.py)."""
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    """The ticket this duplicate was merged into (engine/operators/merging.py); it is closed and points there."""

    timeline: Mapped[list[TimelineEvent]] = relationship(
        back_populates="ticket", order_by="TimelineEvent.id", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def reference(self) -> str:
        """The customer-facing id: it goes in every subject so replies thread back."""
        return f"TCKT-{self.id}"

    @property
    def directory_name(self) -> str | None:
        """The requester's name when a trusted directory vouches for it; a sender's display name never is."""
        return self.requester_name if self.requester_name_verified else None


class TimelineEvent(Base):
    """One thing that happened to a ticket, for the timeline and the audit trail."""

    __tablename__ = "timelines"
    __table_args__ = (Index("ix_timelines_ticket_timestamp", "ticket_id", "timestamp"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    actor: Mapped[str] = mapped_column(String(120), default="engine")
    timestamp: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="timeline")


class EmailInteraction(Base):
    """A message in a ticket's conversation, inbound or outbound."""

    __tablename__ = "email_interactions"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_email_interactions_source_external_id"),
        Index("ix_email_ticket_type", "ticket_id", "email_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(10))
    email_type: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(50))
    external_id: Mapped[str | None] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(500))
    references: Mapped[str | None] = mapped_column(Text)
    from_address: Mapped[str] = mapped_column(String(320))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    automatic_reason: Mapped[str | None] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Blob(Base):
    """Attachment bytes, stored once per content hash however many messages carry them."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    email_interaction_id: Mapped[int | None] = mapped_column(ForeignKey("email_interactions.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    status: Mapped[str] = mapped_column(String(30), default="stored")
    error: Mapped[str | None] = mapped_column(Text)
    extracted_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Analysis(Base):
    """What the analyser concluded about a ticket at one point in its life."""

    __tablename__ = "analyses"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    analyser: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(30))
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    summary: Mapped[str] = mapped_column(Text, default="")
    resolution_steps: Mapped[list[Any]] = mapped_column(default=list)
    information_gaps: Mapped[list[Any]] = mapped_column(default=list)
    follow_up_questions: Mapped[list[Any]] = mapped_column(default=list)
    evidence: Mapped[list[Any]] = mapped_column(default=list)
    guards: Mapped[list[Any]] = mapped_column(default=list)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Escalation(Base):
    """The escalation criteria, each weighted component and the verdict, for the score breakdown."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    analysis_id: Mapped[int | None] = mapped_column(ForeignKey("analyses.id", ondelete="SET NULL"))
    criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)
    components: Mapped[dict[str, Any]] = mapped_column(default=dict)
    weighted_score: Mapped[float] = mapped_column(Float, default=0.0)
    threshold: Mapped[float] = mapped_column(Float, default=70.0)
    escalate: Mapped[bool] = mapped_column(Boolean, default=False)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    team: Mapped[str | None] = mapped_column(String(100))
    route: Mapped[dict[str, Any] | None] = mapped_column()
    """The learned routing's suggestion (engine/analysers/routing.py): team or none, its probability, why."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Action(Base):
    """A decision about a ticket, automated or human. `version` binds an approval to the draft seen."""

    __tablename__ = "actions"
    __table_args__ = (
        Index("ix_actions_state_created", "state", "created_at"),
        Index("ix_actions_decided_at", "decided_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    analysis_id: Mapped[int | None] = mapped_column(ForeignKey("analyses.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(30))
    state: Mapped[str] = mapped_column(String(30))
    version: Mapped[int] = mapped_column(Integer, default=1)
    subject: Mapped[str | None] = mapped_column(String(500))
    body: Mapped[str | None] = mapped_column(Text)
    team: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(120), default="engine")
    decided_by: Mapped[str | None] = mapped_column(String(120))
    decided_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OutboxMessage(Base):
    """An outgoing e-mail, written in the same transaction as its cause and delivered by a job."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next_attempt", "state", "next_attempt_at"),
        # the mail-loop guard counts messages per recipient per hour, case-insensitively (engine/trust/mailguard.py)
        Index("ix_outbox_recipient_created", text("lower(to_address)"), "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("actions.id", ondelete="SET NULL"))
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    automated: Mapped[bool] = mapped_column(Boolean, default=True)
    to_address: Mapped[str] = mapped_column(String(320))
    from_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cc_addresses: Mapped[list[Any]] = mapped_column(default=list)
    """Copies a person added to their reply; automated messages never carry any."""
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    """Files a person attached to their reply: filename, content type, size and the sha256 of its `Blob`."""
    message_id: Mapped[str] = mapped_column(String(500), unique=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(500))
    state: Mapped[str] = mapped_column(String(20), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claim_expires: Mapped[datetime | None] = mapped_column()
    transport: Mapped[str | None] = mapped_column(String(30))
    transport_message_id: Mapped[str | None] = mapped_column(String(500))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class KbDocument(Base):
    """A file in the knowledge base and how far its indexing got."""

    __tablename__ = "kb_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str | None] = mapped_column(String(500))
    team: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    quarantined_count: Mapped[int] = mapped_column(Integer, default=0)
    """Chunks held back from the analysers until a lead approves them."""
    uploaded_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column()


class KbChunk(Base):
    """A retrievable piece of a KB document or a resolved ticket, with where it came from."""

    __tablename__ = "kb_chunks"
    __table_args__ = (Index("ix_kb_chunks_source", "source_kind", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source_kind: Mapped[str] = mapped_column(String(20))
    source_id: Mapped[int] = mapped_column(Integer)
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    location: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    team: Mapped[str | None] = mapped_column(String(100))
    source_date: Mapped[datetime | None] = mapped_column()
    quarantine: Mapped[str | None] = mapped_column(Text)
    """Why the hygiene scan held this chunk back (None when clean); the analysers never see it unless approved."""
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Operator(Base):
    """A person who signs in to the dashboard."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_login_at: Mapped[datetime | None] = mapped_column()
    team: Mapped[str | None] = mapped_column(String(100))
    """The team whose tickets this person works ("my team's" view, notifications); none: no team."""
    notifications_seen_at: Mapped[datetime | None] = mapped_column()
    """Until when this person has read their notifications (engine/operators/notifications.py)."""
    sessions_ended_at: Mapped[datetime | None] = mapped_column()
    """When all of this person's sessions were last ended (everywhere, password, deactivation, role): a single
    sign-on identity issued before it starts no new session."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OperatorSession(Base):
    """One sign-in of an operator, shared by every browser tab and every copy of its cookie.

    The cookie holds a random token; only its SHA-256 is kept here, so a copy of this table signs nobody in.
    Ending the row (sign-out, password change, deactivation, role change, "sign out everywhere") ends every copy
    at once. It lives until it is idle for DASHBOARD_SESSION_IDLE_MINUTES or reaches `expires_at`, which is never
    moved.
    """

    __tablename__ = "operator_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    """SHA-256 of the cookie's token; empty until the browser has fetched its cookie."""
    handoff_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    """SHA-256 of the one-time code the page exchanges for the HttpOnly cookie; cleared when used."""
    handoff_expires_at: Mapped[datetime | None] = mapped_column()
    method: Mapped[str] = mapped_column(String(20))
    client_hint: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


class SignInThrottle(Base):
    """Failed sign-ins counted per name typed (whether or not such an account exists), per client address and per
    trusted browser; the key is an HMAC, so neither a name nor an address is kept in clear."""

    __tablename__ = "sign_in_throttles"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(index=True)


class AuditEntry(Base):
    """Who did what, when, to which thing: every human decision and configuration change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(120), index=True)
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DeskPolicyVersion(Base):
    """One saved version of the desk policy (engine/core/desk_policy.py); the newest one is in force."""

    __tablename__ = "desk_policy"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    policy: Mapped[dict[str, Any]] = mapped_column()
    changed_by: Mapped[str] = mapped_column(String(120))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceCursor(Base):
    """Where a poller stopped, so a restart resumes instead of starting over."""

    __tablename__ = "source_cursors"

    source: Mapped[str] = mapped_column(String(50), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class IngestError(Base):
    """An item a source delivered that could not become a ticket, kept whole so nothing is lost."""

    __tablename__ = "ingest_errors"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(50), index=True)
    external_id: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class JobStatus(Base):
    """The last run of each engine job in each worker process, for the status panel and health."""

    __tablename__ = "job_status"

    worker: Mapped[str] = mapped_column(String(120), primary_key=True)
    job: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_started_at: Mapped[datetime | None] = mapped_column()
    last_finished_at: Mapped[datetime | None] = mapped_column()
    last_ok: Mapped[bool] = mapped_column(Boolean, default=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    runs: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class WebhookToken(Base):
    """A Mailgun webhook's signature token, written in the transaction that stores its event: a replay is refused,
    while a delivery the database refused (500) leaves no token behind and is accepted when Mailgun retries it."""

    __tablename__ = "webhook_tokens"

    token: Mapped[str] = mapped_column(String(200), primary_key=True)
    signed_at: Mapped[datetime] = mapped_column(index=True)


class RoutingModel(Base):
    """A routing model learned from the desk's resolved tickets (engine/analysers/routing.py); the newest row is
    served."""

    __tablename__ = "routing_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    history: Mapped[int] = mapped_column(Integer)
    """How many resolved tickets it learned from."""
    first_line: Mapped[str] = mapped_column(String(100))
    threshold: Mapped[float | None] = mapped_column(Float)
    """The probability from which it routes; null: it never reached the target precision and never routes."""
    teams: Mapped[list[Any]] = mapped_column(default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ResolutionOutcome(Base):
    """What became of one resolution e-mail: the customer's answer, CSAT, and the state time gives it.

    `answered_at` is set once, by a conditional update in the transaction that records the answer: that makes
    each pair of yes/no links single-use across processes.
    """

    __tablename__ = "resolution_outcomes"
    __table_args__ = (Index("ix_resolution_outcomes_state_resolved", "state", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("actions.id", ondelete="SET NULL"))
    automated: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(50))
    category: Mapped[str | None] = mapped_column(String(100))
    confidence: Mapped[float | None] = mapped_column(Float)
    """The analysis confidence behind the resolution, for calibration against what the customer said."""
    state: Mapped[str] = mapped_column(String(20), default=OutcomeState.PENDING)
    resolved_at: Mapped[datetime] = mapped_column(default=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    answer: Mapped[str | None] = mapped_column(String(10))
    """"yes" or "no", from a link or a classified reply."""
    answered_via: Mapped[str | None] = mapped_column(String(10))
    answered_at: Mapped[datetime | None] = mapped_column()
    csat: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)


class LearnedAnswer(Base):
    """An answer a person approved, edited and sent, or wrote (or an automatic one its requester confirmed), kept
    so the desk may give it again to the same question asked in other words (engine/outcomes/learned.py).

    `answer` is operator text only, without greeting, signature or lines quoting the customer. When it still
    carries particulars of the original customer (`particulars`: e-mail or postal addresses, ticket numbers,
    account ids, phone numbers, the requester's name), it is reused only after a lead marks it general.
    """

    __tablename__ = "learned_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("actions.id", ondelete="SET NULL"))
    origin: Mapped[str] = mapped_column(String(20))
    """approved, edited, wrote or confirmed: how a person (or the requester) stood behind it."""
    answer: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    particulars: Mapped[list[Any]] = mapped_column(default=list)
    general_by: Mapped[str | None] = mapped_column(String(100))
    general_at: Mapped[datetime | None] = mapped_column()
    published_document_id: Mapped[int | None] = mapped_column(Integer)
    """The knowledge-base article a lead published from it, once."""
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LearnedQuestion(Base):
    """One question a learned answer answered: the ticket's focus (what it asks) and its embedding, filled by the
    analyser (engine/analysers/learned_match.py). Customer text: matched against, shown to operators, never sent."""

    __tablename__ = "learned_questions"
    __table_args__ = (UniqueConstraint("learned_answer_id", "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    learned_answer_id: Mapped[int] = mapped_column(ForeignKey("learned_answers.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    question: Mapped[str | None] = mapped_column(Text)
    vector: Mapped[list[Any] | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnswerRecord(Base):
    """The track record of one answer (a learned answer, `learned:<id>`, or a knowledge-base section,
    `kb:<document>:<location>`) in one category: what people and customers did with it."""

    __tablename__ = "answer_records"
    __table_args__ = (UniqueConstraint("subject", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(300), index=True)
    category: Mapped[str] = mapped_column(String(100), default="")
    approved: Mapped[int] = mapped_column(Integer, default=0)
    edited: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    confirmed: Mapped[int] = mapped_column(Integer, default=0)
    assumed: Mapped[int] = mapped_column(Integer, default=0)
    reopened: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnswerReview(Base):
    """A lead looked at an answer that customers re-opened: re-opens up to `reopened_at_review` no longer hold it."""

    __tablename__ = "answer_reviews"

    subject: Mapped[str] = mapped_column(String(300), primary_key=True)
    reviewed_by: Mapped[str] = mapped_column(String(100))
    reviewed_at: Mapped[datetime] = mapped_column(default=utcnow)
    reopened_at_review: Mapped[int] = mapped_column(Integer, default=0)


class TicketNote(Base):
    """An internal note: operators read it, customers never do (no message is built from it); its timeline event
    writes it back to the source as an internal comment (engine/delivery/sync.py)."""

    __tablename__ = "ticket_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(120))
    body: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list[Any]] = mapped_column(default=list)
    """Usernames of the operators the note @mentions."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CannedReply(Base):
    """A reply text leads keep for common cases, with placeholders filled in per ticket (engine/operators/macros.py)."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    body: Mapped[str] = mapped_column(Text)
    team: Mapped[str | None] = mapped_column(String(100))
    source_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    """The resolved ticket whose approved answer seeded it, if any."""
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TicketPresence(Base):
    """Who has a ticket open right now: each open ticket page renews its row; an old row means they left."""

    __tablename__ = "ticket_presence"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(String(120), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class TicketTag(Base):
    """A label operators put on a ticket, lower case."""

    __tablename__ = "ticket_tags"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)


class TicketLink(Base):
    """Two tickets an operator said belong together (the lower id first), both kept open on their own."""

    __tablename__ = "ticket_links"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    linked_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True, index=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
