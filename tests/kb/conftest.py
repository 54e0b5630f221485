"""Knowledge-base fixtures: fresh process caches per test, and a check that all three stores agree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.models import KbChunk
from engine.core.settings import Settings
from kb.store import get_runtime, reset_caches


@pytest.fixture(autouse=True)
def fresh_kb_caches() -> Iterator[None]:
    reset_caches()
    yield
    reset_caches()


def chunk_ids_everywhere(session: Session, settings: Settings) -> tuple[set[str], set[str], set[str]]:
    """Chunk ids in the database, in Chroma, and in the BM25 index."""
    runtime = get_runtime(settings)
    database = {str(chunk_id) for chunk_id in session.scalars(select(KbChunk.id))}
    return database, set(runtime.vectors.hashes()), set(runtime.keywords.hashes())


def assert_consistent(session: Session, settings: Settings) -> set[str]:
    database, vectors, keywords = chunk_ids_everywhere(session, settings)
    assert database == vectors == keywords
    return database
