"""Keeps the indexes in step with the knowledge base's sources (documents, and whatever else a caller indexes).

The `kb_chunks` table is the ledger (kb/ledger.py). A change is written there first (with a new index-version
token), then applied to Chroma and to the BM25 index, touching only the changed source's chunks. Unchanged
chunks keep their rows and vectors. Any process that sees a new token brings its BM25 index up to the table,
and the index job repairs Chroma the same way, so the two never disagree for long, even after a crash between
the steps. Functions that need several transactions take a session factory and open their own short ones
(reading in one, embedding outside any, writing in another), so SQLite's write lock is never held while
embedding and the indexes outside the database only ever see committed chunks. A function handed a session
never commits it.

Every chunk is screened as it is written: hidden text, instructions aimed at an assistant or the reader, requests
for secrets, bank details, links outside the desk's allowed domains and spreadsheet formulas put it in quarantine
(`KbChunk.quarantine`), where operators can see it but the analysers cannot until a lead approves it. An approval
belongs to the content: it survives re-indexing while the chunk is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import Text, cast, delete, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.blobs import store_blob
from engine.core.db import transaction
from engine.core.desk_policy import current_policy
from engine.core.models import Attachment, Blob, KbChunk, KbDocument, OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.trust.content_policy import content_reasons, domain_allowed, domains
from engine.trust.guards import injection_reasons
from kb.chunk import Chunk, chunk_sections
from kb.extract import HIDDEN, OK, Extraction
from kb.keyword import KeywordRecord
from kb.ledger import (
    AWAITING_REVIEW,
    awaiting_review_count,
    batches,
    bump_version,
    keyword_record,
    source_title,
    sync_keyword_index,
    vector_metadata,
)
from kb.sandbox import extract_bounded
from kb.store import KbRuntime, ReindexRequiredError, get_runtime
from kb.titles import knowledge_filename, readable_name

log = logging.getLogger(__name__)

INDEXED = "indexed"
FAILED = "error"
EMBED_BATCH = 256

Progress = Callable[[str], None]
Source = tuple[str, int]


@dataclass
class SourceChunks:
    """The chunks one source (a KB document, a resolved ticket) should have, with what the filters need."""

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
class Plan:
    """What a set of sources needs, read in one transaction: rows to keep (id, index, quarantine), new chunks
    to embed and write, and rows to delete."""

    kept: list[tuple[int, int, str | None]] = field(default_factory=list)
    fresh: list[tuple[SourceChunks, Chunk, str, str | None]] = field(default_factory=list)
    stale: list[tuple[int, Source]] = field(default_factory=list)


@dataclass
class PendingChange:
    """Committed in the database, still to be applied to Chroma and BM25 (no ORM rows: it outlives its session)."""

    added_ids: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None
    metadatas: list[dict[str, str | int]] = field(default_factory=list)
    records: list[KeywordRecord] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    sources: set[Source] = field(default_factory=set)

    def merge(self, other: PendingChange) -> None:
        """Fold a removal staged in the same transaction into this change."""
        self.removed.extend(other.removed)
        self.sources |= other.sources


def quarantine_reason(chunk: Chunk, allowed_domains: set[str], contact_points: set[str]) -> str | None:
    """Why a chunk must not reach the analysers before a person has read it; None when it is clean.

    The customer-intent rules (gift cards, vouchers, payment changes) are not used here: an article may warn
    about gift-card scams or hand out Wi-Fi vouchers. What an article must not do is address an assistant,
    ask its reader for secrets, carry bank details, link outside the allowed domains or hide text.
    """
    reasons = [f"hidden in the source: {chunk.location[HIDDEN]}"] if HIDDEN in chunk.location else []
    reasons += injection_reasons(chunk.text)
    reasons += content_reasons(chunk.text, allowed_domains, contact_points)
    return "; ".join(reasons) or None


def allowed_domains(session: Session, settings: Settings) -> set[str]:
    """The domains evidence may link or write to: the desk's own and the ones a lead allowed."""
    return current_policy(session, settings).allowed_domain_set(settings)


def _clean_title(session: Session, settings: Settings, document: KbDocument, extraction: Extraction) -> str:
    """The document's own title when it passes the chunks' hygiene, else its readable file name: a title is cited
    in customers' e-mails and may come from metadata no chunk holds (a PDF's or Word file's title property)."""
    title = extraction.title or readable_name(document.filename)
    policy = current_policy(session, settings)
    reasons = injection_reasons(title)
    reasons += content_reasons(title, policy.allowed_domain_set(settings), policy.contact_point_set(settings))
    if not reasons:
        return title
    extraction.warnings.append(f"its own title was not used ({'; '.join(reasons)})")
    return readable_name(document.filename)


def _plan(session: Session, settings: Settings, items: Sequence[SourceChunks]) -> Plan:
    """Diff each source's wanted chunks against its rows. Kept rows are screened again (the allow-list may have
    changed) and keep their approval."""
    allowed = allowed_domains(session, settings)
    contacts = current_policy(session, settings).contact_point_set(settings)
    pools: dict[Source, dict[str, list[KbChunk]]] = defaultdict(lambda: defaultdict(list))
    by_kind: dict[str, set[int]] = defaultdict(set)
    for item in items:
        by_kind[item.kind].add(item.source_id)
    if by_kind:
        condition = or_(*[(KbChunk.source_kind == kind) & KbChunk.source_id.in_(ids) for kind, ids in by_kind.items()])
        for row in session.scalars(select(KbChunk).where(condition)):
            pools[(row.source_kind, row.source_id)][row.content_hash].append(row)
    plan = Plan()
    for item in items:
        pool = pools.get((item.kind, item.source_id), {})
        for chunk in item.chunks:
            stored = item.stored_hash(chunk)
            reason = quarantine_reason(chunk, allowed, contacts)
            if pool.get(stored):
                plan.kept.append((pool[stored].pop().id, chunk.index, reason))
            else:
                plan.fresh.append((item, chunk, stored, reason))
        plan.stale.extend((row.id, (row.source_kind, row.source_id)) for rows in pool.values() for row in rows)
    return plan


def _write(session: Session, plan: Plan, vectors: np.ndarray | None) -> PendingChange:
    """Stage a plan's row changes in `session` (flushed, not committed) and what the indexes must mirror."""
    for chunk_id, index, reason in plan.kept:
        if (row := session.get(KbChunk, chunk_id)) is not None:
            row.chunk_index, row.quarantine = index, reason
    removed = [chunk_id for chunk_id, _ in plan.stale]
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
            quarantine=reason,
        )
        for item, chunk, stored, reason in plan.fresh
    ]
    session.add_all(added)
    if added or removed:
        bump_version(session)
    session.flush()
    return PendingChange(
        added_ids=[str(row.id) for row in added],
        vectors=vectors,
        metadatas=[vector_metadata(row) for row in added],
        records=[keyword_record(row) for row in added],
        removed=removed,
        sources={(row.source_kind, row.source_id) for row in added} | {source for _, source in plan.stale},
    )


def _remove_sources(session: Session, sources: Sequence[Source]) -> PendingChange:
    """Delete the chunks of `sources` in `session` (not committed)."""
    if not sources:
        return PendingChange()
    condition = or_(*[(KbChunk.source_kind == kind) & (KbChunk.source_id == source_id) for kind, source_id in sources])
    rows = session.execute(select(KbChunk.id, KbChunk.source_kind, KbChunk.source_id).where(condition)).all()
    ids = [chunk_id for chunk_id, _, _ in rows]
    if ids:
        session.execute(delete(KbChunk).where(KbChunk.id.in_(ids)))
        bump_version(session)
    return PendingChange(removed=ids, sources={(kind, source_id) for _, kind, source_id in rows})


def _stage(
    factory: sessionmaker[Session],
    settings: Settings,
    items: Sequence[SourceChunks],
    removed: Sequence[Source] = (),
    finish: Callable[[Session], None] | None = None,
) -> PendingChange:
    """Read the rows in one transaction, embed the new chunks outside any, write in another (with `finish`, the
    caller's own row changes) and commit it; returns what the indexes must mirror."""
    runtime = get_runtime(settings)
    runtime.vectors.check_model()
    with factory() as session:
        plan = _plan(session, settings, items)
    vectors = runtime.embedder.embed_documents([chunk.text for _, chunk, _, _ in plan.fresh]) if plan.fresh else None
    with transaction(factory) as session:
        change = _write(session, plan, vectors)
        change.merge(_remove_sources(session, removed))
        if finish is not None:
            finish(session)
    return change


def _apply(runtime: KbRuntime, change: PendingChange) -> None:
    """Mirror a committed change into Chroma and BM25; only the changed chunks are touched."""
    if not change.added_ids and not change.removed:
        return
    removed = [str(chunk_id) for chunk_id in change.removed]
    with runtime.lock:
        runtime.vectors.delete(removed)
        if change.added_ids and change.vectors is not None:
            runtime.vectors.upsert(change.added_ids, change.vectors, change.metadatas)
        runtime.keywords.remove(removed)
        runtime.keywords.add(change.records)


def index_sources(
    factory: sessionmaker[Session], settings: Settings, items: Sequence[SourceChunks], removed: Sequence[Source] = ()
) -> int:
    """Give each source in `items` exactly its chunks and drop the `removed` sources' chunks, in the database and
    then in both indexes; returns how many sources' chunks changed. What a source is, is the caller's business."""
    change = _stage(factory, settings, items, removed)
    _apply(get_runtime(settings), change)
    return len(change.sources)


def _store_bytes(session: Session, settings: Settings, document: KbDocument, data: bytes) -> None:
    """Keep the file's bytes (deduplicated by hash) unless they exceed the size limit."""
    document.sha256 = store_blob(session, data) if len(data) <= settings.KB_MAX_FILE_BYTES else None


def add_document(
    factory: sessionmaker[Session],
    settings: Settings,
    filename: str,
    data: bytes,
    uploaded_by: str | None = None,
    team: str | None = None,
) -> KbDocument:
    """Store, extract, chunk, embed and index one file. A bad file ends with a status and error, never raises;
    a name no column can hold is stored cleaned (kb.titles.knowledge_filename), with a warning in the log."""
    with transaction(factory) as session:
        document_id = stage_document(session, settings, filename, data, uploaded_by, team).id
    return _index_document(factory, settings, document_id, data)


def stage_document(
    session: Session,
    settings: Settings,
    filename: str,
    data: bytes,
    uploaded_by: str | None = None,
    team: str | None = None,
) -> KbDocument:
    """The document's row and bytes, pending, in the caller's transaction (so a caller's own change commits with
    it, or neither does); `index_staged_document` reads it once committed."""
    filename = _storable_name(filename)
    document = KbDocument(
        filename=filename,
        size=len(data),
        team=team,
        uploaded_by=uploaded_by,
        status="pending",
        title=readable_name(filename),
    )
    _store_bytes(session, settings, document, data)
    session.add(document)
    session.flush()
    return document


def index_staged_document(
    factory: sessionmaker[Session], settings: Settings, document_id: int, data: bytes
) -> KbDocument:
    """Read and index a document `stage_document` kept (committed): as an upload is, bounded and never raising for a
    bad file."""
    return _index_document(factory, settings, document_id, data)


def reindex_document(factory: sessionmaker[Session], settings: Settings, document_id: int) -> KbDocument:
    """Extract and index a stored document again (new chunk settings, OCR now installed, a changed file)."""
    with factory() as session:
        document = session.get(KbDocument, document_id)
        if document is None:
            raise LookupError(f"knowledge-base document {document_id} does not exist")
        blob = session.get(Blob, document.sha256) if document.sha256 else None
        data = bytes(blob.data) if blob is not None else None
    return _index_document(factory, settings, document_id, data)


def replace_document(
    factory: sessionmaker[Session], settings: Settings, document_id: int, filename: str, data: bytes
) -> KbDocument:
    """A new version of a document: same id, new bytes; unchanged chunks keep their vectors."""
    filename = _storable_name(filename)
    with transaction(factory) as session:
        document = session.get(KbDocument, document_id)
        if document is None:
            raise LookupError(f"knowledge-base document {document_id} does not exist")
        document.filename, document.size = filename, len(data)
        _store_bytes(session, settings, document, data)
    return _index_document(factory, settings, document_id, data)


def _storable_name(filename: str) -> str:
    name, changed = knowledge_filename(filename)
    if changed:
        log.warning("knowledge-base file %r is stored as %r: %s", filename[:200], name[:200], changed)
    return name


def _index_document(
    factory: sessionmaker[Session], settings: Settings, document_id: int, data: bytes | None
) -> KbDocument:
    """Extract outside any transaction, in a bounded child process (kb/sandbox.py: a file past its time, memory or
    text limit is "too complex to read safely" and not indexed), then stage the chunks and the document's status
    together."""
    with factory() as session:
        document = session.get(KbDocument, document_id)
        if document is None:
            raise LookupError(f"knowledge-base document {document_id} does not exist")
        filename, team, created_at = document.filename, document.team, document.created_at
    extraction = (
        extract_bounded(filename, data, settings)
        if data is not None
        else Extraction("unknown", "missing", "the stored bytes of this document are gone; upload it again")
    )

    def record(session: Session) -> KbDocument:
        stored = session.get(KbDocument, document_id)
        if stored is None:
            raise LookupError(f"knowledge-base document {document_id} was deleted while it was indexed")
        stored.content_type = extraction.content_type if extraction.kind != "unknown" else stored.content_type
        return stored

    runtime = get_runtime(settings)
    if extraction.status != OK:
        log.warning("knowledge-base document %s (%s) not indexed: %s", document_id, filename, extraction.error)
        with transaction(factory) as session:
            change = _remove_sources(session, [("kb", document_id)])
            document = record(session)
            document.status, document.error, document.chunk_count = extraction.status, extraction.error, 0
            document.quarantined_count = 0
        _apply(runtime, change)
        return _stored(factory, document_id)
    chunks = chunk_sections(
        extraction.sections, chunk_size=settings.KB_CHUNK_SIZE, chunk_overlap=settings.KB_CHUNK_OVERLAP
    )

    def finish(session: Session) -> None:
        document = record(session)
        document.title = _clean_title(session, settings, document, extraction)
        document.status, document.chunk_count, document.indexed_at = INDEXED, len(chunks), utcnow()
        document.quarantined_count = awaiting_review_count(session, document_id)
        document.error = "; ".join(extraction.warnings) or None

    try:
        change = _stage(factory, settings, [SourceChunks("kb", document_id, team, created_at, chunks)], (), finish)
    except Exception as error:  # embedding endpoint down, model mismatch: the document says so, the batch goes on
        log.exception("indexing knowledge-base document %s (%s) failed", document_id, filename)
        with transaction(factory) as session:
            document = record(session)
            document.status, document.error = FAILED, f"indexing failed: {error}"
        return _stored(factory, document_id)
    _apply(runtime, change)
    document = _stored(factory, document_id)
    if document.quarantined_count:
        log.warning(
            "knowledge-base document %s (%s): %d of %d chunks quarantined until a lead approves them",
            document.id,
            document.filename,
            document.quarantined_count,
            document.chunk_count,
        )
        with factory() as session:
            if message := link_quarantine_message(*outside_link_domains(session, settings, [document.id])):
                log.warning("knowledge-base document %s (%s): %s", document.id, document.filename, message)
    return document


def outside_link_domains(session: Session, settings: Settings, document_ids: Sequence[int]) -> tuple[int, list[str]]:
    """How many of these documents' chunks await review because they link or write to domains the desk does not
    allow, and those domains (the usual cause of a quarantine that surprises: a company's articles linking to
    its own site while that site is not in OUTGOING_ALLOWED_DOMAINS)."""
    allowed = allowed_domains(session, settings)
    rows = session.scalars(
        select(KbChunk.text).where(KbChunk.source_kind == "kb", KbChunk.source_id.in_(document_ids), AWAITING_REVIEW)
    ).all()
    found: dict[str, None] = {}
    count = 0
    for text in rows:
        outside = [domain for domain in domains(text) if not domain_allowed(domain, allowed)]
        count += bool(outside)
        found.update(dict.fromkeys(outside))
    return count, sorted(found)


def link_quarantine_message(count: int, outside: list[str]) -> str:
    """The sentence an operator reads after adding articles whose links are not allowed; empty when none."""
    if not count:
        return ""
    return (
        f"{count} chunk(s) quarantined because links point to domains not in OUTGOING_ALLOWED_DOMAINS: "
        f"{', '.join(outside[:10])}{' …' if len(outside) > 10 else ''} (allow the domains you trust with "
        "OUTGOING_ALLOWED_DOMAINS or on the Settings page, then reindex; or approve the chunks on the Knowledge "
        "Base page)"
    )


def _stored(factory: sessionmaker[Session], document_id: int) -> KbDocument:
    """The document as committed, detached with its columns loaded, for the caller to read."""
    with factory() as session:
        document = session.get(KbDocument, document_id)
        if document is None:
            raise LookupError(f"knowledge-base document {document_id} does not exist")
        return document


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


def approve_chunk(session: Session, chunk_id: int, approver: str) -> KbChunk:
    """A person read a quarantined chunk and lets the analysers use it; its document's count follows. The caller
    commits (with its audit entry)."""
    chunk = session.get(KbChunk, chunk_id)
    if chunk is None:
        raise LookupError(f"knowledge-base chunk {chunk_id} does not exist (re-indexed since the page loaded?)")
    if chunk.quarantine is None:
        raise ValueError(f"knowledge-base chunk {chunk_id} is not quarantined")
    chunk.approved_by, chunk.approved_at = approver, utcnow()
    session.flush()
    if chunk.source_kind == "kb" and (document := session.get(KbDocument, chunk.source_id)) is not None:
        document.quarantined_count = awaiting_review_count(session, document.id)
    return chunk


def remove_document(factory: sessionmaker[Session], settings: Settings, document_id: int) -> bool:
    """Delete a document, its chunks everywhere, and its bytes unless something else still uses them."""
    with transaction(factory) as session:
        document = session.get(KbDocument, document_id)
        if document is None:
            return False
        change = _remove_sources(session, [("kb", document_id)])
        sha256 = document.sha256
        session.delete(document)
        session.flush()
        if sha256 and not _blob_in_use(session, sha256):
            session.execute(delete(Blob).where(Blob.sha256 == sha256))
    _apply(get_runtime(settings), change)
    return True


def _blob_in_use(session: Session, sha256: str) -> bool:
    return bool(
        session.scalar(select(exists().where(KbDocument.sha256 == sha256)))
        or session.scalar(select(exists().where(Attachment.sha256 == sha256)))
        # a person's reply names its files' blobs in its JSON list (engine/delivery/outbox.py)
        or session.scalar(select(exists().where(cast(OutboxMessage.attachments, Text).contains(sha256))))
    )


def list_documents(session: Session) -> list[KbDocument]:
    return list(session.scalars(select(KbDocument).order_by(KbDocument.id)))


def index_pending_documents(factory: sessionmaker[Session], settings: Settings) -> int:
    """Index the documents still marked pending (an upload interrupted, a migration asking for it); returns how many."""
    with factory() as session:
        pending = list(session.scalars(select(KbDocument.id).where(KbDocument.status == "pending")))
    for document_id in pending:
        reindex_document(factory, settings, document_id)
    return len(pending)


def remove_orphans(factory: sessionmaker[Session], settings: Settings) -> int:
    """Chunks whose document or ticket no longer exists (deleted elsewhere) leave both indexes."""
    with transaction(factory) as session:
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
    _apply(get_runtime(settings), PendingChange(removed=orphan_ids))
    return len(orphan_ids)


def sync_vectors(factory: sessionmaker[Session], settings: Settings, progress: Progress | None = None) -> int:
    """Repair Chroma from `kb_chunks`: embed chunks it lacks, drop chunks the database no longer has."""
    runtime = get_runtime(settings)
    with factory() as session:
        database = {str(i): digest for i, digest in session.execute(select(KbChunk.id, KbChunk.content_hash))}
    stored = runtime.vectors.hashes()
    extra = [chunk_id for chunk_id, digest in stored.items() if database.get(chunk_id) != digest]
    missing = [int(chunk_id) for chunk_id, digest in database.items() if stored.get(chunk_id) != digest]
    runtime.vectors.delete(extra)
    for batch in batches(missing, EMBED_BATCH):
        with factory() as session:
            rows = list(session.scalars(select(KbChunk).where(KbChunk.id.in_(batch))))
            ids, texts, metadatas = (
                [str(r.id) for r in rows],
                [r.text for r in rows],
                [vector_metadata(r) for r in rows],
            )
        if rows:
            runtime.vectors.upsert(ids, runtime.embedder.embed_documents(texts), metadatas)
        if progress:
            progress(f"embedded {len(rows)} chunks")
    return len(extra) + len(missing)


def repair_indexes(
    factory: sessionmaker[Session], settings: Settings, progress: Progress | None = None
) -> dict[str, int]:
    """Bring both indexes up to `kb_chunks` (orphans out, Chroma and BM25 repaired); counts for the status panel."""
    orphans = remove_orphans(factory, settings)
    vectors = sync_vectors(factory, settings, progress)
    with factory() as session:
        keywords = sync_keyword_index(session, get_runtime(settings))
        chunks = int(session.scalar(select(func.count()).select_from(KbChunk)) or 0)
    return {"orphans_removed": orphans, "vectors_repaired": vectors, "keyword_repaired": keywords, "chunks": chunks}


def reindex_all(factory: sessionmaker[Session], settings: Settings, progress: Progress | None = None) -> dict[str, int]:
    """Rebuild every document from its stored bytes and repair both indexes; with a new embedding model, the
    vector index is replaced. Other sources' chunks (resolved tickets) are re-embedded, not re-derived: that is
    their indexer's business."""
    runtime = get_runtime(settings)
    replaced = 0
    try:
        runtime.vectors.check_model()
    except ReindexRequiredError:
        runtime.vectors.drop()
        replaced = 1
    with factory() as session:
        documents = [document.id for document in list_documents(session)]
    for document_id in documents:
        document = reindex_document(factory, settings, document_id)
        if progress:
            progress(f"{document.filename}: {document.status}")
    runtime.keywords.reset()
    repaired = repair_indexes(factory, settings, progress)
    runtime.keywords.save_snapshot()
    return {"documents": len(documents), **repaired, "vector_index_replaced": replaced}
