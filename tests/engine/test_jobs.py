import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import PolledPage, RejectedItem
from connectors.demo import DemoSource, load_sample
from engine.analysers.retrieval_analyser import RetrievalAnalyser
from engine.core.db import exclusive
from engine.core.models import Analysis, IngestError, JobStatus, SourceCursor, Ticket
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.jobs import calibrate_knowledge_if_changed, poll_source, run_job
from engine.pipeline import process_pending
from kb.indexer import add_document
from kb.store import reset_caches
from tests.factories import ticket_in
from tests.kb.embeddings_emulator import EmbeddingsEmulator
from tests.waiting import wait_until

ARTICLES = Path(__file__).resolve().parents[2] / "connectors" / "demo_data" / "kb"


class ListSource:
    """A source serving fixed pages; the cursor is the number of pages already served."""

    name = "listed"

    def __init__(self, pages: list[PolledPage]) -> None:
        self.pages = pages
        self.asked_from: list[str | None] = []

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        self.asked_from.append(cursor)
        yield from self.pages[int(cursor or 0) :]


def test_pages_commit_with_their_cursor_and_a_restart_resumes(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    pages = [PolledPage([ticket_in(), ticket_in()], "1"), PolledPage([ticket_in()], "2")]
    source = ListSource(pages)
    assert poll_source(engine, session_factory, settings, source) == {"created": 3}
    assert poll_source(engine, session_factory, settings, ListSource(pages)) == {}
    with session_factory() as session:
        assert session.get(SourceCursor, "listed").cursor == "2"
        assert session.scalar(select(func.count()).select_from(Ticket)) == 3


def test_an_unreadable_item_is_kept_and_the_rest_of_the_page_goes_on(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    broken = RejectedItem(external_id="INC9", error="caller has no e-mail address", payload='{"number": "INC9"}')
    source = ListSource([PolledPage([ticket_in()], "1", rejected=[broken])])
    assert poll_source(engine, session_factory, settings, source) == {"created": 1, "errors": 1}
    with session_factory() as session:
        [error] = session.scalars(select(IngestError)).all()
        assert (error.source, error.external_id, error.payload) == ("listed", "INC9", '{"number": "INC9"}')


def test_a_poll_already_running_elsewhere_is_skipped(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with exclusive(engine, "poll:listed") as held:
        assert held
        assert poll_source(engine, session_factory, settings, ListSource([])) == {"skipped": 1}


def test_job_runs_and_failures_are_recorded(session_factory: sessionmaker[Session]) -> None:
    def failing() -> None:
        raise ConnectionError("ServiceNow unreachable")

    run_job(session_factory, "w1", "poll_x", lambda: {"created": 2})
    run_job(session_factory, "w1", "poll_x", failing)
    with session_factory() as session:
        status = session.get(JobStatus, ("w1", "poll_x"))
        assert (status.runs, status.failures, status.last_ok) == (2, 1, False)
        assert status.last_error == "ConnectionError: ServiceNow unreachable"


def test_demo_feed_replays_the_sample_at_its_pace(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    source = DemoSource(first_batch=20, batch=2)
    first = poll_source(engine, session_factory, settings, source)
    second = poll_source(engine, session_factory, settings, source)
    assert sum(first.values()) == 20
    assert sum(second.values()) == 2
    with session_factory() as session:
        assert session.get(SourceCursor, "demo").cursor == "22"


def test_demo_sample_is_varied_and_threads() -> None:
    sample = load_sample()
    ids = {record["id"] for record in sample}
    assert len(sample) == len(ids) >= 300
    assert {record["expected_action"] for record in sample} >= {"resolve", "ask", "escalate"}
    replies = [record for record in sample if record["kind"] == "reply"]
    assert replies
    assert all(record["reply_to"] in ids for record in replies)
    assert all(record["requester_email"].endswith(".example") for record in sample)


def test_tickets_are_analysed_while_a_calibration_is_running(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """The calibration is caught inside its embedding call (the emulator holds it); process_pending claims, analyses
    and commits a ticket meanwhile, with the previous calibration, and returns."""
    reset_caches()
    with EmbeddingsEmulator() as emulator:
        remote = settings.model_copy(
            update={"EMBEDDINGS_PROVIDER": "openai", "OPENAI_BASE_URL": emulator.url, "KB_READY_WAIT_SECONDS": 900}
        )
        add_document(session_factory, remote, "vpn-setup.md", (ARTICLES / "vpn-setup.md").read_bytes())
        assert calibrate_knowledge_if_changed(session_factory, remote) == {"calibrated": 1}
        add_document(session_factory, remote, "reset-password.md", (ARTICLES / "reset-password.md").read_bytes())
        with session_factory.begin() as session:
            ingest(session, ticket_in(subject="VPN", body="How do I set up the VPN on my laptop?"), remote)
        emulator.hold_next_request()
        outcome: list[dict[str, int]] = []
        running = threading.Thread(
            target=lambda: outcome.append(calibrate_knowledge_if_changed(session_factory, remote)), daemon=True
        )
        running.start()
        wait_until(emulator.holding.is_set, timeout=60, what="the calibration inside its embedding call")

        report = process_pending(session_factory, remote, RetrievalAnalyser(session_factory, remote), worker="w")

        assert emulator.holding.is_set(), "the calibration was still running"
        assert report.processed == 1
        with session_factory() as session:
            assert session.scalar(select(func.count()).select_from(Analysis)) == 1
        emulator.release.set()
        running.join(timeout=60)
        assert outcome == [{"calibrated": 1}]
    reset_caches()
