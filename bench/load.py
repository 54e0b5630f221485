"""Load and soak: ingest → analysis by an emulated OpenAI-compatible model → outbox, with 1, 2 and 4 engines.

For each engine count a scratch PostgreSQL database gets `--tickets` demo tickets at once (in pages of
`--page`) while that many `python -m engine run` processes work them with LLM_PROVIDER=openai against the
chat-completions emulator (each call answered after `--latency` seconds) and the database transport, autopilot
on. Printed: tickets/hour until every ticket is analysed and its messages sent, p50/p95 time to first response
(ticket created → first message other than the acknowledgement sent, or → acknowledgement when no other went
out), RSS of each engine process sampled every `--sample-seconds`, and the database size.
`--soak-minutes M` then feeds `--soak-rate` tickets/hour for M minutes and prints every memory sample and the
RSS trend of the second half, to show whether memory stays flat.

    .venv/bin/python bench/load.py --tickets 2000 --soak-minutes 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import drop_postgres, fresh_postgres, start_engines  # noqa: E402
from connectors.base import TicketIn  # noqa: E402
from connectors.demo import load_sample, to_ticket_in  # noqa: E402
from engine.core.db import make_engine, make_session_factory, transaction, upgrade_database  # noqa: E402
from engine.core.enums import MessageKind, OutboxState  # noqa: E402
from engine.core.models import Analysis, OutboxMessage, Ticket  # noqa: E402
from engine.core.settings import Settings, load_settings  # noqa: E402
from engine.intake.ingest import ingest  # noqa: E402
from tests.emulators.openai_api import OpenAIEmulator, desk_model  # noqa: E402

MB = 1024 * 1024


class Feed:
    """Distinct demo tickets without end: the bundled sample, cycled with new ids."""

    def __init__(self) -> None:
        self.sample = [record for record in load_sample() if record["kind"] == "ticket" and not record.get("headers")]
        self.issued = 0

    def take(self, count: int) -> list[TicketIn]:
        start, self.issued = self.issued, self.issued + count
        size = len(self.sample)
        return [to_ticket_in(self.sample[n % size], cycle=n // size + 1) for n in range(start, self.issued)]


@dataclass
class Memory:
    """RSS of each engine process (children included), sampled over time."""

    processes: list[subprocess.Popen[bytes]]
    began: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, list[float]]] = field(default_factory=list)

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.began, [_rss_mb(worker.pid) for worker in self.processes]))

    def series(self, every: int = 1) -> str:
        rows = self.samples[::every] + ([self.samples[-1]] if (len(self.samples) - 1) % every else [])
        return "\n".join(f"    t={t:6.0f}s  " + "  ".join(f"{mb:6.1f}" for mb in rss) for t, rss in rows)


def _rss_mb(pid: int) -> float:
    try:
        process = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / MB
    except psutil.NoSuchProcess:
        return float("nan")


def engine_environment(url: str, workdir: Path, emulator: OpenAIEmulator, args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": url,
        "DATA_DIR": str(workdir),
        "DEMO_FEED_ENABLED": "false",
        "LOG_LEVEL": "ERROR",
        "OUTBOX_TRANSPORT": "database",
        "LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": emulator.openai_base_url,
        "OPENAI_API_KEY": emulator.api_key,
        "LLM_TIMEOUT_SECONDS": "60",
        "ANALYSIS_CONCURRENCY": str(args.concurrency),
        "PROCESS_BATCH_SIZE": str(args.batch),
        "PROCESS_INTERVAL_SECONDS": "0.5",
        "OUTBOX_INTERVAL_SECONDS": "0.5",
        "AUTOPILOT_ENABLED": "true",
        "AUTO_SEND_MIN_CONFIDENCE": "0.5",
        "MAX_AUTOMATED_EMAILS_PER_HOUR": "1000000",
    }


def stop_engines(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def ingest_items(factory: sessionmaker[Session], settings: Settings, items: list[TicketIn], page: int) -> None:
    for offset in range(0, len(items), page):
        with transaction(factory) as session:
            for item in items[offset : offset + page]:
                ingest(session, item, settings)


def finished(factory: sessionmaker[Session], tickets: int) -> bool:
    """Every ticket analysed and released, and no message waiting to go out."""
    with factory() as session:
        analysed = session.scalar(select(func.count(func.distinct(Analysis.ticket_id))))
        queued = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.pending_since.is_not(None)))
        unsent = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.state.in_((OutboxState.PENDING, OutboxState.SENDING)))
        )
    return analysed >= tickets and queued == 0 and unsent == 0


def first_response_seconds(factory: sessionmaker[Session]) -> tuple[list[float], int]:
    """Per ticket, created → first non-acknowledgement sent (or → acknowledgement); and how many got an answer."""
    sent = {}
    with factory() as session:
        rows = session.execute(
            select(Ticket.id, Ticket.created_at, OutboxMessage.kind, OutboxMessage.sent_at)
            .join(OutboxMessage, OutboxMessage.ticket_id == Ticket.id)
            .where(OutboxMessage.state == OutboxState.SENT)
        ).all()
    for ticket_id, created, kind, sent_at in rows:
        answer = kind != MessageKind.ACKNOWLEDGEMENT
        current = sent.get(ticket_id)
        if current is None or (answer, -sent_at.timestamp()) > (current[0], -current[1].timestamp()):
            sent[ticket_id] = (answer, sent_at, created)
    delays = [(sent_at - created).total_seconds() for _, sent_at, created in sent.values()]
    return delays, sum(answer for answer, _, _ in sent.values())


def database_size(engine: Engine) -> str:
    with engine.connect() as connection:
        return str(connection.execute(text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar())


def wait_for(
    condition: Callable[[], bool], workers: list[subprocess.Popen[bytes]], memory: Memory, every: float
) -> None:
    """Poll `condition`, sampling memory every `every` seconds; an engine that dies ends the run."""
    next_sample = time.monotonic()
    while not condition():
        if any(worker.poll() is not None for worker in workers):
            raise RuntimeError("an engine process died; rerun with LOG_LEVEL=INFO to see why")
        if time.monotonic() >= next_sample:
            memory.sample()
            next_sample += every
        time.sleep(0.5)
    memory.sample()


def scratch_run(
    args: argparse.Namespace,
    emulator: OpenAIEmulator,
    run: Callable[[Engine, sessionmaker[Session], Settings, dict[str, str], Path], None],
) -> None:
    """A fresh PostgreSQL database and data folder for one run, dropped afterwards."""
    url, name = fresh_postgres(args.postgres)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            workdir = Path(scratch)
            engine = make_engine(url)
            upgrade_database(engine)
            settings = load_settings(_env_file=None, DATABASE_URL=url, DATA_DIR=workdir, DEMO_FEED_ENABLED=False)
            try:
                run(
                    engine,
                    make_session_factory(engine),
                    settings,
                    engine_environment(url, workdir, emulator, args),
                    workdir,
                )
            finally:
                engine.dispose()
    finally:
        drop_postgres(args.postgres, name)


def throughput(args: argparse.Namespace, emulator: OpenAIEmulator, processes: int) -> None:
    def run(
        engine: Engine, factory: sessionmaker[Session], settings: Settings, env: dict[str, str], workdir: Path
    ) -> None:
        items = Feed().take(args.tickets)
        workers = start_engines(processes, env, workdir, "load")
        memory = Memory(workers)
        calls_before = len(emulator.requests)
        began = time.monotonic()
        try:
            ingest_items(factory, settings, items, args.page)
            wait_for(lambda: finished(factory, args.tickets), workers, memory, args.sample_seconds)
            elapsed = time.monotonic() - began
        finally:
            stop_engines(workers)
        delays, answered = first_response_seconds(factory)
        quantiles = statistics.quantiles(delays, n=100)
        calls = len(emulator.requests) - calls_before
        print(
            f"{processes:>7}{args.tickets / elapsed * 3600:>14,.0f}{quantiles[49]:>10.1f}{quantiles[94]:>10.1f}"
            f"{answered:>10}{calls / args.tickets:>12.1f}{elapsed:>9.0f}{database_size(engine):>10}",
            flush=True,
        )
        every = max(1, len(memory.samples) // 8)
        print(f"    RSS MB per engine over time ({len(memory.samples)} samples):\n{memory.series(every)}")

    scratch_run(args, emulator, run)


def soak(args: argparse.Namespace, emulator: OpenAIEmulator) -> None:
    def run(
        engine: Engine, factory: sessionmaker[Session], settings: Settings, env: dict[str, str], workdir: Path
    ) -> None:
        feed = Feed()
        workers = start_engines(args.soak_engines, env, workdir, "load")
        memory = Memory(workers)
        began = time.monotonic()
        end = began + args.soak_minutes * 60
        next_sample = began
        try:
            while time.monotonic() < end:
                due = int((time.monotonic() - began) * args.soak_rate / 3600) + 1 - feed.issued
                if due > 0:
                    ingest_items(factory, settings, feed.take(due), args.page)
                if any(worker.poll() is not None for worker in workers):
                    raise RuntimeError("an engine process died during the soak")
                if time.monotonic() >= next_sample:
                    memory.sample()
                    with emulator.lock:
                        emulator.requests.clear()
                        emulator.bodies.clear()
                    next_sample += args.sample_seconds
                time.sleep(0.2)
            memory.sample()
            with factory() as session:
                analysed = session.scalar(select(func.count(func.distinct(Analysis.ticket_id))))
        finally:
            stop_engines(workers)
        print(
            f"\nsoak: {args.soak_minutes:g} min at {args.soak_rate:,.0f} tickets/hour, {args.soak_engines} engines: "
            f"{feed.issued} arrived, {analysed} analysed, database {database_size(engine)}"
        )
        print(f"    RSS MB per engine, every {args.sample_seconds:g} s:\n{memory.series()}")
        half = memory.samples[len(memory.samples) // 2 :]
        times = [t for t, _ in half]
        for n in range(args.soak_engines):
            slope = statistics.linear_regression(times, [rss[n] for _, rss in half]).slope * 60
            print(
                f"    engine {n}: {half[0][1][n]:.1f} → {half[-1][1][n]:.1f} MB over the second half, "
                f"trend {slope:+.2f} MB/min"
            )

    scratch_run(args, emulator, run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--engines", default="1,2,4", help="engine process counts to compare, comma-separated")
    parser.add_argument("--latency", type=float, default=0.5, help="seconds the emulated model takes per call")
    parser.add_argument("--concurrency", type=int, default=16, help="ANALYSIS_CONCURRENCY of each engine")
    parser.add_argument("--batch", type=int, default=50, help="PROCESS_BATCH_SIZE of each engine")
    parser.add_argument("--page", type=int, default=200, help="tickets per ingest transaction (a poll page)")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="how often engine RSS is sampled")
    parser.add_argument("--soak-minutes", type=float, default=0, help="then run a steady arrival rate this long")
    parser.add_argument("--soak-rate", type=float, default=3600, help="arrivals per hour during the soak")
    parser.add_argument("--soak-engines", type=int, default=2)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="admin URL of a PostgreSQL server; a scratch database is created and dropped per run",
    )
    args = parser.parse_args()
    emulator = OpenAIEmulator(responder=desk_model, delay=args.latency)
    emulator.start()
    try:
        print(
            f"{args.tickets:,} demo tickets at once; model latency {args.latency:g} s per call, ANALYSIS_CONCURRENCY "
            f"{args.concurrency}, batch {args.batch}; database transport, autopilot on; {os.cpu_count()} cores"
        )
        print(
            f"{'engines':>7}{'tickets/hour':>14}{'ttfr p50':>10}{'ttfr p95':>10}{'answered':>10}"
            f"{'calls/tkt':>12}{'wall s':>9}{'db size':>10}"
        )
        for processes in (int(n) for n in args.engines.split(",")):
            throughput(args, emulator, processes)
        if args.soak_minutes:
            soak(args, emulator)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
