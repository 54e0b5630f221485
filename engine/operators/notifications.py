"""In-app notifications, read from what already happened: customer replies on tickets assigned to the operator or
held by their team, and internal notes that @mention them. Nothing is written per notification; each operator
keeps only the moment up to which they have read (`Operator.notifications_seen_at`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import TextClause, or_, select, text
from sqlalchemy.orm import Session

from engine.core.db import is_postgres
from engine.core.models import Operator, Ticket, TicketNote, TimelineEvent, utcnow
from engine.operators.permissions import Actor

REPLY_EVENTS = ("reply_received",)
WINDOW = timedelta(days=7)
"""How far back notifications reach: older ones are in the tickets' timelines."""


@dataclass(frozen=True)
class Notification:
    ticket_id: int
    kind: Literal["reply", "mention"]
    what: str
    """What happened, in our words (never the customer's: it is shown as markdown)."""
    at: datetime
    unread: bool


def _mentions(session: Session, username: str) -> TextClause:
    """A condition: the note's mention list holds `username` (a JSON array in both databases)."""
    if is_postgres(session):
        return text("ticket_notes.mentions @> jsonb_build_array(CAST(:mentioned AS text))").bindparams(
            mentioned=username
        )
    return text(
        "EXISTS (SELECT 1 FROM json_each(ticket_notes.mentions) WHERE json_each.value = :mentioned)"
    ).bindparams(mentioned=username)


def notifications(
    session: Session, username: str, *, limit: int = 30, now: datetime | None = None
) -> list[Notification]:
    """The operator's notifications of the last week, newest first."""
    operator = session.scalar(select(Operator).where(Operator.username == username))
    if operator is None:
        return []
    since = (now or utcnow()) - WINDOW
    seen = operator.notifications_seen_at
    mine = [Ticket.assignee == username]
    if operator.team:
        mine.append(Ticket.team == operator.team)
    replies = session.execute(
        select(TimelineEvent.ticket_id, TimelineEvent.timestamp)
        .join(Ticket, Ticket.id == TimelineEvent.ticket_id)
        .where(TimelineEvent.type.in_(REPLY_EVENTS), TimelineEvent.timestamp >= since, or_(*mine))
        .order_by(TimelineEvent.id.desc())
        .limit(limit)
    ).all()
    mentions = session.execute(
        select(TicketNote.ticket_id, TicketNote.created_at, TicketNote.author)
        .where(TicketNote.created_at >= since, TicketNote.author != username, _mentions(session, username))
        .order_by(TicketNote.id.desc())
        .limit(limit)
    ).all()
    found = [Notification(row.ticket_id, "reply", "the customer replied", row.timestamp, False) for row in replies] + [
        Notification(row.ticket_id, "mention", f"{row.author} mentioned you in a note", row.created_at, False)
        for row in mentions
    ]
    found.sort(key=lambda item: item.at, reverse=True)
    return [
        Notification(item.ticket_id, item.kind, item.what, item.at, seen is None or item.at > seen)
        for item in found[:limit]
    ]


def mark_notifications_read(session: Session, actor: Actor) -> None:
    """Everything up to now is read. Reading is no decision about a ticket, so it is not audited."""
    operator = session.scalar(select(Operator).where(Operator.username == actor.username))
    if operator is None:
        raise LookupError(f"there is no operator called {actor.username}")
    operator.notifications_seen_at = utcnow()
