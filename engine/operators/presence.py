"""Who has a ticket open: each open ticket page renews its row every refresh (a heartbeat); a row not renewed
within a few refreshes means that person left. Seeing someone else there warns before two people answer twice.

Looking at a ticket decides nothing, so presence is neither timelined nor audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.core.db import is_postgres
from engine.core.models import TicketPresence, utcnow
from engine.operators.permissions import Actor

FORGOTTEN_AFTER = timedelta(hours=1)
"""Rows older than this are deleted on the next heartbeat of anyone: the table holds only recent visits."""


def mark_viewing(session: Session, actor: Actor, ticket_id: int, *, now: datetime | None = None) -> None:
    """The heartbeat: `actor` has the ticket open now (one row per person and ticket, however many tabs)."""
    now = now or utcnow()
    insert = postgres_insert if is_postgres(session) else sqlite_insert
    statement = insert(TicketPresence).values(ticket_id=ticket_id, username=actor.username, seen_at=now)
    session.execute(statement.on_conflict_do_update(index_elements=["ticket_id", "username"], set_={"seen_at": now}))
    session.execute(delete(TicketPresence).where(TicketPresence.seen_at < now - FORGOTTEN_AFTER))


def others_viewing(
    session: Session, ticket_id: int, username: str, *, within: timedelta, now: datetime | None = None
) -> list[tuple[str, datetime]]:
    """Everyone else whose heartbeat on the ticket is younger than `within`, most recent first."""
    since = (now or utcnow()) - within
    rows = session.execute(
        select(TicketPresence.username, TicketPresence.seen_at)
        .where(
            TicketPresence.ticket_id == ticket_id,
            TicketPresence.username != username,
            TicketPresence.seen_at >= since,
        )
        .order_by(TicketPresence.seen_at.desc())
    ).all()
    return [(row.username, row.seen_at) for row in rows]
