"""Hostile files through the product's paths, each read in a bounded child (kb/sandbox.py): a file whose reader hangs
never holds the other tickets of its batch, SIGTERM stops an engine whose reader hangs (the reader and its helper
killed, the claim given back), after a restart the file ends as "too complex to read safely" once and is not read
again, and a knowledge file past a bound is not indexed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AttachmentIn
from engine.core.enums import TicketStatus
from engine.core.models import Analysis, Attachment, KbChunk, KbDocument, Ticket
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.pipeline import AnalysisPool, process_pending
from kb import sandbox
from kb.indexer import add_document
from tests.corpus import hostile_files as hostile
from tests.engine_process import engine_env
from tests.factories import Proposes, email_in
from tests.waiting import wait_until

READ_FOREVER = "tests.corpus.hostile_files:read_forever"
HUNG_ENGINE = (
    f"import sys, kb.sandbox; kb.sandbox.READER = {READ_FOREVER!r}; "
    "from engine.__main__ import main; sys.exit(main(sys.argv[1:]))"
)
"""`python -m engine` with the reader that hangs on HANG_FILE (and reads every other file as the product does)."""


def ticket_with(factory: sessionmaker[Session], settings: Settings, name: str, data: bytes) -> int:
    """An e-mail ticket carrying one attachment: its id."""
    item = email_in(
        subject=f"Printer problem ({name})",
        attachments=[AttachmentIn(filename=name, content_type="text/plain", data=data)],
    )
    with factory.begin() as session:
        return ingest(session, item, settings).ticket_id


def tickets_with_attachments(factory: sessionmaker[Session], settings: Settings, hang: bytes) -> tuple[int, list[int]]:
    """One ticket carrying the hanging file and three with an ordinary log each: (its id, the others' ids)."""
    hanging = ticket_with(factory, settings, hostile.HANG_FILE, hang)
    return hanging, [ticket_with(factory, settings, "printer.log", b"E42 paper jam in tray 2\n" * n) for n in (1, 2, 3)]


def analyses_of(factory: sessionmaker[Session], ticket_id: int) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Analysis).where(Analysis.ticket_id == ticket_id)) or 0


def attachment_of(factory: sessionmaker[Session], ticket_id: int) -> Attachment:
    with factory() as session:
        return session.scalars(select(Attachment).where(Attachment.ticket_id == ticket_id)).one()


def assert_given_back(factory: sessionmaker[Session], ticket_id: int) -> None:
    """The ticket waits for analysis again, unclaimed, and its file was not recorded as read."""
    with factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.status, ticket.claim_token, ticket.pending_since is not None) == (
            TicketStatus.ANALYZING,
            None,
            True,
        )
        assert "claim_released" in [event.type for event in ticket.timeline]
    assert attachment_of(factory, ticket_id).status == "stored"


def assert_read_once_as_too_complex(factory: sessionmaker[Session], ticket_id: int, seconds: int) -> None:
    attachment = attachment_of(factory, ticket_id)
    assert (attachment.status, attachment.error) == (
        "too_complex",
        f"hang.txt: too complex to read safely: still being read after {seconds} s (KB_EXTRACT_TIMEOUT_SECONDS)",
    )
    with factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert "attachment hang.txt could not be read (too_complex)" in ticket.additional_info["input_warnings"]
        assert ticket.pending_since is None
    assert analyses_of(factory, ticket_id) == 1


def test_a_hanging_attachment_never_holds_the_other_tickets_of_its_batch(
    session_factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "READER", READ_FOREVER)
    seconds = hostile.unique_seconds()
    hanging, others = tickets_with_attachments(session_factory, settings, seconds)
    settings.KB_EXTRACT_TIMEOUT_SECONDS = 3600
    pool = AnalysisPool(session_factory, threads=8, waiting=50)
    analyser = Proposes(decision="escalate")
    assert process_pending(session_factory, settings, analyser, worker="w", pool=pool).claimed == 4
    wait_until(lambda: all(analyses_of(session_factory, t) == 1 for t in others), timeout=120, what="the others")
    assert [attachment_of(session_factory, t).status for t in others] == ["extracted"] * 3
    late = ticket_with(session_factory, settings, "scanner.log", b"scanner offline\n")
    assert process_pending(session_factory, settings, analyser, worker="w", pool=pool).claimed == 1
    wait_until(lambda: analyses_of(session_factory, late) == 1, timeout=120, what="a ticket claimed meanwhile")
    assert hanging in pool.tickets() and analyses_of(session_factory, hanging) == 0
    assert hostile.sleeping_helpers(seconds)

    pool.stop()
    wait_until(lambda: not hostile.sleeping_helpers(seconds), timeout=30, what="the reader's helper to be killed")
    assert_given_back(session_factory, hanging)

    settings.KB_EXTRACT_TIMEOUT_SECONDS = 3
    assert process_pending(session_factory, settings, analyser, worker="w").processed == 1
    assert_read_once_as_too_complex(session_factory, hanging, 3)
    assert process_pending(session_factory, settings, analyser, worker="w").claimed == 0
    assert_read_once_as_too_complex(session_factory, hanging, 3)


@pytest.mark.slow
def test_sigterm_stops_an_engine_whose_reader_hangs_and_a_restart_does_not_stall(
    session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    seconds = hostile.unique_seconds()
    hanging, others = tickets_with_attachments(session_factory, settings, seconds)

    def engine(*args: str, **extra: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", HUNG_ENGINE, *args],
            env=engine_env(settings, PROCESS_INTERVAL_SECONDS=0.5, **extra),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    running = engine("run", KB_EXTRACT_TIMEOUT_SECONDS=3600)
    try:
        wait_until(
            lambda: (
                all(analyses_of(session_factory, t) == 1 for t in others) and bool(hostile.sleeping_helpers(seconds))
            ),
            timeout=120,
            what="the other tickets to be analysed while the reader hangs",
        )
        running.send_signal(signal.SIGTERM)
        # It finishes its running jobs first, however long that takes on a busy machine: only a hang fails the
        # test, through its hang guard (pytest-timeout); how fast it stops is no assertion here.
        output, _ = running.communicate()
    finally:
        if running.poll() is None:
            running.kill()
    assert running.returncode == 0, output
    wait_until(lambda: not hostile.sleeping_helpers(seconds), timeout=30, what="the reader's helper to be killed")
    assert_given_back(session_factory, hanging)

    for _ in range(2):  # the restart reads it once, to its limit; the next run has nothing to do
        once = engine("run", "--once", KB_EXTRACT_TIMEOUT_SECONDS=2)
        output, _ = once.communicate()
        assert once.returncode == 0, output
        assert_read_once_as_too_complex(session_factory, hanging, 2)


def test_a_knowledge_file_too_complex_to_read_is_not_indexed(
    session_factory: sessionmaker[Session], autopilot: Settings
) -> None:
    autopilot.KB_EXTRACT_MAX_CHARACTERS = 1_000_000
    huge = add_document(session_factory, autopilot, "huge.txt", hostile.huge_text(1_200_000))
    deep = add_document(session_factory, autopilot, "tables.docx", hostile.docx_nested_tables())
    guide = add_document(session_factory, autopilot, "printer.md", b"# Printer jams\n\n1. Open tray 2 and remove it.\n")
    assert (huge.status, huge.chunk_count) == ("too_complex", 0)
    assert huge.error == (
        "huge.txt: too complex to read safely: more than 1,000,000 characters of text (KB_EXTRACT_MAX_CHARACTERS)"
    )
    assert (deep.status, deep.error) == ("too_complex", "tables.docx: too complex to read safely: nested too deeply")
    assert guide.status == "indexed"
    with session_factory() as session:
        sources = set(session.scalars(select(KbChunk.source_id)))
        assert sources == {guide.id}
        assert session.scalar(select(func.count()).select_from(KbDocument)) == 3
