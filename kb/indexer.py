"""Keeps the indexes in step with the knowledge base and the resolved tickets, one source at a time.

The `kb_chunks` table is the ledger. A change is written there first (with a new index-version token),
then applied to Chroma and to the BM25 index, touching only the changed source's chunks. Unchanged
chunks keep their rows and vectors. Any process that sees a new token brings its BM25 index up to the
table, and the index job repairs Chroma the same way, so the two never disagree for long, even after a
crash between the steps. Functions commit the session they are given: the indexes outside the database
must only ever see committed chunks.

Every chunk is screened as it is written: hidden text, instructions aimed at an assistant or the reader, requests
for secrets, bank details, links outside the desk's allowed domains and spreadsheet formulas put it in quarantine
(`KbChunk.quarantine`), where operators can see it but the analysers cannot until a lead approves it. An approval
belongs to the content: it survives re-indexing while the chunk is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import delete, exists, func, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import advisory_key, is_postgres
from engine.core.desk_policy import current_policy
from engine.core.enums import ActionKind, ActionState, TicketStatus
from engine.core.models import Action, Attachment, Blob, KbChunk, KbDocument, SourceCursor, Ticket, utcnow
from engine.core.settings import Settings
from engine.outcomes.outcomes import customer_confirmed
from engine.trust.content_policy import content_reasons
from engine.trust.guards import injection_reasons
from kb.chunk import Chunk, chunk_sections
from kb.extract import HIDDEN, OK, Extraction, Section, extract
from kb.keyword import KeywordRecord
from kb.store import KbRuntime, get_runtime
from kb.titles import readable_name

log = logging.getLogger(__name__)

VERSION_SOURCE = "kb:index-version"
TICKETS_SOURCE = "kb:tickets"
RESOLVED = (TicketStatus.RESOLVED.value, TicketStatus.CLOSED.value)
TICKET_BATCH = 100
CURSOR_SAFETY = timedelta(minutes=5)
ID_BATCH = 500
INDEXED = "indexed"
FAILED = "error"

Progress = Callable[[str], None]


@dataclass
class SourceChunks:
    """The chunks one source (a KB document or a ticket) should have, with what the filters need."""

    kind: str
    source_id: int
    team: str | None
    date: datetime | None
    chunks: list[Chunk]

    def stored_hash(self, chunk: Chunk) -> str:
        """Content, location, team and date: a chunk whose filters changed is a new chunk."""
        stamp = self.date.isoformat() if self.date else ""
        return hashlib.sha256(f"{chunk.content_hash}|{self.team or ''}|{stamp}".encode()).hexdigest()


@dataclass
class PendingChange:
    """Committed in the database, still to be applied to Chroma and BM25."""

    added: list[KbChunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    removed: list[int] = field(default_factory=list)
    sources: set[tuple[str, int]] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed


def _date_seconds(value: datetime | None) -> int:
    return int(value.timestamp()) if value else 0


def keyword_record(row: KbChunk) -> KeywordRecord:
    return KeywordRecord.from_text(
        str(row.id),
        row.content_hash,
        row.source_kind,
        row.source_id,
        row.team or "",
        _date_seconds(row.source_date),
        row.text,
    )


def vector_metadata(row: KbChunk) -> dict[str, str | int]:
    return {
        "kind": row.source_kind,
        "source_id": row.source_id,
        "team": row.team or "",
        "date": _date_seconds(row.source_date),
        "hash": row.content_hash,
    }


def bump_version(session: Session) -> None:
    """A new token in the same transaction as the chunk change tells every process to resync."""
    cursor = session.get(SourceCursor, VERSION_SOURCE)
    if cursor is None:
        session.add(SourceCursor(source=VERSION_SOURCE, cursor=uuid.uuid4().hex))
    else:
        cursor.cursor = uuid.uuid4().hex


def quarantine_reason(chunk: Chunk, allowed_domains: set[str]) -> str | None:
    """Why a chunk must not reach the analysers before a person has read it; None when it is clean.

    The customer-intent rules (gift cards, vouchers, payment changes) are not used here: an article may warn
    about gift-card scams or hand out Wi-Fi vouchers. What an article must not do is address an assistant,
    ask its reader for secrets, carry bank details, link outside the allowed domains or hide text.
    """
    reasons = [f"hidden in the source: {chunk.location[HIDDEN]}"] if HIDDEN in chunk.location else []
    reasons += injection_reasons(chunk.text)
    reasons += content_reasons(chunk.text, allowed_domains)
    return "; ".join(reasons) or None


def _clean_title(session: Session, settings: Settings, document: KbDocument, extraction: Extraction) -> str:
    """The document's own title when it passes the chunks' hygiene, else its readable file name: a title is cited
    in customers' e-mails and may come from metadata no chunk holds (a PDF's or Word file's title property)."""
    title = extraction.title or readable_name(document.filename)
    reasons = injection_reasons(title) + content_reasons(title, allowed_domains(session, settings))
    if not reasons:
        return title
    extraction.warnings.append(f"its own title was not used ({'; '.join(reasons)})")
    return readable_name(document.filename)


def allowed_domains(session: Session, settings: Settings) -> set[str]:
    """The domains evidence may link or write to: the desk's own and the ones a lead allowed."""
    return current_policy(session, settings).allowed_domain_set(settings)


def _stage_sources(session: Session, runtime: KbRuntime, items: Sequence[SourceChunks]) -> PendingChange:
    """Diff each source's wanted chunks against its rows, embed only new ones, stage the row changes.

    Ends the read transaction before embedding, so SQLite's write lock is not held during the slow part.
    Kept rows are screened again (the allow-list may have changed) and keep their approval.
    """
    runtime.vectors.check_model()
    allowed = allowed_domains(session, runtime.settings)
    pools: dict[tuple[str, int], dict[str, list[KbChunk]]] = defaultdict(lambda: defaultdict(list))
    by_kind: dict[str, set[int]] = defaultdict(set)
    for item in items:
        by_kind[item.kind].add(item.source_id)
    if by_kind:
        condition = or_(*[(KbChunk.source_kind == kind) & KbChunk.source_id.in_(ids) for kind, ids in by_kind.items()])
        for row in session.scalars(select(KbChunk).where(condition)):
            pools[(row.source_kind, row.source_id)][row.content_hash].append(row)
    kept: list[tuple[KbChunk, Chunk]] = []
    fresh: list[tuple[SourceChunks, Chunk, str]] = []
    stale: list[KbChunk] = []
    for item in items:
        pool = pools.get((item.kind, item.source_id), {})
        for chunk in item.chunks:
            stored = item.stored_hash(chunk)
            if pool.get(stored):
                kept.append((pool[stored].pop(), chunk))
            else:
                fresh.append((item, chunk, stored))
        stale.extend(row for rows in pool.values() for row in rows)
    session.commit()
    vectors = runtime.embedder.embed_documents([chunk.text for _, chunk, _ in fresh]) if fresh else None
    for row, chunk in kept:
        row.chunk_index = chunk.index
        row.quarantine = quarantine_reason(chunk, allowed)
    removed = [row.id for row in stale]
    if removed:
        session.execute(delete(KbChunk).where(KbChunk.id.in_(removed)))
    added = [
        KbChunk(
            source_kind=item.kind,
            source_id=item.source_id,
            chunk_index=chunk.index,
            text=chunk.text,
            location=chunk.location,
            content_hash=stored,
            team=item.team,
            source_date=item.date,
            quarantine=quarantine_reason(chunk, allowed),
        )
        for item, chunk, stored in fresh
    ]
    session.add_all(added)
    if added or removed:
        bump_version(session)
    session.flush()
    sources = {(row.source_kind, row.source_id) for row in [*added, *stale]}
    return PendingChange(added, vectors, removed, sources)


def _apply(runtime: KbRuntime, change: PendingChange) -> None:
    """Mirror a committed change into Chroma and BM25; only the changed chunks are touched."""
    if change.empty:
        return
    removed = [str(chunk_id) for chunk_id in change.removed]
    with runtime.lock:
        runtime.vectors.delete(removed)
        if change.added and change.vectors is not None:
            runtime.vectors.upsert(
                [str(row.id) for row in change.added], change.vectors, [vector_metadata(row) for row in change.added]
            )
        runtime.keywords.remove(removed)
        runtime.keywords.add(keyword_record(row) for row in change.added)


def _remove_source(session: Session, kind: str, source_id: int) -> PendingChange:
    return _remove_sources(session, kind, [source_id])


def _remove_sources(session: Session, kind: str, source_ids: Sequence[int]) -> PendingChange:
    rows = session.execute(
        select(KbChunk.id, KbChunk.source_id).where(KbChunk.source_kind == kind, KbChunk.source_id.in_(source_ids))
    ).all()
    ids = [chunk_id for chunk_id, _ in rows]
    if ids:
        session.execute(delete(KbChunk).where(KbChunk.id.in_(ids)))
        bump_version(session)
    return PendingChange(removed=ids, sources={(kind, source_id) for _, source_id in rows})


def _extract(settings: Settings, filename: str, data: bytes) -> Extraction:
    return extract(
        filename,
        data,
        max_bytes=settings.KB_MAX_FILE_BYTES,
        tesseract_cmd=settings.KB_TESSERACT_CMD,
        ocr_languages=settings.KB_OCR_LANGUAGES,
    )


def add_document(
    session: Session,
    settings: Settings,
    filename: str,
    data: bytes,
    uploaded_by: str | None = None,
    team: str | None = None,
) -> KbDocument:
    """Store, extract, chunk, embed and index one file. A bad file ends with a status and error, never raises."""
    sha256 = hashlib.sha256(data).hexdigest()
    document = KbDocument(
        filename=filename,
        size=len(data),
        team=team,
        uploaded_by=uploaded_by,
        status="pending",
        title=readable_name(filename),
    )
    if len(data) <= settings.KB_MAX_FILE_BYTES:
        if session.get(Blob, sha256) is None:
            session.add(Blob(sha256=sha256, size=len(data), data=data))
        document.sha256 = sha256
    session.add(document)
    session.commit()
    _index_document(session, settings, document, data)
    return document


def reindex_document(session: Session, settings: Settings, document_id: int) -> KbDocument:
    """Extract and index a stored document again (new chunk settings, OCR now installed, a changed file)."""
    document = session.get(KbDocument, document_id)
    if document is None:
        raise LookupError(f"knowledge-base document {document_id} does not exist")
    blob = session.get(Blob, document.sha256) if document.sha256 else None
    if blob is None:
        _index_document(session, settings, document, None)
    else:
        _index_document(session, settings, document, bytes(blob.data))
    return document


def replace_document(session: Session, settings: Settings, document_id: int, filename: str, data: bytes) -> KbDocument:
    """A new version of a document: same id, new bytes; unchanged chunks keep their vectors."""
    document = session.get(KbDocument, document_id)
    if document is None:
        raise LookupError(f"knowledge-base document {document_id} does not exist")
    sha256 = hashlib.sha256(data).hexdigest()
    document.filename, document.size = filename, len(data)
    document.sha256 = None
    if len(data) <= settings.KB_MAX_FILE_BYTES:
        if session.get(Blob, sha256) is None:
            session.add(Blob(sha256=sha256, size=len(data), data=data))
        document.sha256 = sha256
    session.commit()
    _index_document(session, settings, document, data)
    return document


def _index_document(session: Session, settings: Settings, document: KbDocument, data: bytes | None) -> None:
    runtime = get_runtime(settings)
    extraction = (
        _extract(settings, document.filename, data)
        if data is not None
        else Extraction("unknown", "missing", "the stored bytes of this document are gone; upload it again")
    )
    document.content_type = extraction.content_type if extraction.kind != "unknown" else document.content_type
    if extraction.status != OK:
        change = _remove_source(session, "kb", document.id)
        document.status, document.error, document.chunk_count = extraction.status, extraction.error, 0
        document.quarantined_count = 0
        session.commit()
        _apply(runtime, change)
        return
    chunks = chunk_sections(
        extraction.sections, chunk_size=settings.KB_CHUNK_SIZE, chunk_overlap=settings.KB_CHUNK_OVERLAP
    )
    item = SourceChunks("kb", document.id, document.team, document.created_at, chunks)
    try:
        change = _stage_sources(session, runtime, [item])
    except Exception as error:  # embedding endpoint down, model mismatch: the document says so, the batch goes on
        session.rollback()
        log.exception("indexing knowledge-base document %s (%s) failed", document.id, document.filename)
        document.status, document.error = FAILED, f"indexing failed: {error}"
        session.commit()
        return
    document.title = _clean_title(session, settings, document, extraction)
    document.status, document.chunk_count, document.indexed_at = INDEXED, len(chunks), utcnow()
    document.quarantined_count = _awaiting_review(session, document.id)
    document.error = "; ".join(extraction.warnings) or None
    session.commit()
    _apply(runtime, change)
    if document.quarantined_count:
        log.warning(
            "knowledge-base document %s (%s): %d of %d chunks quarantined until a lead approves them",
            document.id,
            document.filename,
            document.quarantined_count,
            document.chunk_count,
        )


AWAITING_REVIEW = KbChunk.quarantine.is_not(None) & KbChunk.approved_at.is_(None)
"""A quarantined chunk no lead has approved: invisible to the analysers."""


def _awaiting_review(session: Session, document_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(KbChunk)
            .where(KbChunk.source_kind == "kb", KbChunk.source_id == document_id, AWAITING_REVIEW)
        )
        or 0
    )


@dataclass
class QuarantinedChunk:
    """A quarantined chunk with the title of its source, for the Knowledge Base page."""

    chunk: KbChunk
    title: str


def quarantined_chunks(session: Session, *, include_approved: bool = False, limit: int = 200) -> list[QuarantinedChunk]:
    """Quarantined chunks, newest first, each with its document's title or its ticket's reference."""
    query = select(KbChunk).where(KbChunk.quarantine.is_not(None) if include_approved else AWAITING_REVIEW)
    chunks = list(session.scalars(query.order_by(KbChunk.id.desc()).limit(limit)))
    return [QuarantinedChunk(chunk, source_title(session, chunk.source_kind, chunk.source_id)) for chunk in chunks]


def source_title(session: Session, kind: str, source_id: int) -> str:
    """What a citation calls a source: the document's title, or `TCKT-n subject` for a ticket."""
    if kind == "ticket":
        ticket = session.get(Ticket, source_id)
        return f"TCKT-{source_id} {ticket.subject if ticket else ''}".strip()
    document = session.get(KbDocument, source_id)
    return (document.title or document.filename) if document else f"document {source_id}"


def approve_chunk(session: Session, chunk_id: int, approver: str) -> KbChunk:
    """A person read a quarantined chunk and lets the analysers use it; its document's count follows."""
    chunk = session.get(KbChunk, chunk_id)
    if chunk is None:
        raise LookupError(f"knowledge-base chunk {chunk_id} does not exist (re-indexed since the page loaded?)")
    if chunk.quarantine is None:
        raise ValueError(f"knowledge-base chunk {chunk_id} is not quarantined")
    chunk.approved_by, chunk.approved_at = approver, utcnow()
    session.flush()
    if chunk.source_kind == "kb" and (document := session.get(KbDocument, chunk.source_id)) is not None:
        document.quarantined_count = _awaiting_review(session, document.id)
    return chunk


def remove_document(session: Session, settings: Settings, document_id: int) -> bool:
    """Delete a document, its chunks everywhere, and its bytes unless something else still uses them."""
    document = session.get(KbDocument, document_id)
    if document is None:
        return False
    change = _remove_source(session, "kb", document_id)
    sha256 = document.sha256
    session.delete(document)
    session.flush()
    if sha256 and not _blob_in_use(session, sha256):
        session.execute(delete(Blob).where(Blob.sha256 == sha256))
    session.commit()
    _apply(get_runtime(settings), change)
    return True


def _blob_in_use(session: Session, sha256: str) -> bool:
    return bool(
        session.scalar(select(exists().where(KbDocument.sha256 == sha256)))
        or session.scalar(select(exists().where(Attachment.sha256 == sha256)))
    )


def list_documents(session: Session) -> list[KbDocument]:
    return list(session.scalars(select(KbDocument).order_by(KbDocument.id)))


def ticket_sections(session: Session, ticket: Ticket) -> list[Section]:
    """What a resolved ticket teaches: only the resolution a person wrote or approved, never what the customer wrote.

    The subject, description, replies and attachments are the customer's words; indexed, they would reach other
    customers as "steps" (stored cross-ticket injection). The evidence is the body of the ticket's latest executed
    resolution when a person decided it (an operator's approval or override), or when the customer confirmed an
    automatic one (engine/outcomes/outcomes.py). An automatic resolution nobody confirmed teaches nothing.
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
    if resolution is None or not resolution.decided_by:
        return []
    if resolution.decided_by == "engine" and not customer_confirmed(session, ticket.id):
        return []
    echoed = [ticket.subject, (ticket.subject or ticket.description)[:200]]
    text = resolution_text(resolution.body or "", echoed)
    return [Section(text, {"section": "resolution"})] if text else []


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
    return SourceChunks("ticket", ticket.id, ticket.team, ticket.resolved_at or ticket.updated_at, chunks)


def _index_tickets(session: Session, settings: Settings, tickets: Sequence[Ticket]) -> int:
    """(Re)index resolved tickets and drop re-opened ones; returns how many tickets' chunks changed."""
    runtime = get_runtime(settings)
    items = [_ticket_item(session, settings, t) for t in tickets if t.status in RESOLVED]
    reopened = [t.id for t in tickets if t.status not in RESOLVED]
    change = _stage_sources(session, runtime, items)
    if reopened:
        gone = _remove_sources(session, "ticket", reopened)
        change.removed.extend(gone.removed)
        change.sources |= gone.sources
    session.commit()
    _apply(runtime, change)
    return len(change.sources)


def index_ticket(session: Session, settings: Settings, ticket_id: int) -> int:
    """Index one ticket now (call it when a ticket is resolved); a re-opened ticket leaves the index."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        change = _remove_source(session, "ticket", ticket_id)
        session.commit()
        _apply(get_runtime(settings), change)
        return len(change.sources)
    return _index_tickets(session, settings, [ticket])


def index_resolved_tickets(session: Session, settings: Settings) -> int:
    """Index tickets changed since the last run (cursor `kb:tickets`); returns how many changed in the index.

    The window reaches a few minutes behind the cursor so a transaction that committed late is not missed;
    unchanged tickets cost a hash comparison, not an embedding.
    """
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
        tickets = list(session.scalars(query))
        if not tickets:
            break
        last_seen = (tickets[-1].updated_at, tickets[-1].id)
        changed += _index_tickets(session, settings, tickets)
        _save_cursor(session, TICKETS_SOURCE, last_seen[0].isoformat())
        session.commit()
    session.commit()
    return changed


def _save_cursor(session: Session, source: str, value: str) -> None:
    cursor = session.get(SourceCursor, source)
    if cursor is None:
        session.add(SourceCursor(source=source, cursor=value))
    else:
        cursor.cursor = value


def remove_orphans(session: Session, settings: Settings) -> int:
    """Chunks whose document or ticket no longer exists (deleted elsewhere) leave both indexes."""
    orphan_ids = list(
        session.scalars(
            select(KbChunk.id).where(
                or_(
                    (KbChunk.source_kind == "kb") & ~exists().where(KbDocument.id == KbChunk.source_id),
                    (KbChunk.source_kind == "ticket") & ~exists().where(Ticket.id == KbChunk.source_id),
                )
            )
        )
    )
    if orphan_ids:
        session.execute(delete(KbChunk).where(KbChunk.id.in_(orphan_ids)))
        bump_version(session)
    session.commit()
    _apply(get_runtime(settings), PendingChange(removed=orphan_ids))
    return len(orphan_ids)


def sync_keyword_index(session: Session, runtime: KbRuntime) -> int:
    """Bring the BM25 index up to `kb_chunks` when the version token moved; returns chunks changed."""
    token = session.scalar(select(SourceCursor.cursor).where(SourceCursor.source == VERSION_SOURCE)) or ""
    keywords = runtime.keywords
    if keywords.synced_token == token:
        return 0
    database = {str(chunk_id): digest for chunk_id, digest in session.execute(select(KbChunk.id, KbChunk.content_hash))}
    mine = keywords.hashes()
    extra = [chunk_id for chunk_id, digest in mine.items() if database.get(chunk_id) != digest]
    missing = [int(chunk_id) for chunk_id, digest in database.items() if mine.get(chunk_id) != digest]
    keywords.remove(extra)
    for batch in _batches(missing, ID_BATCH):
        keywords.add(keyword_record(row) for row in session.scalars(select(KbChunk).where(KbChunk.id.in_(batch))))
    keywords.synced_token = token
    return len(extra) + len(missing)


def sync_vectors(session: Session, settings: Settings, progress: Progress | None = None) -> int:
    """Repair Chroma from `kb_chunks`: embed chunks it lacks, drop chunks the database no longer has."""
    runtime = get_runtime(settings)
    database = {str(chunk_id): digest for chunk_id, digest in session.execute(select(KbChunk.id, KbChunk.content_hash))}
    session.commit()
    stored = runtime.vectors.hashes()
    extra = [chunk_id for chunk_id, digest in stored.items() if database.get(chunk_id) != digest]
    missing = [int(chunk_id) for chunk_id, digest in database.items() if stored.get(chunk_id) != digest]
    runtime.vectors.delete(extra)
    for batch in _batches(missing, 256):
        rows = list(session.scalars(select(KbChunk).where(KbChunk.id.in_(batch))))
        session.commit()
        if rows:
            vectors = runtime.embedder.embed_documents([row.text for row in rows])
            runtime.vectors.upsert([str(row.id) for row in rows], vectors, [vector_metadata(row) for row in rows])
        if progress:
            progress(f"embedded {len(rows)} chunks")
    return len(extra) + len(missing)


def _batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def reindex_all(session: Session, settings: Settings, progress: Progress | None = None) -> dict[str, int]:
    """Rebuild from the stored bytes and tickets; with a new embedding model, the vector index is replaced."""
    from kb.store import ReindexRequiredError

    runtime = get_runtime(settings)
    replaced = 0
    try:
        runtime.vectors.check_model()
    except ReindexRequiredError:
        runtime.vectors.drop()
        replaced = 1
    documents = [document.id for document in list_documents(session)]
    session.commit()
    for document_id in documents:
        document = reindex_document(session, settings, document_id)
        if progress:
            progress(f"{document.filename}: {document.status}")
    session.execute(delete(SourceCursor).where(SourceCursor.source == TICKETS_SOURCE))
    session.commit()
    tickets = index_resolved_tickets(session, settings)
    orphans = remove_orphans(session, settings)
    runtime.keywords.reset()
    keywords = sync_keyword_index(session, runtime)
    session.commit()
    vectors = sync_vectors(session, settings, progress)
    runtime.keywords.save_snapshot()
    return {
        "documents": len(documents),
        "tickets": tickets,
        "orphans_removed": orphans,
        "keyword_chunks": keywords,
        "vectors_repaired": vectors,
        "vector_index_replaced": replaced,
    }


@contextmanager
def _job_lock(session_factory: sessionmaker[Session]) -> Iterator[bool]:
    """One index job at a time across replicas (PostgreSQL advisory lock); SQLite has one writer anyway."""
    with session_factory() as probe:
        postgres = is_postgres(probe)
        bind = probe.get_bind()
    if not postgres:
        yield True
        return
    with bind.connect() as connection:
        key = advisory_key("kb-index")
        acquired = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()


def run_index_job(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """The engine's `reindex` job: new and changed resolved tickets, pending documents, repairs; counts for
    the status panel."""
    with _job_lock(session_factory) as acquired:
        if not acquired:
            return {"skipped": 1}
        with session_factory() as session:
            tickets = index_resolved_tickets(session, settings)
            pending = list(session.scalars(select(KbDocument.id).where(KbDocument.status == "pending")))
            session.commit()
            for document_id in pending:
                reindex_document(session, settings, document_id)
            orphans = remove_orphans(session, settings)
            vectors = sync_vectors(session, settings)
            keywords = sync_keyword_index(session, get_runtime(settings))
            chunks = int(session.scalar(select(func.count()).select_from(KbChunk)) or 0)
            session.commit()
            calibrated = _recalibrate_if_changed(session, settings)
    return {
        "tickets_indexed": tickets,
        "documents_indexed": len(pending),
        "orphans_removed": orphans,
        "vectors_repaired": vectors,
        "keyword_repaired": keywords,
        "chunks": chunks,
        "calibrated": calibrated,
    }


def _recalibrate_if_changed(session: Session, settings: Settings) -> int:
    """A knowledge base that changed materially chooses its fusion and confidence again (kb/self_test.py).

    A failed calibration keeps the previous one and is logged; the index job itself has succeeded.
    """
    from kb.calibration import needs_calibration
    from kb.self_test import calibrate

    if not needs_calibration(session):
        return 0
    try:
        calibrate(session, settings)
    except Exception:  # the embedder or Chroma failing here must not fail indexing
        session.rollback()
        log.exception("calibrating retrieval on the knowledge base failed; the previous calibration stays")
        return 0
    return 1
