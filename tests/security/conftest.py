"""Security fixtures: the hostile corpus, the page fixtures, and a desk running on autopilot with no confidence bar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import MessageKind
from engine.core.models import OutboxMessage
from engine.core.settings import Settings
from kb.store import reset_caches
from tests.kb.embeddings_emulator import EmbeddingsEmulator
from tests.pages.conftest import app, embeddings  # noqa: F401 - page fixtures, shared

HOSTILE = Path(__file__).resolve().parent.parent / "corpus" / "hostile"


def lines_of(name: str) -> list[str]:
    """One payload per line of a committed corpus file."""
    return [line for line in (HOSTILE / name).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def autopilot(settings: Settings, embeddings: EmbeddingsEmulator) -> Iterator[Settings]:  # noqa: F811
    """Everything allowed to go out on its own (autopilot on, any confidence), embeddings from the loopback emulator."""
    settings.AUTOPILOT_ENABLED = True
    settings.AUTO_SEND_MIN_CONFIDENCE = 0.0
    settings.EMBEDDINGS_PROVIDER = "openai"
    settings.OPENAI_BASE_URL = embeddings.url + "/v1"
    reset_caches()
    yield settings
    reset_caches()


def customer_messages(factory: sessionmaker[Session], ticket_ids: list[int] | None = None) -> list[tuple[int, str]]:
    """(ticket id, kind) of every queued message that is not an acknowledgement."""
    query = select(OutboxMessage.ticket_id, OutboxMessage.kind).where(OutboxMessage.kind != MessageKind.ACKNOWLEDGEMENT)
    if ticket_ids is not None:
        query = query.where(OutboxMessage.ticket_id.in_(ticket_ids))
    with factory() as session:
        return [(ticket_id, kind) for ticket_id, kind in session.execute(query)]
