"""A built-in source that replays a bundled sample of support tickets at a steady pace, so a fresh install is alive.

The sample (`demo_data/tickets.jsonl`) was written for this project: fictional company, `.example`
addresses. It mixes answerable how-tos, vague reports, outages, replies to earlier tickets, automatic
mail and a few social-engineering attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from connectors.base import PolledPage
from engine.ingest import TicketIn
from engine.models import SourceCursor, utcnow
from engine.settings import Settings

SAMPLE = Path(__file__).resolve().parent / "demo_data" / "tickets.jsonl"
DEMO_DOMAIN = "demo.northwind-labs.example"


@cache
def load_sample(path: Path = SAMPLE) -> tuple[dict[str, Any], ...]:
    with path.open(encoding="utf-8") as lines:
        return tuple(json.loads(line) for line in lines if line.strip())


def to_ticket_in(record: dict[str, Any], *, cycle: int = 0) -> TicketIn:
    """One sample line as a source item; `cycle` makes distinct copies for load tests."""
    suffix = f"-c{cycle}" if cycle else ""
    own_id = f"{record['id']}{suffix}"
    parent = f"{record['reply_to']}{suffix}" if record.get("reply_to") else None
    is_email = record["kind"] == "reply" or record.get("channel") == "email"
    return TicketIn(
        source="demo",
        external_id=own_id,
        kind="email" if is_email else "ticket",
        requester_email=record["requester_email"],
        requester_name=record.get("requester_name"),
        subject=record["subject"],
        body=record["body"],
        priority=record.get("priority"),
        category=record.get("category"),
        updated_at=utcnow(),
        thread_id=parent or own_id,
        message_id=f"<{own_id}@{DEMO_DOMAIN}>",
        in_reply_to=f"<{parent}@{DEMO_DOMAIN}>" if parent else None,
        headers=record.get("headers", {}),
    )


class DemoSource:
    """Replays the sample: a first batch at once, then `batch` items per poll. The cursor is the next line."""

    name = "demo"

    def __init__(self, *, first_batch: int = 20, batch: int = 1, path: Path = SAMPLE) -> None:
        self.first_batch = first_batch
        self.batch = batch
        self.path = path

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        records = load_sample(self.path)
        start = int(cursor) if cursor else 0
        end = min(len(records), start + (self.first_batch if cursor is None else self.batch))
        if end > start:
            yield PolledPage(items=[to_ticket_in(record) for record in records[start:end]], cursor=str(end))


DEMO_KNOWLEDGE = Path(__file__).resolve().parent / "demo_data" / "kb"
SEEDED_MARKER = "demo:knowledge"


def seed_demo_knowledge(factory: sessionmaker[Session], settings: Settings) -> int:
    """Put the demo articles in the knowledge base once, so the demo tickets have something to be answered from.

    A marker in `source_cursors` records that it was done: documents a lead deletes stay deleted.
    """
    with factory() as session:
        if session.get(SourceCursor, SEEDED_MARKER) is not None:
            return 0
    from kb.indexer import add_document

    paths = sorted(DEMO_KNOWLEDGE.glob("*.md"))
    with factory() as session:
        for path in paths:
            add_document(session, settings, path.name, path.read_bytes(), uploaded_by="demo")
        session.merge(SourceCursor(source=SEEDED_MARKER, cursor=str(len(paths)), updated_at=utcnow()))
        session.commit()
    return len(paths)
