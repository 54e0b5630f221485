"""End-to-end throughput of our own overhead: ingest → claim → acknowledge → analyse (none) → deliver.

Ingests N demo tickets (the bundled sample, cycled with distinct ids) in pages of `--page` while 1 or 2
`python -m engine run` processes work the queue with the database transport, and prints tickets/hour
and p50/p95 seconds from ingest to acknowledgement sent. No LLM: this is the engine's own cost.

    .venv/bin/python bench/pipeline.py --tickets 10000 --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import drop_postgres, fresh_postgres, start_engines  # noqa: E402
from connectors.demo import load_sample, to_ticket_in  # noqa: E402
from engine.core.db import make_engine, make_session_factory, transaction, upgrade_database  # noqa: E402
from engine.core.enums import MessageKind, OutboxState  # noqa: E402
from engine.core.models import OutboxMessage, Ticket  # noqa: E402
from engine.core.settings import load_settings  # noqa: E402
from engine.intake.ingest import ingest  # noqa: E402


def demo_items(count: int) -> list:
    sample = [record for record in load_sample() if record["kind"] == "ticket" and not record.get("headers")]
    return [to_ticket_in(sample[n % len(sample)], cycle=n // len(sample) + 1) for n in range(count)]


def run(url: str, processes: int, tickets: int, page: int, rate: float, workdir: Path) -> dict[str, float]:
    engine = make_engine(url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    settings = load_settings(_env_file=None, DATABASE_URL=url, DATA_DIR=workdir, DEMO_FEED_ENABLED=False)
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "DATA_DIR": str(workdir),
        "DEMO_FEED_ENABLED": "false",
        "OUTBOX_TRANSPORT": "database",
        "LOG_LEVEL": "WARNING",
        "PROCESS_INTERVAL_SECONDS": "0.5",
        "OUTBOX_INTERVAL_SECONDS": "0.5",
        "PROCESS_BATCH_SIZE": "200",
        "MAX_AUTOMATED_EMAILS_PER_HOUR": "1000000",
    }
    workers = start_engines(processes, env, workdir, "bench")
    items = demo_items(tickets)
    started = time.monotonic()
    try:
        for offset in range(0, tickets, page):
            if rate:
                time.sleep(max(0.0, started + offset / rate * 3600 - time.monotonic()))
            with transaction(factory) as session:
                for item in items[offset : offset + page]:
                    ingest(session, item, settings)
        while True:
            with factory() as session:
                sent = session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.kind == MessageKind.ACKNOWLEDGEMENT, OutboxMessage.state == OutboxState.SENT)
                )
            if sent >= tickets:
                break
            if any(worker.poll() is not None for worker in workers):
                raise RuntimeError("an engine process died")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    with factory() as session:
        delays = [
            (sent_at - created).total_seconds()
            for created, sent_at in session.execute(
                select(Ticket.created_at, OutboxMessage.sent_at)
                .join(OutboxMessage, OutboxMessage.ticket_id == Ticket.id)
                .where(OutboxMessage.kind == MessageKind.ACKNOWLEDGEMENT)
            )
        ]
    engine.dispose()
    quantiles = statistics.quantiles(delays, n=100)
    return {
        "tickets_per_hour": tickets / elapsed * 3600,
        "p50": quantiles[49],
        "p95": quantiles[94],
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--page", type=int, default=100, help="tickets per ingest transaction (a poll page)")
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="admin URL of a PostgreSQL server; a scratch database is created and dropped",
    )
    parser.add_argument("--rate", type=float, default=0, help="arrivals per hour (0: all at once, a burst)")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    arrival = f"arriving at {args.rate:,.0f}/hour" if args.rate else "arriving all at once"
    print(
        f"{args.tickets} demo tickets {arrival} in pages of {args.page}; database transport, no LLM; "
        f"{os.cpu_count()} cores"
    )
    print(f"{'database':<12}{'engines':>8}{'tickets/hour':>14}{'ack p50 s':>11}{'ack p95 s':>11}{'wall s':>9}")
    configurations = ([] if args.skip_sqlite else [("sqlite", 1)]) + [("postgresql", 1), ("postgresql", 2)]
    for database, processes in configurations:
        with tempfile.TemporaryDirectory() as scratch:
            workdir = Path(scratch)
            if database == "sqlite":
                result = run(
                    f"sqlite:///{workdir / 'bench.db'}", processes, args.tickets, args.page, args.rate, workdir
                )
            else:
                url, name = fresh_postgres(args.postgres)
                try:
                    result = run(url, processes, args.tickets, args.page, args.rate, workdir)
                finally:
                    drop_postgres(args.postgres, name)
        print(
            f"{database:<12}{processes:>8}{result['tickets_per_hour']:>14,.0f}{result['p50']:>11.2f}"
            f"{result['p95']:>11.2f}{result['seconds']:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
