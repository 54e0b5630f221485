"""Every event on a ticket goes through here, in the caller's transaction, so the UI and audit see it all."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from engine.core.models import AuditEntry, Ticket, TimelineEvent, utcnow

log = logging.getLogger(__name__)


def record_event(
    session: Session, ticket: Ticket, type_: str, title: str, *, actor: str = "engine", **data: Any
) -> TimelineEvent:
    """Add one timeline event to `ticket` and log it with the ticket id."""
    if ticket.id is None:
        session.flush()
    event = TimelineEvent(
        ticket_id=ticket.id, type=type_, title=title[:300], actor=actor, timestamp=utcnow(), data=data
    )
    session.add(event)
    log.info(title, extra={"ticket": ticket.reference, "event": type_, "actor": actor})
    return event


def record_audit(
    session: Session, actor: str, action: str, target_type: str, target_id: object, **details: Any
) -> AuditEntry:
    """Add one audit entry for a human decision or a configuration change."""
    entry = AuditEntry(actor=actor, action=action, target_type=target_type, target_id=str(target_id), details=details)
    session.add(entry)
    return entry
