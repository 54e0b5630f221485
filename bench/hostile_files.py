"""Hostile files benchmark: what each file of tests/corpus/hostile_files.py costs when read in the bounded child
(kb/sandbox.py), and how long the ordinary tickets of the same batch wait for their analysis.

1. start-up: a small text file read in the child (forked from the reader server) vs. in this process vs. a fresh
   interpreter per file, the alternative design (`python -c "import kb.extract"`);
2. per hostile file at the bounds given (defaults: the product's, 20 s, 512 MB, 5,000,000 characters): its size,
   the extraction's wall time, the child's peak resident memory (its own or its OCR helper's; "-" when the child
   died of its own limit before it could be asked), the status and the bound that ended it; with `--unbounded S`,
   the same file read with no memory or text limit and S seconds, for what the bounds save. The last row,
   hang.txt, is read by a reader that never returns (tests/corpus/hostile_files.py: read_forever);
3. per hostile file, a batch through engine.pipeline.process_pending with the engine's AnalysisPool (SQLite, a
   fixed analyser): one e-mail ticket carrying the file and `--normal` tickets with an ordinary log each, claimed
   together; the time from the claim until the last ordinary ticket's analysis was committed, and until the
   hostile one's was.

    .venv/bin/python bench/hostile_files.py [--timeout 20] [--memory-mb 512] [--max-characters 5000000]
        [--normal 3] [--only NAME ...] [--unbounded 180] [--skip-batches]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from connectors.base import AttachmentIn  # noqa: E402
from engine.core.analysis import AnalysisResult, TicketSnapshot  # noqa: E402
from engine.core.db import make_engine, make_session_factory, transaction, upgrade_database  # noqa: E402
from engine.core.desk_policy import DeskPolicy  # noqa: E402
from engine.core.models import Analysis, Attachment, utcnow  # noqa: E402
from engine.core.settings import Settings, load_settings  # noqa: E402
from engine.intake.ingest import ingest  # noqa: E402
from engine.pipeline import AnalysisPool, process_pending  # noqa: E402
from kb import sandbox  # noqa: E402
from kb.extract import extract  # noqa: E402
from tests.corpus.hostile_files import HANG_FILE, HOSTILE_FILES, unique_seconds  # noqa: E402
from tests.factories import email_in  # noqa: E402

READ_FOREVER = "tests.corpus.hostile_files:read_forever"
"""Reads every file as the product does, but never returns on HANG_FILE."""
SMALL = b"# Printer jams\n\n1. Open tray 2 and remove the jammed sheet.\n2. Fan the paper stack.\n"
NORMAL_LOG = b"2026-12-01 09:00:01 E42 paper jam in tray 2\n" * 40


class Escalates:
    """A fixed analyser: the bench measures reading and committing, not analysis."""

    name = "bench"

    def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
        return AnalysisResult(analyser=self.name, decision="escalate", reason="bench")


def megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def start_up(limits: sandbox.Limits, runs: int) -> None:
    options = {"max_bytes": 25 * 2**20}
    began = time.perf_counter()
    sandbox.read_bounded("first.md", SMALL, limits, options)
    first = time.perf_counter() - began
    child = []
    for _ in range(runs):
        began = time.perf_counter()
        sandbox.read_bounded("small.md", SMALL, limits, options)
        child.append((time.perf_counter() - began) * 1000)
    inside = []
    for _ in range(runs):
        began = time.perf_counter()
        extract("small.md", SMALL, **options)
        inside.append((time.perf_counter() - began) * 1000)
    fresh = []
    for _ in range(max(3, runs // 4)):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import kb.extract"], cwd=ROOT, check=True)
        fresh.append((time.perf_counter() - began) * 1000)
    print("start-up cost of one file (a 90-byte Markdown file)")
    print(f"  reader server started with the first file: {first:.2f} s")
    p50, most = statistics.median(child), max(child)
    print(f"  in a child of the reader server, p50 / max of {runs}: {p50:.0f} / {most:.0f} ms")
    print(f"  in this process, p50: {statistics.median(inside):.1f} ms")
    print(f"  a fresh interpreter that only imports kb.extract, p50: {statistics.median(fresh):.0f} ms")


def per_file(names: list[str], files: dict[str, bytes], limits: sandbox.Limits, unbounded: float) -> None:
    options = {"max_bytes": 25 * 2**20}
    print(
        f"\nper hostile file, bounds {limits.seconds:g} s / {limits.memory_mb:,} MB / "
        f"{limits.max_characters:,} characters"
        + (f"; unbounded: {unbounded:g} s, no memory or text limit" if unbounded else "")
    )
    head = f"{'file':<22}{'bytes':>12}{'s':>7}{'peak MB':>9}  {'outcome':<28}"
    print(head + (f"{'unbounded s':>13}{'peak MB':>9}  outcome" if unbounded else ""))
    for name in names:
        reader = READ_FOREVER if name == HANG_FILE else None
        outcome = sandbox.read_bounded(name, files[name], limits, options, reader)
        status = outcome.extraction.status + (f" ({outcome.limit})" if outcome.limit else "")
        line = (
            f"{name:<22}{len(files[name]):>12,}{outcome.seconds:>7.1f}{megabytes(outcome.peak_bytes):>9}  {status:<28}"
        )
        if unbounded:
            free = sandbox.read_bounded(name, files[name], sandbox.Limits(unbounded, 1 << 20, 10**12), options, reader)
            free_status = free.extraction.status + (f" ({free.limit})" if free.limit else "")
            line += f"{free.seconds:>13.1f}{megabytes(free.peak_bytes):>9}  {free_status}"
        print(line, flush=True)


def batch(
    factory: sessionmaker[Session], settings: Settings, name: str, data: bytes, normal: int
) -> tuple[float, float, str]:
    """Seconds from the claim to the last ordinary ticket's commit and to the hostile ticket's; its file's status."""
    with transaction(factory) as session:

        def ticket(filename: str, content: bytes) -> int:
            attachment = AttachmentIn(filename=filename, content_type="application/octet-stream", data=content)
            item = email_in(subject=f"Printer problem ({filename})", attachments=[attachment])
            return ingest(session, item, settings).ticket_id

        hostile = ticket(name, data)
        ordinary = [ticket(f"printer-{n}.log", NORMAL_LOG + str(n).encode()) for n in range(normal)]
    pool = AnalysisPool(factory, settings.ANALYSIS_CONCURRENCY, settings.PROCESS_BATCH_SIZE)
    claimed_at = utcnow()
    report = process_pending(factory, settings, Escalates(), worker="bench", pool=pool)
    assert report.claimed == normal + 1, report
    pool.wait_idle()
    pool.close()
    with factory() as session:
        committed = dict(session.execute(select(Analysis.ticket_id, Analysis.created_at)).all())
        status = session.scalar(select(Attachment.status).where(Attachment.ticket_id == hostile)) or ""

    def since_claim(ticket_id: int) -> float:
        return (committed[ticket_id].replace(tzinfo=None) - claimed_at.replace(tzinfo=None)).total_seconds()

    return max(since_claim(t) for t in ordinary), since_claim(hostile), status


def batches(names: list[str], files: dict[str, bytes], limits: sandbox.Limits, normal: int) -> None:
    print(f"\nbatches: each hostile file on one e-mail ticket, claimed with {normal} ordinary tickets (SQLite)")
    print(f"{'file':<22}{'ordinary done s':>16}{'hostile done s':>16}  attachment status")
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'bench.db'}"
        engine = make_engine(url)
        upgrade_database(engine)
        factory = make_session_factory(engine)
        settings = load_settings(
            _env_file=None,
            DATABASE_URL=url,
            DATA_DIR=Path(scratch),
            DEMO_FEED_ENABLED=False,
            ENGINE_ENABLED=False,
            KB_EXTRACT_TIMEOUT_SECONDS=limits.seconds,
            KB_EXTRACT_MEMORY_MB=limits.memory_mb,
            KB_EXTRACT_MAX_CHARACTERS=limits.max_characters,
        )
        try:
            for name in names:
                ordinary, hostile, status = batch(factory, settings, name, files[name], normal)
                print(f"{name:<22}{ordinary:>16.2f}{hostile:>16.2f}  {status}", flush=True)
        finally:
            engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=20.0, help="KB_EXTRACT_TIMEOUT_SECONDS")
    parser.add_argument("--memory-mb", type=int, default=512, help="KB_EXTRACT_MEMORY_MB")
    parser.add_argument("--max-characters", type=int, default=5_000_000, help="KB_EXTRACT_MAX_CHARACTERS")
    parser.add_argument("--normal", type=int, default=3, help="ordinary tickets in each batch")
    parser.add_argument("--only", nargs="*", choices=sorted([*HOSTILE_FILES, HANG_FILE]), help="these files only")
    parser.add_argument("--unbounded", type=float, default=0, help="also read each file without bounds, this long")
    parser.add_argument("--runs", type=int, default=20, help="small files read for the start-up figures")
    parser.add_argument("--skip-batches", action="store_true", help="no batches through the pipeline")
    args = parser.parse_args()
    limits = sandbox.Limits(args.timeout, args.memory_mb, args.max_characters)
    names = args.only or [*HOSTILE_FILES, HANG_FILE]
    files = {name: HOSTILE_FILES[name]() if name in HOSTILE_FILES else unique_seconds() for name in names}
    sandbox.READER = READ_FOREVER  # for the batches: the product's reader on every file but HANG_FILE
    start_up(limits, args.runs)
    per_file(names, files, limits, args.unbounded)
    if not args.skip_batches:
        batches(names, files, limits, args.normal)


if __name__ == "__main__":
    main()
