"""Analysis benchmark: per-ticket latency and tokens for each provider mode, and throughput with a slow model.

Builds a small knowledge base from connectors/demo_data/kb/*.md (local MiniLM embeddings), then:
1. analyses `--tickets` demo tickets one after another with LLM_PROVIDER=none (retrieval-only), openai and
   azure, the last two against the chat-completions emulator on 127.0.0.1 (no delay): latency p50/p95 and
   tokens per ticket (the emulator counts about 4 characters per token);
2. runs engine.pipeline.process_pending with the emulator answering after `--delay` seconds, at
   ANALYSIS_CONCURRENCY 1, 4 and 16, and prints tickets/hour: the engine must overlap the model's waits.

    .venv/bin/python bench/analysis.py [--tickets 20] [--delay 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from connectors.base import TicketIn  # noqa: E402
from connectors.demo import load_sample, to_ticket_in  # noqa: E402
from engine.analysers.llm_analyser import LlmAnalyser  # noqa: E402
from engine.analysers.retrieval_analyser import RetrievalAnalyser  # noqa: E402
from engine.core.analysis import Analyser, TicketSnapshot  # noqa: E402
from engine.core.db import make_engine, make_session_factory, transaction, upgrade_database  # noqa: E402
from engine.core.models import Ticket  # noqa: E402
from engine.core.settings import Settings, load_settings  # noqa: E402
from engine.intake.ingest import ingest  # noqa: E402
from engine.pipeline import process_pending  # noqa: E402
from kb.embed import go_offline  # noqa: E402
from kb.indexer import add_document  # noqa: E402
from tests.emulators.openai_api import OpenAIEmulator, desk_model  # noqa: E402

KB_FILES = ROOT / "connectors" / "demo_data" / "kb"
CONCURRENCY = (1, 4, 16)


def demo_items(count: int, cycle_offset: int = 0) -> list[TicketIn]:
    sample = [record for record in load_sample() if record["kind"] == "ticket" and not record.get("headers")]
    return [to_ticket_in(sample[n % len(sample)], cycle=cycle_offset + n // len(sample) + 1) for n in range(count)]


def build_kb(factory: sessionmaker[Session], settings: Settings) -> int:
    for path in sorted(KB_FILES.glob("*.md")):
        add_document(factory, settings, path.name, path.read_bytes(), uploaded_by="bench")
    return len(list(KB_FILES.glob("*.md")))


def ingest_all(factory: sessionmaker[Session], settings: Settings, items: list[TicketIn]) -> list[int]:
    with transaction(factory) as session:
        return [ingest(session, item, settings).ticket_id for item in items]


def snapshots(factory: sessionmaker[Session], ids: list[int]) -> list[TicketSnapshot]:
    """The tickets as analysers see them, taken off the queue so the throughput runs do not count them."""
    with transaction(factory) as session:
        tickets = session.scalars(select(Ticket).where(Ticket.id.in_(ids)).order_by(Ticket.id)).all()
        for ticket in tickets:
            ticket.pending_since = None
        return [TicketSnapshot.of(ticket, []) for ticket in tickets]


def per_ticket(analyser: Analyser, tickets: list[TicketSnapshot]) -> dict[str, Any]:
    """Latency and tokens per ticket, after one untimed analysis that loads the models and caches."""
    analyser.analyse(tickets[-1])
    latencies, tokens, decisions, errors = [], [], {}, 0
    for ticket in tickets:
        began = time.perf_counter()
        result = analyser.analyse(ticket)
        latencies.append((time.perf_counter() - began) * 1000)
        tokens.append(result.prompt_tokens + result.completion_tokens)
        decisions[result.decision] = decisions.get(result.decision, 0) + 1
        errors += result.error is not None
    quantiles = statistics.quantiles(latencies, n=20)
    return {
        "p50": statistics.median(latencies),
        "p95": quantiles[18],
        "tokens": statistics.mean(tokens),
        "decisions": ", ".join(f"{k} {v}" for k, v in sorted(decisions.items())),
        "errors": errors,
    }


def llm_settings(settings: Settings, emulator: OpenAIEmulator, provider: str, concurrency: int = 8) -> Settings:
    return settings.model_copy(
        update={
            "LLM_PROVIDER": provider,
            "OPENAI_BASE_URL": emulator.openai_base_url,
            "OPENAI_API_KEY": SecretStr(emulator.api_key),
            "AZURE_OPENAI_ENDPOINT": emulator.url,
            "AZURE_OPENAI_API_KEY": SecretStr(emulator.api_key),
            "AZURE_OPENAI_DEPLOYMENT": emulator.deployments[0],
            "ANALYSIS_CONCURRENCY": concurrency,
            "PROCESS_BATCH_SIZE": 500,
            "LLM_TIMEOUT_SECONDS": 30.0,
        }
    )


def throughput(
    factory: sessionmaker[Session], settings: Settings, emulator: OpenAIEmulator, concurrency: int, cycle: int
) -> tuple[int, float, int]:
    count = max(4, 4 * concurrency)
    configured = llm_settings(settings, emulator, "openai", concurrency)
    ingest_all(factory, configured, demo_items(count, cycle_offset=cycle))
    analyser = LlmAnalyser(factory, configured)
    calls_before = len(emulator.requests)
    began = time.perf_counter()
    processed = 0
    while processed < count:
        report = process_pending(factory, configured, analyser, worker="bench")
        if report.claimed == 0:
            break
        processed += report.processed
    elapsed = time.perf_counter() - began
    return processed, elapsed, len(emulator.requests) - calls_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=20, help="tickets per mode for the latency table")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the emulated model takes per call")
    args = parser.parse_args()
    go_offline()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        url = f"sqlite:///{workdir / 'bench.db'}"
        engine = make_engine(url)
        upgrade_database(engine)
        factory = make_session_factory(engine)
        settings = load_settings(
            _env_file=None, DATABASE_URL=url, DATA_DIR=workdir, DEMO_FEED_ENABLED=False, ENGINE_ENABLED=False
        )
        began = time.perf_counter()
        documents = build_kb(factory, settings)
        print(f"knowledge base: {documents} demo articles indexed in {time.perf_counter() - began:.1f} s")
        tickets = snapshots(factory, ingest_all(factory, settings, demo_items(args.tickets)))
        emulator = OpenAIEmulator(responder=desk_model).start()
        try:
            print(f"\nper ticket, {len(tickets)} demo tickets analysed one after another (emulator without delay)")
            print(f"{'mode':<10}{'p50 ms':>9}{'p95 ms':>9}{'tokens':>9}{'errors':>8}  decisions")
            modes: list[tuple[str, Analyser]] = [
                ("none", RetrievalAnalyser(factory, settings)),
                ("openai", LlmAnalyser(factory, llm_settings(settings, emulator, "openai"))),
                ("azure", LlmAnalyser(factory, llm_settings(settings, emulator, "azure"))),
            ]
            for mode, analyser in modes:
                row = per_ticket(analyser, tickets)
                print(
                    f"{mode:<10}{row['p50']:>9.0f}{row['p95']:>9.0f}{row['tokens']:>9.0f}{row['errors']:>8}"
                    f"  {row['decisions']}",
                    flush=True,
                )
            emulator.delay = args.delay
            print(f"\nthroughput with a {args.delay:g}-second model (openai mode, process_pending, SQLite)")
            print(f"{'concurrency':>11}{'tickets':>9}{'model calls':>13}{'wall s':>9}{'tickets/hour':>14}")
            for cycle, concurrency in enumerate(CONCURRENCY, start=100):
                processed, elapsed, model_calls = throughput(factory, settings, emulator, concurrency, cycle)
                rate = processed / elapsed * 3600
                print(f"{concurrency:>11}{processed:>9}{model_calls:>13}{elapsed:>9.1f}{rate:>14,.0f}", flush=True)
        finally:
            emulator.stop()
            engine.dispose()


if __name__ == "__main__":
    main()
