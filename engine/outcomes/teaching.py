"""What resolved tickets teach the knowledge base: only what a person wrote or approved.

A resolved ticket becomes a source of kind `ticket` in the knowledge base (kb/indexer.py's generic source API);
a re-opened one leaves it. The customer's own words never do (stored cross-ticket injection).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import transaction
from engine.core.enums import ActionKind, ActionState, TicketStatus
from engine.core.models import Action, SourceCursor, Ticket
from engine.core.settings import Settings
from kb.chunk import chunk_sections
from kb.extract import Section
from kb.indexer import SourceChunks, index_sources

TICKETS_SOURCE = "kb:tickets"
TICKET_KIND = "ticket"
RESOLVED = (TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value)
TICKET_BATCH = 100
CURSOR_SAFETY = timedelta(minutes=5)

GREETING = re.compile(
    r"^\s*(hello|hi|hey|dear|good (morning|afternoon|evening))\b[^\n]{0,60}[,!:.]?\s*$", re.IGNORECASE
)
SIGN_OFF = re.compile(
    r"^\s*(--\s*|(best|kind|warm|many)?\s*(regards|wishes|thanks)[,!.]?|thank you[,!.]?|cheers[,!.]?|"
    r"sincerely[,!.]?|yours( sincerely| truly)?[,!.]?)\s*$",
    re.IGNORECASE,
)
SIGNATURE_LINES = 6
"""A sign-off this close to the end starts the signature; further up it is part of the text."""


def ticket_sections(session: Session, ticket: Ticket) -> list[Section]:
    """What a resolved ticket teaches: only the resolution a person wrote or approved, never what the customer wrote.

    The subject, description, replies and attachments are the customer's words; indexed, they would reach other
    customers as "steps" (stored cross-ticket injection). The evidence is the body of the ticket's latest executed
    resolution when a person decided it (an operator's approval or override). An automatic resolution teaches
    nothing, even one the customer confirmed: a "thanks" is the customer's word too, and an attacker can thank his
    own automatic answer into the knowledge base.
    """
    resolution = session.scalar(
        select(Action)
        .where(
            Action.ticket_id == ticket.id,
            Action.kind == ActionKind.PROPOSE_RESOLUTION,
            Action.state == ActionState.EXECUTED,
        )
        .order_by(Action.decided_at.desc(), Action.id.desc())
        .limit(1)
    )
    if resolution is None or resolution.decided_by in (None, "", "engine"):
        return []
    echoed = [ticket.subject, (ticket.subject or ticket.description)[:200]]
    text = resolution_text(resolution.body or "", echoed)
    return [Section(text, {"section": "resolution"})] if text else []


def resolution_text(body: str, echoed: Sequence[str] = ()) -> str:
    """The resolution without its greeting line, signature and any line quoting `echoed` customer text (the
    template's "Thank you for contacting us about ..."): what the steps were, not who wrote to whom."""
    quotes = [quote.strip() for quote in echoed if len(quote.strip()) >= 8]
    lines = [line for line in body.strip().splitlines() if not any(quote in line for quote in quotes)]
    if lines and GREETING.match(lines[0]):
        lines = lines[1:]
    for position in range(max(0, len(lines) - SIGNATURE_LINES), len(lines)):
        if SIGN_OFF.match(lines[position]):
            lines = lines[:position]
            break
    return "\n".join(lines).strip()


def _ticket_item(session: Session, settings: Settings, ticket: Ticket) -> SourceChunks:
    chunks = chunk_sections(
        ticket_sections(session, ticket), chunk_size=settings.KB_CHUNK_SIZE, chunk_overlap=settings.KB_CHUNK_OVERLAP
    )
    return SourceChunks(TICKET_KIND, ticket.id, ticket.team, ticket.resolved_at or ticket.updated_at, chunks)


def _ticket_sources(
    session: Session, settings: Settings, tickets: Sequence[Ticket]
) -> tuple[list[SourceChunks], list[tuple[str, int]]]:
    """What resolved tickets should hold in the knowledge base, and the re-opened ones that leave it."""
    items = [_ticket_item(session, settings, ticket) for ticket in tickets if ticket.status in RESOLVED]
    return items, [(TICKET_KIND, ticket.id) for ticket in tickets if ticket.status not in RESOLVED]


def index_ticket(factory: sessionmaker[Session], settings: Settings, ticket_id: int) -> int:
    """Index one ticket now (call it when a ticket is resolved); a re-opened or deleted ticket leaves the index."""
    with factory() as session:
        ticket = session.get(Ticket, ticket_id)
        items, gone = _ticket_sources(session, settings, [ticket]) if ticket else ([], [(TICKET_KIND, ticket_id)])
    return index_sources(factory, settings, items, gone)


def index_resolved_tickets(factory: sessionmaker[Session], settings: Settings) -> int:
    """Index tickets changed since the last run (cursor `kb:tickets`); returns how many changed in the index.

    The window reaches a few minutes behind the cursor so a transaction that committed late is not missed;
    unchanged tickets cost a hash comparison, not an embedding. The cursor moves after each committed batch.
    """
    with factory() as session:
        cursor_row = session.get(SourceCursor, TICKETS_SOURCE)
        since = datetime.fromisoformat(cursor_row.cursor) - CURSOR_SAFETY if cursor_row else None
    changed = 0
    last_seen: tuple[datetime, int] | None = None
    while True:
        query = select(Ticket).order_by(Ticket.updated_at, Ticket.id).limit(TICKET_BATCH)
        if since is not None:
            query = query.where(Ticket.updated_at >= since)
        if last_seen is not None:
            query = query.where(
                or_(Ticket.updated_at > last_seen[0], (Ticket.updated_at == last_seen[0]) & (Ticket.id > last_seen[1]))
            )
        with factory() as session:
            tickets = list(session.scalars(query))
            if not tickets:
                break
            last_seen = (tickets[-1].updated_at, tickets[-1].id)
            items, gone = _ticket_sources(session, settings, tickets)
        changed += index_sources(factory, settings, items, gone)
        with transaction(factory) as session:
            session.merge(SourceCursor(source=TICKETS_SOURCE, cursor=last_seen[0].isoformat()))
    return changed


def reteach_tickets(factory: sessionmaker[Session], settings: Settings) -> int:
    """Derive every resolved ticket's chunks again (after the chunk settings changed): the cursor starts over."""
    with transaction(factory) as session:
        session.execute(delete(SourceCursor).where(SourceCursor.source == TICKETS_SOURCE))
    return index_resolved_tickets(factory, settings)
