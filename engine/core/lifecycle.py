"""The ticket lifecycle in one place: which status may follow which, and the event each change writes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from engine.core.enums import TicketStatus as S
from engine.core.models import Ticket, utcnow
from engine.core.timeline import record_event

ALLOWED: dict[S, frozenset[S]] = {
    S.NEW: frozenset(
        {S.ANALYZING, S.AWAITING_APPROVAL, S.AWAITING_CUSTOMER, S.IN_PROGRESS, S.ESCALATED, S.RESOLVED, S.CLOSED}
    ),
    S.ANALYZING: frozenset({S.NEW, S.AWAITING_APPROVAL, S.AWAITING_CUSTOMER, S.IN_PROGRESS, S.ESCALATED, S.RESOLVED}),
    S.AWAITING_APPROVAL: frozenset(
        {S.NEW, S.ANALYZING, S.AWAITING_CUSTOMER, S.IN_PROGRESS, S.ESCALATED, S.RESOLVED, S.CLOSED}
    ),
    S.AWAITING_CUSTOMER: frozenset(
        {S.NEW, S.ANALYZING, S.AWAITING_APPROVAL, S.IN_PROGRESS, S.ESCALATED, S.RESOLVED, S.CLOSED}
    ),
    S.IN_PROGRESS: frozenset(
        {S.NEW, S.ANALYZING, S.AWAITING_APPROVAL, S.AWAITING_CUSTOMER, S.ESCALATED, S.RESOLVED, S.CLOSED}
    ),
    S.ESCALATED: frozenset(
        {S.NEW, S.ANALYZING, S.AWAITING_APPROVAL, S.AWAITING_CUSTOMER, S.IN_PROGRESS, S.RESOLVED, S.CLOSED}
    ),
    S.RESOLVED: frozenset({S.NEW, S.CLOSED}),
    S.CLOSED: frozenset({S.NEW}),
}

REOPENABLE = frozenset({S.AWAITING_APPROVAL, S.AWAITING_CUSTOMER, S.RESOLVED, S.CLOSED})
"""States a customer reply re-opens for analysis. Escalated tickets stay with their people."""


class IllegalTransitionError(ValueError):
    """A status change the lifecycle forbids; nothing was changed."""

    def __init__(self, ticket: Ticket, target: S) -> None:
        super().__init__(f"{ticket.reference}: cannot go from {ticket.status} to {target}")
        self.ticket_id = ticket.id
        self.current = S(ticket.status)
        self.target = target


def transition(
    session: Session, ticket: Ticket, target: S, *, actor: str = "engine", reason: str = "", **data: Any
) -> None:
    """Move `ticket` to `target` and write the timeline event in the same transaction, or raise and change nothing."""
    current = S(ticket.status)
    if target not in ALLOWED[current]:
        raise IllegalTransitionError(ticket, target)
    ticket.status = target
    ticket.updated_at = utcnow()
    if target is S.RESOLVED:
        ticket.resolved_at = ticket.updated_at
    title = f"Status {current} → {target}" + (f": {reason}" if reason else "")
    record_event(
        session, ticket, "status_changed", title, actor=actor, previous=current, status=target, reason=reason, **data
    )
