"""A built-in source that replays a bundled sample of support tickets at a steady pace, so a fresh install is alive.

The sample (`demo_data/tickets.jsonl`) was written for this project: fictional company, `.example`
addresses. It mixes answerable how-tos, vague reports, outages, replies to earlier tickets, automatic
mail and a few social-engineering attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field

from connectors.base import ConnectorSettings, PolledPage, TicketIn

NAME = "demo"
SAMPLE = Path(__file__).resolve().parent / "demo_data" / "tickets.jsonl"
KNOWLEDGE = Path(__file__).resolve().parent / "demo_data" / "kb"
"""The articles the demo tickets are answered from; the engine puts them in the knowledge base (engine/jobs.py)."""
COMPANY_DOMAINS = ("northwind-labs.example", "northwind-cloud.example")
"""The fictional company of the demo feed and its articles: the demo desk speaks for it."""
ALLOWED_DOMAINS = (*COMPANY_DOMAINS, "microsoft.com", "office.com", "draw.io")
"""What the demo articles link to: the company's own sites and the vendors its IT articles send people to."""
CONTACT_POINTS = (
    "+44 20 7946 4357",
    "security@northwind-labs.example",
    "phishing@northwind-labs.example",
    "scanner@northwind-labs.example",
    "sales-emea@northwind-labs.example",
    "support@northwind-cloud.example",
    "billing@northwind-cloud.example",
    "no-reply@northwind-cloud.example",
)
"""The demo company's service desk number and the addresses its articles give: the only ones its answers may name."""
DEMO_DOMAIN = "demo.northwind-labs.example"


class DemoSettings(ConnectorSettings):
    """The built-in demo feed that keeps a fresh install alive."""

    DEMO_FEED_ENABLED: bool = True
    DEMO_FEED_INTERVAL_SECONDS: float = Field(default=15.0, gt=0)
    DEMO_FEED_BATCH: int = Field(default=1, ge=1)
    DEMO_FEED_FIRST_BATCH: int = Field(default=20, ge=0)


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
        source=NAME,
        external_id=own_id,
        kind="email" if is_email else "ticket",
        requester_email=record["requester_email"],
        requester_name=record.get("requester_name"),
        subject=record["subject"],
        body=record["body"],
        priority=record.get("priority"),
        category=record.get("category"),
        updated_at=datetime.now(UTC),
        thread_id=parent or own_id,
        message_id=f"<{own_id}@{DEMO_DOMAIN}>",
        in_reply_to=f"<{parent}@{DEMO_DOMAIN}>" if parent else None,
        headers=record.get("headers", {}),
    )


def is_configured(settings: DemoSettings) -> bool:
    return settings.DEMO_FEED_ENABLED


def own_domains(settings: DemoSettings) -> tuple[str, ...]:
    """While the demo feed runs, the desk speaks for the demo company and may link where its articles link."""
    return ALLOWED_DOMAINS if settings.DEMO_FEED_ENABLED else ()


def contact_points(settings: DemoSettings) -> tuple[str, ...]:
    """While the demo feed runs, the demo company's phone number and addresses are the desk's own."""
    return CONTACT_POINTS if settings.DEMO_FEED_ENABLED else ()


class DemoSource:
    """Replays the sample: a first batch at once, then `batch` items per poll. The cursor is the next line."""

    name = NAME

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
