"""LLM analyser fixtures: a migrated SQLite database, settings for the LLM analyser, a knowledge base that is not
empty (the scripted chat models and the fake KB search are in tests/factories.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import make_engine, make_session_factory
from engine.core.models import KbChunk
from engine.core.settings import Settings, load_settings


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def llm_settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return load_settings(
        _env_file=None,
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=sqlite_url,
        DEMO_FEED_ENABLED=False,
        ENGINE_ENABLED=False,
        WORKER_ID="test-worker",
        KB_READY_WAIT_SECONDS=0,
        LLM_PROVIDER="openai",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        OPENAI_API_KEY="sk-test",
        LLM_PRICE_INPUT_PER_1K=0.5,
        LLM_PRICE_OUTPUT_PER_1K=1.5,
    )


@pytest.fixture
def with_kb(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """A database whose knowledge base is not empty, so the analyser searches it (the search itself is faked)."""
    with factory.begin() as session:
        session.add(KbChunk(source_kind="kb", source_id=1, chunk_index=0, text="VPN", content_hash="0" * 64))
    return factory
