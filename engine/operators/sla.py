"""SLA targets per priority: the next deadline of each open ticket (first response until someone answered, then
resolution), what breaches soon, and what has breached. Every condition is built in SQL, so the queue filters and
sorts 100,000 tickets in the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, true
from sqlalchemy.orm import Session

from engine.core.db import is_postgres
from engine.core.enums import TicketStatus
from engine.core.models import Ticket, utcnow
from engine.core.settings import Settings

FINISHED = (TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value)


@dataclass(frozen=True)
class SlaTargets:
    """Hours to the first response and to resolution per lower-case priority; "" is the target without one."""

    first_response_hours: Mapping[str, float]
    resolution_hours: Mapping[str, float]
    soon_hours: float
    """How close to its deadline a ticket counts as breaching soon."""

    @classmethod
    def of(cls, settings: Settings) -> SlaTargets:
        return cls(settings.SLA_FIRST_RESPONSE_HOURS, settings.SLA_RESOLUTION_HOURS, settings.SLA_BREACHING_SOON_HOURS)


def _hours(targets: Mapping[str, float]) -> tuple[dict[str, float], float]:
    named = {priority.lower(): float(hours) for priority, hours in targets.items() if priority}
    return named, float(targets.get("", 24.0))


def _priority() -> ColumnElement[str]:
    """The ticket's priority as the targets name it: lower case, "" for none (never NULL, so NOT works)."""
    return func.coalesce(func.lower(Ticket.priority), "")


def _due_before(targets: Mapping[str, float], moment: datetime) -> ColumnElement[bool]:
    """Tickets whose target, counted from creation, ends before `moment`: one range condition per priority."""
    named, default = _hours(targets)
    priority = _priority()
    parts = [
        and_(priority == name, Ticket.created_at < moment - timedelta(hours=hours)) for name, hours in named.items()
    ]
    others = priority.not_in(tuple(named)) if named else true()
    parts.append(and_(others, Ticket.created_at < moment - timedelta(hours=default)))
    return or_(*parts)


def deadline_before(sla: SlaTargets, moment: datetime) -> ColumnElement[bool]:
    """Open tickets whose next deadline (first response while unanswered, else resolution) is before `moment`."""
    return and_(
        Ticket.status.not_in(FINISHED),
        or_(
            and_(Ticket.first_response_at.is_(None), _due_before(sla.first_response_hours, moment)),
            _due_before(sla.resolution_hours, moment),
        ),
    )


def breaching_soon(sla: SlaTargets, *, now: datetime | None = None) -> ColumnElement[bool]:
    """Open tickets past a deadline or within `soon_hours` of one."""
    return deadline_before(sla, (now or utcnow()) + timedelta(hours=sla.soon_hours))


def _epoch_seconds(session: Session, column: Any) -> ColumnElement[float]:
    if is_postgres(session):
        return func.extract("epoch", column)
    return (func.julianday(column) - 2440587.5) * 86400.0


def _target_hours(targets: Mapping[str, float]) -> ColumnElement[float]:
    named, default = _hours(targets)
    if not named:
        return literal(default)
    return case(named, value=_priority(), else_=default)


def time_left_order(session: Session, sla: SlaTargets) -> list[Any]:
    """ORDER BY for "time left": open tickets by their next deadline, soonest (or most overdue) first; finished
    tickets after them."""
    hours = case(
        (Ticket.first_response_at.is_(None), _target_hours(sla.first_response_hours)),
        else_=_target_hours(sla.resolution_hours),
    )
    deadline = _epoch_seconds(session, Ticket.created_at) + hours * 3600.0
    return [case((Ticket.status.in_(FINISHED), 1), else_=0), deadline, Ticket.id]


@dataclass(frozen=True)
class Breaches:
    first_response: int
    """Open tickets nobody has answered past their first-response target."""
    resolution: int
    """Open tickets past their resolution target."""
    soon: int
    """Open tickets within the warning window of a deadline, not yet past it."""


def sla_breaches(session: Session, sla: SlaTargets, *, now: datetime | None = None) -> Breaches:
    """The counts Home shows: what has breached and what is about to."""
    now = now or utcnow()
    open_ = Ticket.status.not_in(FINISHED)
    first = and_(open_, Ticket.first_response_at.is_(None), _due_before(sla.first_response_hours, now))
    resolution = and_(open_, _due_before(sla.resolution_hours, now))
    soon = and_(breaching_soon(sla, now=now), ~deadline_before(sla, now))
    counts = session.execute(
        select(func.count().filter(first), func.count().filter(resolution), func.count().filter(soon)).select_from(
            Ticket
        )
    ).one()
    return Breaches(*(int(value) for value in counts))
