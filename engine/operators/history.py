"""The requester's history beside the conversation: their other tickets and how each ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.models import ResolutionOutcome, Ticket


@dataclass(frozen=True)
class PastTicket:
    id: int
    subject: str
    status: str
    created_at: datetime
    resolved_at: datetime | None
    outcome: str | None
    """What became of its resolution (engine/outcomes): confirmed, reopened, …; None without one."""
    csat: int | None


@dataclass(frozen=True)
class RequesterHistory:
    total: int
    """All their other tickets; `tickets` holds the newest of them."""
    tickets: list[PastTicket]


def requester_history(session: Session, ticket: Ticket, *, limit: int = 10) -> RequesterHistory:
    """The other tickets from the same address (any case), newest first, each with its latest resolution outcome."""
    same_requester = (func.lower(Ticket.email) == ticket.email.lower(), Ticket.id != ticket.id)
    total = session.scalar(select(func.count()).select_from(Ticket).where(*same_requester)) or 0
    rows = session.execute(
        select(Ticket.id, Ticket.subject, Ticket.status, Ticket.created_at, Ticket.resolved_at)
        .where(*same_requester)
        .order_by(Ticket.id.desc())
        .limit(limit)
    ).all()
    ids = [row.id for row in rows]
    latest = (
        select(func.max(ResolutionOutcome.id))
        .where(ResolutionOutcome.ticket_id.in_(ids))
        .group_by(ResolutionOutcome.ticket_id)
    ).scalar_subquery()
    outcomes = {
        row.ticket_id: (row.state, row.csat)
        for row in session.execute(
            select(ResolutionOutcome.ticket_id, ResolutionOutcome.state, ResolutionOutcome.csat).where(
                ResolutionOutcome.id.in_(latest)
            )
        )
    }
    return RequesterHistory(
        total=total,
        tickets=[
            PastTicket(
                id=row.id,
                subject=row.subject,
                status=row.status,
                created_at=row.created_at,
                resolved_at=row.resolved_at,
                outcome=outcomes.get(row.id, (None, None))[0],
                csat=outcomes.get(row.id, (None, None))[1],
            )
            for row in rows
        ],
    )
