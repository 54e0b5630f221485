"""What resolved tickets teach the knowledge base: only what a person wrote or approved.

A resolved ticket becomes a source of kind `ticket` in the knowledge base (kb/indexer.py's generic source API),
holding its learned answer (engine/outcomes/learned.py: one store, one cleaning, one reuse rule), so a passage search
finds it by its content as the learned-question match finds it by its question; a re-opened ticket
leaves it. The customer's own words never do (stored cross-ticket injection).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import transaction
from engine.core.enums import ActionKind, ActionState, TicketStatus
from engine.core.models import Action, LearnedAnswer, LearnedQuestion, SourceCursor, Ticket
from engine.core.settings import Settings
from engine.outcomes.learned import TICKET_KIND, reusable
from kb.chunk import chunk_sections
from kb.extract import Section
from kb.indexer import SourceChunks, index_sources
from kb.self_test import AnsweredQuestion

TICKETS_SOURCE = "kb:tickets"
RESOLVED = (TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value)
TICKET_BATCH = 100
CURSOR_SAFETY = timedelta(minutes=5)


def ticket_sections(session: Session, ticket: Ticket) -> list[Section]:
    """What a resolved ticket teaches the knowledge base: the learned answer (engine/outcomes/learned.py) its latest
    resolution became when a person decided it, once that answer is reusable; never what the customer wrote.

    The subject, description, replies and attachments are the customer's words; indexed, they would reach other
    customers as "steps" (stored cross-ticket injection). A learned answer is operator text cleaned of greeting,
    signature and quoted customer lines, and one naming the customer's particulars waits for a lead. An automatic
    resolution teaches nothing here, even one the customer confirmed: it is knowledge already, and a "thanks" must
    not promote it (the confirmation binds the ticket's question to it among the learned answers instead).
    """
    resolution = session.scalar(
        select(Action)
        .where(
            Action.ticket_id == ticket.id,
            Action.kind.in_([ActionKind.PROPOSE_RESOLUTION, ActionKind.MANUAL_REPLY]),
            Action.state == ActionState.EXECUTED,
        )
        .order_by(Action.decided_at.desc(), Action.id.desc())
        .limit(1)
    )
    if resolution is None or resolution.decided_by in (None, "", "engine"):
        return []
    learned = session.scalar(
        select(LearnedAnswer)
        .join(LearnedQuestion, LearnedQuestion.learned_answer_id == LearnedAnswer.id)
        .where(LearnedQuestion.ticket_id == ticket.id)
        .order_by(LearnedQuestion.id.desc())
        .limit(1)
    )
    if learned is None or not reusable(learned):
        return []
    return [Section(learned.answer, {"section": "resolution"})]


def learned_questions(session: Session, limit: int = 2000) -> list[AnsweredQuestion]:
    """The learned questions for the knowledge base's self-test, joining it as they accumulate: each (a customer's
    words, as the analyser read them) with the tickets that hold its learned answer in the index, its own and the one
    that first taught the answer. The self-test keeps the pairs whose ticket is indexed (resolved by a person)."""
    rows = session.execute(
        select(LearnedQuestion.question, LearnedQuestion.ticket_id, LearnedAnswer.ticket_id)
        .join(LearnedAnswer, LearnedAnswer.id == LearnedQuestion.learned_answer_id)
        .where(LearnedQuestion.question.is_not(None))
        .order_by(LearnedQuestion.id.desc())
        .limit(limit)
    ).all()
    return [
        AnsweredQuestion(question, (TICKET_KIND, ticket))
        for question, own, first in rows
        for ticket in dict.fromkeys((own, first))
        if ticket is not None
    ]


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
