"""Whether the knowledge base is ready for tickets, and why a ticket waits for it.

A fresh desk's first tickets used to be analysed before its articles were indexed and calibrated: escalated for
"no evidence found" and counted as knowledge gaps. They now wait in the queue, with the reason on the ticket and in
the queue, while
1. a configured connector's articles are still being added (its `seed_knowledge` run has not finished),
2. documents are waiting to be read and indexed, or
3. the knowledge base holds passages but has never been calibrated (its first `calibrate` run is pending or running).
A ticket waits at most KB_READY_WAIT_SECONDS from when it was queued, then is analysed with what there is. A desk with
no articles and none on the way never waits, nor does one recalibrating after a change: the previous calibration
serves meanwhile. Documents that failed are never waited for, and pending ones only while reading makes progress:
when no document was added or finished for `stall_seconds`, the pending ones are stuck (an indexer that keeps
dying on one file) and tickets go on without them, with a warning in the log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from connectors import registry
from engine.core.models import KbDocument, SourceCursor, Ticket, utcnow
from engine.core.settings import Settings
from kb.calibration import stored_calibration
from kb.ledger import knowledge_base_empty

log = logging.getLogger(__name__)
READ_GRACE_SECONDS = 120.0
"""Beyond the extraction bound, what embedding and writing one large file may take on a busy machine."""
_warned_stalls: set[datetime] = set()


def seed_marker(connector: str) -> str:
    """The `source_cursors` row that records a connector's articles were added (engine/jobs.py's seed_knowledge)."""
    return f"{connector}:knowledge"


def stall_seconds(settings: Settings) -> float:
    """How long reading may go without progress before the pending documents count as stuck: two runs of the
    indexing job, one file's extraction bound and the grace for embedding it."""
    return 2 * settings.KB_INDEX_INTERVAL_SECONDS + settings.KB_EXTRACT_TIMEOUT_SECONDS + READ_GRACE_SECONDS


def pending_documents(session: Session, settings: Settings, now: datetime) -> int:
    """Documents still to be read while reading makes progress (a document added or finished within
    `stall_seconds`); 0 when reading is stuck, so tickets do not wait the whole bound for it."""
    pending = session.scalar(select(func.count(KbDocument.id)).where(KbDocument.status == "pending")) or 0
    if not pending:
        return 0
    progress = session.scalar(select(func.max(KbDocument.updated_at)))
    if progress is not None and now - progress > timedelta(seconds=stall_seconds(settings)):
        if progress not in _warned_stalls:  # once per stall, not at every run of the pipeline
            _warned_stalls.add(progress)
            log.warning(
                "%d knowledge-base document(s) pending with no progress for %.0f s: tickets no longer wait for them "
                "(see the Knowledge Base page; re-index or delete them)",
                pending,
                (now - progress).total_seconds(),
            )
        return 0
    return pending


def knowledge_wait_reason(session: Session, settings: Settings, now: datetime | None = None) -> str | None:
    """Why tickets should wait for the knowledge base now, in people's words; None when it is ready."""
    for entry in registry.connectors():
        configured = entry.knowledge is not None and entry.configured(settings)
        if configured and session.get(SourceCursor, seed_marker(entry.name)) is None:
            return "Waiting for the knowledge base: its articles are being added"
    pending = pending_documents(session, settings, now or utcnow())
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


def not_waiting(settings: Settings, now: datetime) -> ColumnElement[bool]:
    """Tickets worth a claim while the knowledge base is not ready: not yet told to wait, or queued for longer than
    the bound (`waits`). One already waiting (acknowledged, its reason shown and kept current by `refresh_waiting`)
    would only be given back, and a backlog of them larger than a batch would keep the newest from ever being claimed
    and acknowledged."""
    return or_(
        Ticket.waiting_reason.is_(None),
        Ticket.pending_since <= now - timedelta(seconds=settings.KB_READY_WAIT_SECONDS),
    )


def refresh_waiting(session: Session, reason: str) -> None:
    """Every queued ticket already waiting shows the current reason ("2 articles still being read" after "3"), in one
    statement: none is claimed again only to be told a new count, which would keep a changing reason's backlog in
    front of the newest tickets. The timeline said when each began to wait; the queue shows the reason as it is."""
    session.execute(
        update(Ticket)
        .where(Ticket.pending_since.is_not(None), Ticket.waiting_reason.is_not(None), Ticket.waiting_reason != reason)
        .values(waiting_reason=reason)
    )
