"""Read-only queries the dashboard renders: counts, the queue page, one ticket's story, engine status.

Pages never build SQL themselves; everything they show comes from here, paged on the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine.enums import ActionState, TicketStatus
from engine.models import (
    Action,
    Analysis,
    Attachment,
    EmailInteraction,
    IngestError,
    JobStatus,
    OutboxMessage,
    Ticket,
    TimelineEvent,
    utcnow,
)

SORTABLE = {"newest": Ticket.id.desc(), "oldest": Ticket.id.asc(), "updated": Ticket.updated_at.desc()}


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    search: str = ""
    sort: Literal["newest", "oldest", "updated"] = "newest"


def status_counts(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
    return {status.value: counts.get(status.value, 0) for status in TicketStatus}


def sources(session: Session) -> list[str]:
    return list(session.scalars(select(Ticket.source).distinct().order_by(Ticket.source)))


def queue_page(
    session: Session, queue: QueueFilter, *, offset: int = 0, limit: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """One page of the queue and the total matching, filtered and sorted in the database."""
    conditions = []
    if queue.statuses:
        conditions.append(Ticket.status.in_(queue.statuses))
    if queue.sources:
        conditions.append(Ticket.source.in_(queue.sources))
    if text := queue.search.strip():
        if text.upper().startswith("TCKT-") and text[5:].isdigit():
            conditions.append(Ticket.id == int(text[5:]))
        else:
            pattern = f"%{text.lower()}%"
            conditions.append(or_(func.lower(Ticket.subject).like(pattern), func.lower(Ticket.email).like(pattern)))
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
            Ticket.action_required,
            Ticket.taken_over_by,
        )
        .where(*conditions)
        .order_by(SORTABLE[queue.sort])
        .offset(offset)
        .limit(limit)
    ).all()
    now = utcnow()
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
            "needs_attention": bool(row.action_required),
            "held_by": row.taken_over_by or "",
        }
        for row in rows
    ], total


@dataclass(frozen=True)
class TicketStory:
    ticket: Ticket
    timeline: list[TimelineEvent]
    messages: list[EmailInteraction]
    outbox: list[OutboxMessage]
    actions: list[Action]
    analyses: list[Analysis]
    attachments: list[Attachment]


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
            "last error": "" if row.last_ok else (row.last_error or ""),
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


def resolved_since(session: Session, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Ticket).where(Ticket.resolved_at >= since)) or 0
