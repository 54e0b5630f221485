"""Poll 10,000 incidents from the ServiceNow emulator and 10,000 messages from the Graph emulator, then backfill
10,000 incidents from a least-privilege ServiceNow instance through the real ingest and pipeline.

Prints items/s and peak Python memory (tracemalloc) for each; run with `.venv/bin/python -m bench.connectors`.
The backfill: the attachment table is refused (404 "Invalid table", as ACLs make it), 30 % of the incidents are
already resolved or closed (history), and after the poll one pipeline run claims what needs work; it prints
items/s, tickets created, history stored and acknowledgements queued (the goal for history: none).
The emulators run in this process on 127.0.0.1, so the figures include their share of the two cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import func, select

from connectors.graph_mail import GraphMailSource
from connectors.servicenow import ServiceNowSource
from engine.core.db import make_engine, make_session_factory, upgrade_database
from engine.core.enums import MessageKind
from engine.core.models import OutboxMessage, Ticket
from engine.core.settings import Settings, load_settings
from engine.jobs import poll_source
from engine.pipeline import claim_pending_tickets
from tests.emulators.graph import GraphEmulator, IdentityEmulator, graph_values
from tests.emulators.servicenow import ServiceNowEmulator
from tests.emulators.tls import make_certificate


def measure(name: str, count: int, poll: Callable[[], Iterable[object]]) -> None:
    tracemalloc.start()
    began = time.perf_counter()
    seen = sum(len(page.items) for page in poll())  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == count, f"{name}: polled {seen} of {count}"
    rate = seen / elapsed
    print(f"{name:<11} {seen:>6} items in {elapsed:6.2f}s = {rate:8.0f} items/s, peak {peak / 2**20:6.1f} MiB")


def backfill(base: Settings, count: int, workdir: Path) -> None:
    """A first poll of a whole incident table with a refused attachment table and closed history."""
    snow = ServiceNowEmulator(restricted={"sys_attachment": 404}).start()
    caller = snow.add_user("caller@example.com", "Casey")
    for n in range(count):
        closed = {"state": "7", "close_code": "Solved", "close_notes": "Replaced the cable."} if n % 10 < 3 else {}
        snow.add_incident(f"Incident {n}", caller=caller, description=f"Something broke, case {n}. " * 5, **closed)
    settings = base.model_copy(
        update={
            "DATA_DIR": workdir,
            "DATABASE_URL": f"sqlite:///{workdir / 'backfill.db'}",
            "SNOW_API_URL": f"{snow.url}/api/now/table/incident",
            "SNOW_AUTH_USERNAME": snow.username,
            "SNOW_AUTH_PASSWORD": SecretStr(snow.password),
            "SNOW_START_AT": "2000-01-01 00:00:00",
            "PROCESS_BATCH_SIZE": count,
        }
    )
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    began = time.perf_counter()
    counts = poll_source(engine, factory, settings, ServiceNowSource(settings))
    elapsed = time.perf_counter() - began
    claims = claim_pending_tickets(factory, settings, worker="bench")
    with factory() as session:
        tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
        acks = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == MessageKind.ACKNOWLEDGEMENT)
        )
        history_acks = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .join(Ticket, Ticket.id == OutboxMessage.ticket_id)
            .where(Ticket.pending_since.is_(None), Ticket.claim_token.is_(None), Ticket.status == "Closed")
        )
    engine.dispose()
    snow.stop()
    print(
        f"servicenow backfill {count} incidents (attachments refused, 30 % closed): {elapsed:6.2f}s = "
        f"{count / elapsed:6.0f} items/s; {tickets} tickets ({dict(counts)}); {len(claims)} claimed for work; "
        f"{acks} acknowledgements queued, {history_acks} of them to history"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    base: Settings = load_settings(_env_file=None, DEMO_FEED_ENABLED=False, ENGINE_ENABLED=False)
    base = base.model_copy(update={"CONNECTOR_PAGE_SIZE": args.page_size})

    snow = ServiceNowEmulator().start()
    caller = snow.add_user("caller@example.com", "Casey")
    for n in range(args.count):
        snow.add_incident(f"Incident {n}", caller=caller, description=f"Something broke, case {n}. " * 5)
    settings = base.model_copy(
        update={
            "SNOW_API_URL": f"{snow.url}/api/now/table/incident",
            "SNOW_AUTH_USERNAME": snow.username,
            "SNOW_AUTH_PASSWORD": SecretStr(snow.password),
            "SNOW_START_AT": "2000-01-01 00:00:00",
        }
    )
    measure("servicenow", args.count, lambda: ServiceNowSource(settings).poll(None))
    snow.stop()

    ca, cert, key = make_certificate(Path(tempfile.mkdtemp()))
    identity = IdentityEmulator(certificate=(cert, key)).start()
    graph = GraphEmulator(identity=identity).start()
    for n in range(args.count):
        graph.deliver(f"user{n}@example.com", f"Question {n}", f"Body of question {n}. " * 5)
    settings = base.model_copy(update=graph_values(identity, graph, ca))
    measure("outlook", args.count, lambda: GraphMailSource(settings).poll(None))
    graph.stop()
    identity.stop()

    backfill(base, args.count, Path(tempfile.mkdtemp()))


if __name__ == "__main__":
    main()
