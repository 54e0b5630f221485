"""The `kb_chunks` table as the ledger both indexes follow, and the queries the indexer, search and self-test share.

Kept apart from kb/indexer.py so that search and the self-test can read the ledger without importing the indexer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.models import KbChunk, KbDocument, SourceCursor
from engine.trust.requests import language_of
from kb.keyword import KeywordRecord
from kb.store import KbRuntime

VERSION_SOURCE = "kb:index-version"
ID_BATCH = 500
LANGUAGE_SAMPLE = 200
"""Chunks, spread evenly over the ledger, whose languages tell which languages the knowledge base is written in."""
MIN_LANGUAGE_SHARE = 0.05
"""A language counts once this share of the sampled chunks is written in it (a quoted phrase in one is no article)."""
_languages: dict[str, frozenset[str]] = {}

AWAITING_REVIEW = KbChunk.quarantine.is_not(None) & KbChunk.approved_at.is_(None)
"""A quarantined chunk no lead has approved: invisible to the analysers."""


def knowledge_base_empty(session: Session) -> bool:
    """True when no chunk is indexed: callers then answer without loading any model or index."""
    return session.scalar(select(KbChunk.id).limit(1)) is None


def awaiting_review_count(session: Session, document_id: int) -> int:
    """How many of a document's chunks wait for a lead's approval (its `quarantined_count`)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(KbChunk)
            .where(KbChunk.source_kind == "kb", KbChunk.source_id == document_id, AWAITING_REVIEW)
        )
        or 0
    )


def section_text(session: Session, kind: str, source_id: int, location: dict[str, object]) -> str:
    """The whole section a passage was cut from, as a reader sees it: its visible chunks in order, each line once (a
    chunk repeats its section's heading and overlaps the one before). A table or list split over several chunks
    is whole again; quarantined chunks no lead approved stay out."""
    rows = session.execute(
        select(KbChunk.text, KbChunk.location)
        .where(KbChunk.source_kind == kind, KbChunk.source_id == source_id, ~AWAITING_REVIEW)
        .order_by(KbChunk.chunk_index)
    ).all()
    lines = (line for text, place in rows if place == location for line in text.splitlines() if line.strip())
    return "\n".join(dict.fromkeys(lines))


def source_title(session: Session, kind: str, source_id: int) -> str:
    """What a citation calls a source: the document's title, or "Resolution of TCKT-n" for a ticket, in our words:
    the ticket's subject is its customer's text and would reach other customers in every draft citing it."""
    if kind == "ticket":
        return f"Resolution of TCKT-{source_id}"
    document = session.get(KbDocument, source_id)
    return (document.title or document.filename) if document else f"document {source_id}"


def index_version(session: Session) -> str:
    return session.scalar(select(SourceCursor.cursor).where(SourceCursor.source == VERSION_SOURCE)) or ""


def knowledge_languages(session: Session) -> frozenset[str]:
    """The languages the knowledge base is written in ("English"), detected on a sample of its chunks and kept
    per index version (about 1 ms a chunk). Reads only."""
    token = index_version(session)
    if token in _languages:
        return _languages[token]
    ids = list(session.scalars(select(KbChunk.id).where(~AWAITING_REVIEW).order_by(KbChunk.id)))
    sample = ids[:: max(1, len(ids) // LANGUAGE_SAMPLE)][:LANGUAGE_SAMPLE]
    found = [
        language
        for batch in batches(sample, ID_BATCH)
        for text in session.scalars(select(KbChunk.text).where(KbChunk.id.in_(batch)))
        if (language := language_of(text))
    ]
    languages = frozenset(
        language for language in set(found) if found.count(language) >= MIN_LANGUAGE_SHARE * len(found)
    )
    if token:  # a ledger written without the token (tests, bulk loads) is read again next time
        _languages.clear()
        _languages[token] = languages
    return languages


def bump_version(session: Session) -> None:
    """A new token in the same transaction as the chunk change tells every process to resync."""
    cursor = session.get(SourceCursor, VERSION_SOURCE)
    if cursor is None:
        session.add(SourceCursor(source=VERSION_SOURCE, cursor=uuid.uuid4().hex))
    else:
        cursor.cursor = uuid.uuid4().hex


def _date_seconds(value: datetime | None) -> int:
    return int(value.timestamp()) if value else 0


def keyword_record(row: KbChunk) -> KeywordRecord:
    """A chunk as the BM25 index stores it, with the fields its filters read."""
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
    """A chunk's metadata as Chroma stores it, for the same filters."""
    return {
        "kind": row.source_kind,
        "source_id": row.source_id,
        "team": row.team or "",
        "date": _date_seconds(row.source_date),
        "hash": row.content_hash,
    }


def batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    """`items` in lists of at most `size`, to keep `IN (...)` clauses short."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def sync_keyword_index(session: Session, runtime: KbRuntime) -> int:
    """Bring the BM25 index up to `kb_chunks` when the version token moved; returns chunks changed. Reads only."""
    token = index_version(session)
    keywords = runtime.keywords
    if keywords.synced_token == token:
        return 0
    database = {str(chunk_id): digest for chunk_id, digest in session.execute(select(KbChunk.id, KbChunk.content_hash))}
    mine = keywords.hashes()
    extra = [chunk_id for chunk_id, digest in mine.items() if database.get(chunk_id) != digest]
    missing = [int(chunk_id) for chunk_id, digest in database.items() if mine.get(chunk_id) != digest]
    keywords.remove(extra)
    for batch in batches(missing, ID_BATCH):
        keywords.add(keyword_record(row) for row in session.scalars(select(KbChunk).where(KbChunk.id.in_(batch))))
    keywords.synced_token = token
    return len(extra) + len(missing)
