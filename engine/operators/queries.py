"""Read-only queries the dashboard renders: counts, the queue page, one ticket's story, audit, engine status.

Pages never build SQL themselves; everything they show comes from here, paged and filtered in the database,
so a page costs the same at 100 tickets as at 100,000.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from connectors.redaction import redact_url_credentials
from engine.core.enums import ActionState, TicketStatus
from engine.core.models import (
    Action,
    Analysis,
    Attachment,
    AuditEntry,
    DeskPolicyVersion,
    EmailInteraction,
    Escalation,
    IngestError,
    JobStatus,
    KbChunk,
    KbDocument,
    OutboxMessage,
    Ticket,
    TimelineEvent,
    utcnow,
)

SORTABLE = {
    "newest": (Ticket.id.desc(),),
    "oldest": (Ticket.id.asc(),),
    "recently updated": (Ticket.updated_at.desc(), Ticket.id.desc()),
}
OPEN_STATUSES = tuple(s.value for s in TicketStatus if s not in (TicketStatus.RESOLVED, TicketStatus.CLOSED))


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    search: str = ""
    sort: Literal["newest", "oldest", "recently updated"] = "newest"
    held_by: str = ""
    """Only tickets this operator has taken over ("mine")."""


def status_counts(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
    return {status.value: counts.get(status.value, 0) for status in TicketStatus}


def sources(session: Session) -> list[str]:
    return list(session.scalars(select(Ticket.source).distinct().order_by(Ticket.source)))


def categories(session: Session) -> list[str]:
    """The ticket categories the analysers have used, lower case: what autopilot switches can match."""
    found = session.scalars(select(Ticket.category).where(Ticket.category.is_not(None)).distinct())
    return sorted({category.lower() for category in found if category})


def teams(session: Session) -> list[str]:
    return list(session.scalars(select(Ticket.team).where(Ticket.team.is_not(None)).distinct().order_by(Ticket.team)))


def _queue_conditions(queue: QueueFilter) -> list[Any]:
    conditions: list[Any] = []
    if queue.statuses:
        conditions.append(Ticket.status.in_(queue.statuses))
    if queue.sources:
        conditions.append(Ticket.source.in_(queue.sources))
    if queue.teams:
        conditions.append(Ticket.team.in_(queue.teams))
    if queue.priorities:
        conditions.append(Ticket.priority.in_(queue.priorities))
    if queue.held_by:
        conditions.append(Ticket.taken_over_by == queue.held_by)
    if text := queue.search.strip():
        if text.upper().startswith("TCKT-") and text[5:].isdigit():
            conditions.append(Ticket.id == int(text[5:]))
        else:
            pattern = f"%{text.lower()}%"
            conditions.append(or_(func.lower(Ticket.subject).like(pattern), func.lower(Ticket.email).like(pattern)))
    return conditions


def sla_due(created_at: datetime, priority: str | None, hours_by_priority: dict[str, float]) -> datetime:
    """When the ticket should be resolved, by its priority's target (unknown priorities take the "" target)."""
    hours = hours_by_priority.get((priority or "").lower(), hours_by_priority.get("", 24.0))
    return created_at + timedelta(hours=hours)


def sla_label(
    created_at: datetime, priority: str | None, resolved_at: datetime | None, hours_by_priority: dict[str, float]
) -> str:
    """The SLA clock as a person reads it: time left, overdue by, or met / missed once resolved."""
    due = sla_due(created_at, priority, hours_by_priority)
    if resolved_at is not None:
        return "met" if resolved_at <= due else "missed"
    left = (due - utcnow()).total_seconds() / 3600
    return f"{left:.0f} h left" if left >= 0 else f"overdue {-left:.0f} h"


def _latest_per_ticket(session: Session, column: Any, model: Any, ticket_ids: list[int]) -> dict[int, Any]:
    """The newest row's `column` for each of a page's tickets: one indexed query for the whole page."""
    if not ticket_ids:
        return {}
    newest = (
        select(func.max(model.id)).where(model.ticket_id.in_(ticket_ids)).group_by(model.ticket_id).scalar_subquery()
    )
    return dict(session.execute(select(model.ticket_id, column).where(model.id.in_(newest))).all())


def queue_page(
    session: Session,
    queue: QueueFilter,
    *,
    offset: int = 0,
    limit: int = 50,
    sla_hours: dict[str, float] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the queue and the total matching, filtered, sorted and paged in the database."""
    conditions = _queue_conditions(queue)
    total = session.scalar(select(func.count()).select_from(Ticket).where(*conditions)) or 0
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.status,
            Ticket.source,
            Ticket.priority,
            Ticket.team,
            Ticket.subject,
            Ticket.email,
            Ticket.created_at,
            Ticket.resolved_at,
            Ticket.action_required,
            Ticket.taken_over_by,
            Ticket.waiting_reason,
        )
        .where(*conditions)
        .order_by(*SORTABLE[queue.sort])
        .offset(offset)
        .limit(limit)
    ).all()
    ids = [row.id for row in rows]
    confidence = _latest_per_ticket(session, Analysis.confidence, Analysis, ids)
    score = _latest_per_ticket(session, Escalation.weighted_score, Escalation, ids)
    drafts = open_drafts(session, ids)
    now = utcnow()
    hours = sla_hours or {"": 24.0}
    return [
        {
            "ticket": f"TCKT-{row.id}",
            "id": row.id,
            "status": row.status,
            "source": row.source,
            "priority": row.priority or "",
            "team": row.team or "",
            "subject": row.subject,
            "requester": row.email,
            "age_hours": round((now - row.created_at).total_seconds() / 3600, 1),
            "confidence": confidence.get(row.id),
            "escalation_score": score.get(row.id),
            "sla": sla_label(row.created_at, row.priority, row.resolved_at, hours),
            "draft": drafts.get(row.id),
            "held_by": row.taken_over_by or "",
            "waiting": row.waiting_reason or "",
        }
        for row in rows
    ], total


def open_drafts(session: Session, ticket_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Each ticket's draft awaiting approval as (action id, version): what a bulk approval binds to."""
    if not ticket_ids:
        return {}
    rows = session.execute(
        select(Action.ticket_id, Action.id, Action.version).where(
            Action.ticket_id.in_(ticket_ids), Action.state == ActionState.AWAITING_APPROVAL
        )
    ).all()
    return {row.ticket_id: (row.id, row.version) for row in rows}


@dataclass(frozen=True)
class TicketStory:
    ticket: Ticket
    timeline: list[TimelineEvent]
    messages: list[EmailInteraction]
    outbox: list[OutboxMessage]
    actions: list[Action]
    analyses: list[Analysis]
    attachments: list[Attachment]
    escalations: list[Escalation] = field(default_factory=list)
    claimed: Ticket | None = None
    """The ticket this one's first message claimed to continue although its sender was not on it."""
    claimants: list[Ticket] = field(default_factory=list)
    """Tickets whose senders, not on this ticket, claimed to continue it: each kept as their own."""

    @property
    def open_draft(self) -> Action | None:
        return next((a for a in reversed(self.actions) if a.state == ActionState.AWAITING_APPROVAL), None)

    @property
    def latest_analysis(self) -> Analysis | None:
        return self.analyses[-1] if self.analyses else None

    @property
    def latest_escalation(self) -> Escalation | None:
        return self.escalations[-1] if self.escalations else None


def ticket_story(session: Session, ticket_id: int) -> TicketStory | None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None

    def of(model: Any, order: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.ticket_id == ticket_id).order_by(order)))

    return TicketStory(
        ticket=ticket,
        timeline=of(TimelineEvent, TimelineEvent.id),
        messages=of(EmailInteraction, EmailInteraction.id),
        outbox=of(OutboxMessage, OutboxMessage.id),
        actions=of(Action, Action.id),
        analyses=of(Analysis, Analysis.id),
        attachments=of(Attachment, Attachment.id),
        escalations=of(Escalation, Escalation.id),
        claimed=session.get(Ticket, ticket.related_ticket_id) if ticket.related_ticket_id else None,
        claimants=list(
            session.scalars(select(Ticket).where(Ticket.related_ticket_id == ticket_id).order_by(Ticket.id))
        ),
    )


def recent_events(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            TimelineEvent.timestamp,
            TimelineEvent.ticket_id,
            TimelineEvent.type,
            TimelineEvent.title,
            TimelineEvent.actor,
        )
        .order_by(TimelineEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "when": row.timestamp,
            "ticket": f"TCKT-{row.ticket_id}",
            "event": row.type,
            "what": row.title,
            "by": row.actor,
        }
        for row in rows
    ]


def job_statuses(session: Session) -> list[dict[str, Any]]:
    """Each job's last run for the dashboard; errors stored before URL redaction existed are cleaned here too."""
    rows = session.scalars(select(JobStatus).order_by(JobStatus.job, JobStatus.worker)).all()
    return [
        {
            "job": row.job,
            "worker": row.worker,
            "last run": row.last_finished_at,
            "ok": row.last_ok,
            "runs": row.runs,
            "failures": row.failures,
            "last result": row.last_result,
            "last error": "" if row.last_ok else redact_url_credentials(row.last_error or ""),
        }
        for row in rows
    ]


def attention_counts(session: Session) -> dict[str, int]:
    """What a person must look at: drafts awaiting approval, undelivered mail, unreadable source items."""
    return {
        "drafts awaiting approval": session.scalar(
            select(func.count()).select_from(Action).where(Action.state == ActionState.AWAITING_APPROVAL)
        )
        or 0,
        "messages failed or uncertain": session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state.in_(("failed", "uncertain")))
        )
        or 0,
        "unreadable source items": session.scalar(
            select(func.count()).select_from(IngestError).where(IngestError.resolved.is_(False))
        )
        or 0,
    }


HELD_REASON_FORMS = (
    (re.compile(r"^confidence [\d.]+ below ([\d.]+)$"), r"below confidence \1"),
    (re.compile(r"^autopilot is off for ([^/]+)/.*$"), r"autopilot off for \1"),
    (re.compile(r"^guard: possible social engineering: ([^(;]+).*$"), r"sensitive request: \1"),
    (re.compile(r"^guard: ([^:'(]+).*$"), r"\1"),
    (re.compile(r"^input: .*$"), "input a person should read"),
    (re.compile(r"^analysis incomplete: .*$"), "analysis incomplete"),
)


def held_reason(reason: str) -> str:
    """A draft's hold reason without its particulars, so reasons can be counted ("below confidence 0.75")."""
    for pattern, form in HELD_REASON_FORMS:
        if pattern.match(reason):
            return pattern.sub(form, reason).strip()
    return reason


def held_draft_reasons(session: Session, limit: int = 5) -> list[tuple[str, int]]:
    """Why drafts wait for a person, most frequent first: every reason of every draft counts once."""
    counts: Counter[str] = Counter()
    policies = session.scalars(select(Action.policy).where(Action.state == ActionState.AWAITING_APPROVAL))
    for policy in policies:
        counts.update({held_reason(reason) for reason in (policy or {}).get("reasons", [])})
    return counts.most_common(limit)


def resolved_since(session: Session, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Ticket).where(Ticket.resolved_at >= since)) or 0


@dataclass(frozen=True)
class TodaySummary:
    open: int
    awaiting_approval: int
    escalated: int
    resolved_today: int
    automation_rate: float | None
    """Share of tickets resolved today that no person touched; None when nothing was resolved."""
    first_response_p50_minutes: float | None
    """Median minutes to the first answer for tickets created in the last 7 days."""


def today_summary(session: Session, *, now: datetime | None = None) -> TodaySummary:
    now = now or utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = status_counts(session)
    resolved, automated = session.execute(
        select(func.count(), func.count().filter(Ticket.human_touched_at.is_(None))).where(
            Ticket.resolved_at >= midnight
        )
    ).one()
    pairs = session.execute(
        select(Ticket.created_at, Ticket.first_response_at)
        .where(Ticket.created_at >= now - timedelta(days=7), Ticket.first_response_at.is_not(None))
        .order_by(Ticket.created_at.desc())
        .limit(5000)
    ).all()
    waits = [(first - created).total_seconds() / 60 for created, first in pairs]
    return TodaySummary(
        open=sum(counts[s] for s in OPEN_STATUSES),
        awaiting_approval=counts[TicketStatus.AWAITING_APPROVAL],
        escalated=counts[TicketStatus.ESCALATED],
        resolved_today=resolved,
        automation_rate=(automated / resolved) if resolved else None,
        first_response_p50_minutes=statistics.median(waits) if waits else None,
    )


@dataclass(frozen=True)
class AuditFilter:
    actors: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    search: str = ""
    start: datetime | None = None
    end: datetime | None = None


def _audit_query(audit: AuditFilter, query: Select[Any]) -> Select[Any]:
    if audit.actors:
        query = query.where(AuditEntry.actor.in_(audit.actors))
    if audit.actions:
        query = query.where(AuditEntry.action.in_(audit.actions))
    if audit.start:
        query = query.where(AuditEntry.at >= audit.start)
    if audit.end:
        query = query.where(AuditEntry.at < audit.end)
    if text := audit.search.strip():
        query = query.where(AuditEntry.target_id == text.upper().removeprefix("TCKT-"))
    return query


def audit_page(
    session: Session, audit: AuditFilter, *, offset: int = 0, limit: int = 100
) -> tuple[list[dict[str, Any]], int]:
    """Who did what when, newest first, one page at a time."""
    total = session.scalar(_audit_query(audit, select(func.count()).select_from(AuditEntry))) or 0
    entries = session.scalars(
        _audit_query(audit, select(AuditEntry)).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    ).all()
    return [
        {
            "when": entry.at,
            "who": entry.actor,
            "action": entry.action,
            "target": f"{entry.target_type} {entry.target_id or ''}".strip(),
            "details": dict(entry.details),
        }
        for entry in entries
    ], total


def audit_vocabulary(session: Session) -> tuple[list[str], list[str]]:
    """The actors and action names present, for the audit filters."""
    actors = list(session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)))
    actions = list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
    return actors, actions


def kb_documents(session: Session) -> list[KbDocument]:
    return list(session.scalars(select(KbDocument).order_by(KbDocument.id.desc())))


def kb_chunks(session: Session, document_id: int, limit: int = 50) -> list[KbChunk]:
    return list(
        session.scalars(
            select(KbChunk)
            .where(KbChunk.source_kind == "kb", KbChunk.source_id == document_id)
            .order_by(KbChunk.chunk_index)
            .limit(limit)
        )
    )


def ingest_errors(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(IngestError).where(IngestError.resolved.is_(False)).order_by(IngestError.id.desc()).limit(limit)
    ).all()
    return [
        {"when": row.created_at, "source": row.source, "item": row.external_id or "", "error": row.error}
        for row in rows
    ]


def policy_history(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The newest desk-policy versions: who changed the policy and when."""
    rows = session.scalars(select(DeskPolicyVersion).order_by(DeskPolicyVersion.version.desc()).limit(limit)).all()
    return [{"version": row.version, "changed by": row.changed_by, "when": row.changed_at} for row in rows]
