"""A fresh desk's first tickets wait, queued with the reason shown, until the knowledge base is indexed and
calibrated; then they are analysed from it, never escalated for "no evidence" nor counted as knowledge gaps."""

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.retrieval_analyser import RetrievalAnalyser
from engine.core.enums import TicketStatus
from engine.core.models import Analysis, KbDocument, OutboxMessage, Ticket, TimelineEvent, utcnow
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.jobs import calibrate_knowledge_if_changed
from engine.operators.actions import take_over
from engine.operators.queries import QueueFilter, queue_page
from engine.pipeline import process_pending
from engine.readiness import knowledge_wait_reason, stall_seconds
from kb.gaps import gap_tickets
from kb.indexer import add_document
from kb.store import reset_caches
from tests.factories import desk_operators, ticket_in

ARTICLES = Path(__file__).resolve().parents[2] / "connectors" / "demo_data" / "kb"
QUESTIONS = (
    ("Inviting colleagues", "How do I invite new users to our Northwind Cloud workspace?"),
    ("Password reset", "How do I reset my Northwind Labs password?"),
)


WAIT = timedelta(days=10)
"""The wait's bound in these tests: longer than any test runs on however busy a machine, so only a ticket put past it
on purpose is past it, and a document being read never counts as stuck (no assertion depends on speed)."""


def wait_for_knowledge(settings: Settings) -> None:
    settings.KB_READY_WAIT_SECONDS = settings.KB_INDEX_INTERVAL_SECONDS = WAIT.total_seconds()


def test_first_tickets_wait_for_the_first_calibration_then_are_answered_from_the_knowledge_base(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    reset_caches()
    wait_for_knowledge(settings)
    for name in ("invite-users-northwind-cloud.md", "reset-password.md"):
        add_document(session_factory, settings, name, (ARTICLES / name).read_bytes())
    with session_factory.begin() as session:
        for subject, body in QUESTIONS:
            ingest(session, ticket_in(subject=subject, body=body), settings)

    report = process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    assert report.claimed == 0
    with session_factory() as session:
        tickets = session.scalars(select(Ticket)).all()
        reason = "Waiting for the knowledge base: its first self-check (calibration) is running"
        assert [ticket.waiting_reason for ticket in tickets] == [reason, reason]
        assert {ticket.status for ticket in tickets} == {TicketStatus.NEW} and all(t.pending_since for t in tickets)
        assert session.scalars(select(Analysis)).all() == []
        rows, _ = queue_page(session, QueueFilter())
        assert [row["waiting"] for row in rows] == [reason, reason]
    process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    with session_factory() as session:
        waits = session.scalars(select(TimelineEvent.title).where(TimelineEvent.type == "waiting_for_knowledge")).all()
        assert waits == [reason, reason], "told once per ticket, not at every run"

    assert calibrate_knowledge_if_changed(session_factory, settings) == {"calibrated": 1}
    report = process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    assert report.processed == 2
    with session_factory() as session:
        analyses = session.scalars(select(Analysis)).all()
        assert len(analyses) == 2 and all(analysis.evidence for analysis in analyses)
        assert not any("no evidence" in (analysis.summary or "") for analysis in analyses)
        assert all(ticket.waiting_reason is None for ticket in session.scalars(select(Ticket)))
        gaps = gap_tickets(session, utcnow() - timedelta(hours=1))
        assert not any(gap.why == "no evidence" for gap in gaps)
    reset_caches()


def test_a_backlog_larger_than_a_batch_is_acknowledged_and_told_to_wait_in_full(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """Tickets already waiting for the knowledge base are not claimed again while it is not ready: each run reaches
    the next ones, so the newest ticket of a large backlog is acknowledged at once, not after the first batch's wait."""
    reset_caches()
    wait_for_knowledge(settings)
    settings.PROCESS_BATCH_SIZE = 2
    add_document(session_factory, settings, "reset-password.md", (ARTICLES / "reset-password.md").read_bytes())
    with session_factory.begin() as session:
        for number in range(5):
            ingest(session, ticket_in(subject=f"Password {number}", body="How do I reset my password?"), settings)
    analyser = RetrievalAnalyser(session_factory, settings)
    for _ in range(3):
        process_pending(session_factory, settings, analyser, worker="w")
    with session_factory() as session:
        assert all(ticket.waiting_reason for ticket in session.scalars(select(Ticket)))
        acknowledged = session.scalars(select(OutboxMessage.ticket_id).where(OutboxMessage.kind == "acknowledgement"))
        assert sorted(acknowledged) == sorted(session.scalars(select(Ticket.id)))

    with session_factory.begin() as session:  # the reason changes: the backlog is not claimed again to learn it
        session.add(KbDocument(filename="faq.md", status="pending"))
        newest = ingest(session, ticket_in(subject="Password 5", body="How do I reset it?"), settings).ticket_id
    process_pending(session_factory, settings, analyser, worker="w")
    with session_factory() as session:
        reasons = set(session.scalars(select(Ticket.waiting_reason)))
        assert reasons == {"Waiting for the knowledge base: 1 article still being read"}
        assert session.scalar(select(OutboxMessage.id).where(OutboxMessage.ticket_id == newest)) is not None
    with session_factory.begin() as session:
        for ticket in session.scalars(select(Ticket)):
            ticket.pending_since = utcnow() - WAIT - timedelta(seconds=1)
    report = process_pending(session_factory, settings, analyser, worker="w")
    assert report.processed == 2, "past the bound they are claimed again, a batch at a time"
    reset_caches()


def test_a_ticket_a_person_takes_over_while_it_waits_no_longer_shows_as_waiting(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    reset_caches()
    wait_for_knowledge(settings)
    add_document(session_factory, settings, "reset-password.md", (ARTICLES / "reset-password.md").read_bytes())
    with session_factory.begin() as session:
        first, second = (
            ingest(session, ticket_in(subject=subject, body="How do I reset my password?"), settings).ticket_id
            for subject in ("Password", "Password again")
        )
    process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    with session_factory.begin() as session:
        take_over(session, desk_operators(session_factory), first)
    with session_factory() as session:
        rows, _ = queue_page(session, QueueFilter())
        reason = "Waiting for the knowledge base: its first self-check (calibration) is running"
        assert {row["id"]: row["waiting"] for row in rows} == {first: "", second: reason}
    reset_caches()


def test_a_desk_without_articles_never_waits_and_a_ticket_waits_only_up_to_the_bound(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    wait_for_knowledge(settings)
    with session_factory() as session:
        assert knowledge_wait_reason(session, settings) is None, "an empty desk has nothing to wait for"
    with session_factory.begin() as session:
        ingest(session, ticket_in(subject="Printer", body="The printer on floor 3 jams."), settings)
    report = process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    assert report.processed == 1

    reset_caches()
    add_document(session_factory, settings, "printer-setup.md", (ARTICLES / "printer-setup.md").read_bytes())
    with session_factory.begin() as session:
        ticket_id = ingest(session, ticket_in(subject="Scanner", body="How do I scan to e-mail?"), settings).ticket_id
        session.get(Ticket, ticket_id).pending_since = utcnow() - WAIT - timedelta(seconds=1)
    report = process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    assert report.processed == 1, "past the bound it is analysed with what there is"
    reset_caches()


def test_tickets_wait_for_documents_being_read_but_not_for_one_stuck_or_failed(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """A pending document holds tickets while reading makes progress; one stuck past `stall_seconds` (an indexer
    that keeps dying on it) or one that failed does not hold them for the whole KB_READY_WAIT_SECONDS."""
    settings.KB_READY_WAIT_SECONDS = 900
    with session_factory.begin() as session:
        stuck = KbDocument(filename="manual.pdf", status="pending")
        session.add_all([stuck, KbDocument(filename="broken.docx", status="failed", error="not a Word file")])
    now = utcnow()
    with session_factory() as session:
        assert knowledge_wait_reason(session, settings, now) == (
            "Waiting for the knowledge base: 1 article still being read"
        )
        later = now + timedelta(seconds=stall_seconds(settings) + 1)
        assert knowledge_wait_reason(session, settings, later) is None
    with session_factory.begin() as session:
        session.add(KbDocument(filename="faq.md", status="pending"))  # reading moves again: its documents count
    with session_factory() as session:
        assert knowledge_wait_reason(session, settings, utcnow()).endswith("2 articles still being read")
