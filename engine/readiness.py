"""Whether the knowledge base is ready for tickets, and why a ticket waits for it.

A fresh desk's first tickets used to be analysed before its articles were indexed and calibrated: escalated for
"no evidence found" and counted as knowledge gaps. They now wait in the queue, with the reason on the ticket and in
the queue, while
1. a configured connector's articles are still being added (its `seed_knowledge` run has not finished),
2. documents are waiting to be read and indexed, or
3. the knowledge base holds passages but has never been calibrated (its first `calibrate` run is pending or running).
A ticket waits at most KB_READY_WAIT_SECONDS from when it was queued, then is analysed with what there is. A desk with
no articles and none on the way never waits, nor does one recalibrating after a change: the previous calibration
serves meanwhile.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors import registry
from engine.core.models import KbDocument, SourceCursor, Ticket
from engine.core.settings import Settings
from kb.calibration import stored_calibration
from kb.ledger import knowledge_base_empty


def seed_marker(connector: str) -> str:
    """The `source_cursors` row that records a connector's articles were added (engine/jobs.py's seed_knowledge)."""
    return f"{connector}:knowledge"


def knowledge_wait_reason(session: Session, settings: Settings) -> str | None:
    """Why tickets should wait for the knowledge base now, in people's words; None when it is ready."""
    for entry in registry.connectors():
        configured = entry.knowledge is not None and entry.configured(settings)
        if configured and session.get(SourceCursor, seed_marker(entry.name)) is None:
            return "Waiting for the knowledge base: its articles are being added"
    pending = session.scalar(select(func.count(KbDocument.id)).where(KbDocument.status == "pending")) or 0
    if pending:
        return f"Waiting for the knowledge base: {pending} article{'s' if pending > 1 else ''} still being read"
    if not knowledge_base_empty(session) and stored_calibration(session) is None:
        return "Waiting for the knowledge base: its first self-check (calibration) is running"
    return None


def waits(ticket: Ticket, reason: str | None, settings: Settings, now: datetime) -> bool:
    """Whether this queued ticket waits for the knowledge base: while there is a reason, up to the bound."""
    if reason is None or ticket.pending_since is None:
        return False
    return now - ticket.pending_since < timedelta(seconds=settings.KB_READY_WAIT_SECONDS)
