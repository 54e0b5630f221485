"""Internal notes: what operators tell each other about a ticket, with @mentions.

A note is operator text for operators. No customer message is built from it (the outbox takes actions' and
templates' text, never a note's) and the analysers never read it; its timeline event writes it back to the source
as an internal comment (Jira: internal, ServiceNow: work notes), never as a public one.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.enums import Role
from engine.core.models import Operator, Ticket, TicketNote
from engine.core.timeline import record_audit, record_event
from engine.operators.permissions import Actor, require

MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_][A-Za-z0-9_.-]*)")
MAX_NOTE = 20_000
"""Characters a note may hold: long enough for a pasted log excerpt, short enough for a source's comment field."""


def mentioned_operators(session: Session, body: str) -> list[str]:
    """The active operators a note names as @username (any case), each once, in the order written."""
    named = [match.rstrip(".-").lower() for match in MENTION.findall(body)]
    if not named:
        return []
    known = {
        name.lower(): name
        for name in session.scalars(
            select(Operator.username).where(func.lower(Operator.username).in_(named), Operator.is_active.is_(True))
        )
    }
    return list(dict.fromkeys(known[name] for name in named if name in known))


def add_note(session: Session, actor: Actor, ticket_id: int, body: str) -> TicketNote:
    """Add an internal note to the ticket; @mentions of operators are kept for their notifications."""
    require(actor, Role.AGENT)
    body = body.strip()
    if not body:
        raise ValueError("a note needs some text")
    if len(body) > MAX_NOTE:
        raise ValueError(f"a note holds at most {MAX_NOTE:,} characters; this one has {len(body):,}")
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"TCKT-{ticket_id} does not exist")
    mentions = mentioned_operators(session, body)
    note = TicketNote(ticket_id=ticket.id, author=actor.username, body=body, mentions=mentions)
    session.add(note)
    session.flush()
    title = f"{actor.username} added an internal note" + (f" for {', '.join(mentions)}" if mentions else "")
    record_event(session, ticket, "note_added", title, actor=actor.label, note_id=note.id, mentions=mentions)
    record_audit(session, actor.username, "add_note", "ticket", ticket.id, note=note.id, mentions=mentions)
    return note


def ticket_notes(session: Session, ticket_id: int) -> list[TicketNote]:
    return list(session.scalars(select(TicketNote).where(TicketNote.ticket_id == ticket_id).order_by(TicketNote.id)))
