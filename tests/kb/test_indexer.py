"""Indexing and hybrid search against a real database (SQLite and PostgreSQL), Chroma and the BM25 log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import OutgoingAttachment
from engine import jobs
from engine.core.enums import ActionKind, ActionState, Role, TicketStatus
from engine.core.models import Action, Attachment, AuditEntry, Blob, EmailInteraction, KbChunk, KbDocument, Ticket
from engine.core.settings import Settings
from engine.operators.actions import add_kb_document, send_manual_reply
from engine.operators.permissions import Actor
from engine.outcomes import teaching
from engine.outcomes.learned import learn_answer
from kb import indexer, ledger
from kb.search import search
from kb.store import get_runtime, reset_caches
from tests.factories import new_ticket, own_transactions
from tests.kb.conftest import assert_consistent
from tests.kb.files import make_docx, make_encrypted_pdf, make_pdf, make_png, make_pptx

ROUTER = "# Router\nTo reset the router, hold the recessed button for ten seconds until the lights blink amber.\n"
MAIL = "# Mailbox quota\nWhen Outlook says the mailbox is full, archive old items or ask for a larger quota.\n"


def add(session: Session, settings: Settings, name: str, data: bytes, **kwargs: object) -> KbDocument:
    """Index through the indexer's own transactions; the document as the test's session sees it."""
    document = indexer.add_document(own_transactions(session), settings, name, data, **kwargs)  # type: ignore[arg-type]
    return session.get_one(KbDocument, document.id)


def make_ticket(
    session: Session,
    number: int,
    *,
    status: str = TicketStatus.RESOLVED,
    team: str | None = "network",
    description: str = "VPN disconnects every five minutes on the hotel wifi",
    resolution: str | None = "Switched the VPN client to TCP 443; stable since.",
    decided_by: str = "operator:lee",
) -> Ticket:
    """A ticket; with a resolution, the executed resolution action `decided_by` a person (or "engine")."""
    ticket = Ticket(
        source="demo",
        external_id=f"T{number}",
        email="user@example.com",
        subject=f"VPN drops {number}",
        description=description,
        status=status,
        team=team,
        resolution=resolution,
    )
    session.add(ticket)
    session.flush()
    if resolution:
        resolve(session, ticket, resolution, decided_by=decided_by)
    return ticket


def resolve(session: Session, ticket: Ticket, body: str, *, decided_by: str = "operator:lee") -> Action:
    """The resolution e-mail as sent: greeting, the steps, signature; one a person decided is learned as the
    operators' actions learn it (engine/outcomes/learned.py)."""
    action = Action(
        ticket_id=ticket.id,
        kind=ActionKind.PROPOSE_RESOLUTION,
        state=ActionState.EXECUTED,
        body=f"Hello Dana,\n\n{body}\n\nKind regards,\nThe support desk",
        decided_by=decided_by,
        decided_at=datetime.now(UTC),
    )
    session.add(action)
    ticket.resolution, ticket.updated_at = action.body, datetime.now(UTC)
    session.flush()
    if decided_by != "engine":
        learn_answer(session, ticket, action, "approved", decided_by)
    return action


def test_add_search_cite(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        router = add(session, settings, "router.md", ROUTER.encode(), uploaded_by="lead")
        add(session, settings, "mail.md", MAIL.encode())
        pdf = add(
            session, settings, "printer.pdf", make_pdf(["Printer setup guide", "Toner E42 means reseat the cartridge"])
        )
        deck = add(session, settings, "sso.pptx", make_pptx([("Single sign-on", "Approve the MFA push on your phone")]))
        assert [d.status for d in (router, pdf, deck)] == ["indexed"] * 3
        assert router.chunk_count == 1 and router.uploaded_by == "lead"
        blob = session.get(Blob, router.sha256)
        assert blob is not None and bytes(blob.data) == ROUTER.encode()

        evidence = search(session, settings, "how do I reset my router?", k=3)
        best = evidence[0]
        assert (best.source_kind, best.source_id, best.title) == ("kb", router.id, "Router")
        assert best.location == "section Router" and "recessed button" in best.text
        assert best.vector_rank == 1 and best.bm25_rank == 1 and best.bm25_score and best.vector_score
        assert len({(e.source_kind, e.source_id) for e in evidence}) == len(evidence)

        toner = search(session, settings, "toner error E42", k=1)[0]
        assert toner.source_id == pdf.id and toner.location == "page 2"
        assert search(session, settings, "MFA push", k=1)[0].location.startswith("slide 1")
        assert_consistent(session, settings)


def test_bad_files_get_a_status_and_the_batch_goes_on(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    batch = [
        ("secret.pdf", make_encrypted_pdf("classified"), "encrypted"),
        ("cut.pdf", make_pdf(["cut"])[:50], "corrupt"),
        ("empty.txt", b"", "empty"),
        ("huge.txt", b"x" * 200_000, "too_large"),
        ("shot.png", make_png("hello"), "ocr_unavailable"),
        ("router.md", ROUTER.encode(), "indexed"),
    ]
    settings = settings.model_copy(update={"KB_MAX_FILE_BYTES": 100_000, "KB_TESSERACT_CMD": "no-such-tesseract"})
    with session_factory() as session:
        documents = [add(session, settings, name, data) for name, data, _ in batch]
        assert [d.status for d in documents] == [status for _, _, status in batch]
        assert all(d.error for d in documents[:-1]) and documents[-1].error is None
        assert documents[3].sha256 is None  # oversized bytes are not stored
        assert [d.filename for d in indexer.list_documents(session)] == [name for name, _, _ in batch]
        assert search(session, settings, "router reset", k=5)[0].source_id == documents[-1].id
        assert_consistent(session, settings)


def test_change_and_delete_touch_only_that_document(session_factory: sessionmaker[Session], settings: Settings) -> None:
    first = "# Install\nRun the installer as administrator.\n\n# Licence\nEnter the key from the portal.\n"
    second = "# Install\nRun the installer as administrator.\n\n# Licence\nLicences now come from single sign-on.\n"
    with session_factory() as session:
        guide_id = add(session, settings, "guide.md", first.encode()).id
        other = add(session, settings, "mail.md", MAIL.encode())
        before = assert_consistent(session, settings)
        other_chunks = {str(i) for i in session.scalars(select(KbChunk.id).where(KbChunk.source_id == other.id))}
        install_chunk = session.scalar(
            select(KbChunk.id).where(KbChunk.source_id == guide_id, KbChunk.chunk_index == 0)
        )

        indexer.replace_document(own_transactions(session), settings, guide_id, "guide.md", second.encode())
        after = assert_consistent(session, settings)
        assert other_chunks <= after and str(install_chunk) in after  # unchanged chunks keep their id and vector
        assert len(after - before) == 1 and len(before - after) == 1
        assert search(session, settings, "single sign-on licence", k=1)[0].source_id == guide_id

        assert indexer.remove_document(own_transactions(session), settings, guide_id)
        remaining = assert_consistent(session, settings)
        assert remaining == other_chunks
        assert session.get(KbDocument, guide_id) is None
        assert all(e.source_id != guide_id for e in search(session, settings, "installer administrator licence"))
        assert not indexer.remove_document(own_transactions(session), settings, guide_id)


def test_removing_a_document_keeps_the_bytes_a_queued_reply_still_attaches(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    with session_factory() as session:
        router, mail = (
            (document.id, document.sha256)
            for document in (
                add(session, settings, "router.md", ROUTER.encode()),
                add(session, settings, "mail.md", MAIL.encode()),
            )
        )
    with session_factory.begin() as session:
        send_manual_reply(
            session,
            settings,
            Actor("ann", Role.AGENT),
            ticket_id,
            subject="Your router",
            body="The guide is attached.",
            files=[OutgoingAttachment("router.md", "text/markdown", ROUTER.encode())],
        )
    with session_factory() as session:
        for document_id, _ in (router, mail):
            assert indexer.remove_document(own_transactions(session), settings, document_id)
        assert session.get(Blob, router[1]) is not None
        assert session.get(Blob, mail[1]) is None


def test_restart_replays_bm25_without_rebuild(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        router = add(session, settings, "router.md", ROUTER.encode())
        add(session, settings, "mail.md", MAIL.encode())
        indexer.remove_document(own_transactions(session), settings, router.id)
        ids = assert_consistent(session, settings)

    reset_caches()  # a new process: nothing in memory
    runtime = get_runtime(settings)
    assert set(runtime.keywords.hashes()) == ids  # replayed from the log, before any database read
    assert [hit[0] for hit in runtime.keywords.search("mailbox quota", 5)] == sorted(ids)
    with session_factory() as session:
        assert ledger.sync_keyword_index(session, runtime) == 0  # nothing to rebuild
        assert search(session, settings, "outlook mailbox full", k=1)[0].title == "Mailbox quota"


def test_another_process_change_is_picked_up(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        add(session, settings, "mail.md", MAIL.encode())
        assert search(session, settings, "mailbox", k=1)
        keywords = get_runtime(settings).keywords
        stale = keywords.hashes()
    keywords.reset()  # as if this process missed another's changes
    keywords.add([])
    with session_factory() as session:
        assert search(session, settings, "mailbox quota", k=1)[0].title == "Mailbox quota"
        assert keywords.hashes() == stale


def test_job_repairs_a_crash_between_database_and_indexes(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        add(session, settings, "router.md", ROUTER.encode())
        mail = add(session, settings, "mail.md", MAIL.encode())
        runtime = get_runtime(settings)
        lost = str(session.scalar(select(KbChunk.id).where(KbChunk.source_id == mail.id)))
        runtime.vectors.delete([lost])
        runtime.vectors.upsert(
            ["999999"],
            runtime.embedder.embed_documents(["ghost"]),
            [{"kind": "kb", "source_id": 999, "team": "", "date": 0, "hash": "x"}],
        )
    counts = jobs.run_index_job(session_factory, settings)
    assert counts["vectors_repaired"] == 2 and counts["chunks"] == 2
    with session_factory() as session:
        assert_consistent(session, settings)


def test_documents_marked_pending_get_their_heading_as_title_without_new_vectors(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """What migration 0011 relies on: a document titled by its file name and set back to pending is titled by its
    heading at the next index job, keeping its chunks."""
    with session_factory() as session:
        mail = add(session, settings, "mail-quota.md", MAIL.encode())
        chunks = set(session.scalars(select(KbChunk.id).where(KbChunk.source_id == mail.id)))
        mail.title, mail.status = "mail-quota", "pending"
        session.commit()
    counts = jobs.run_index_job(session_factory, settings)
    assert counts["documents_indexed"] == 1 and counts["vectors_repaired"] == 0
    with session_factory() as session:
        document = session.get(KbDocument, mail.id)
        assert document is not None and (document.title, document.status) == ("Mailbox quota", "indexed")
        assert set(session.scalars(select(KbChunk.id).where(KbChunk.source_id == mail.id))) == chunks


def test_a_title_that_fails_the_hygiene_is_replaced_by_the_file_name(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """Titles are cited to customers: a title a reader sees passes the chunks' checks too (an unseen title property
    is hidden text and titles nothing: tests/kb/test_titles.py)."""
    lure = b"Call +44 20 7946 0999 and visit https://refunds.evil.example now"
    page = (
        b"<html><head><title>" + lure + b"</title></head>"
        b"<body><h1>" + lure + b"</h1><p>Hold the recessed button for ten seconds.</p></body></html>"
    )
    with session_factory() as session:
        document = add(session, settings, "router-reset.html", page)
        assert document.title == "Router reset"
        assert "its own title was not used" in (document.error or "")


def resolved_ticket_with_history(session: Session) -> Ticket:
    ticket = make_ticket(session, 1)
    session.add(
        EmailInteraction(
            ticket_id=ticket.id,
            direction="inbound",
            email_type="reply",
            source="demo",
            from_address="user@example.com",
            body="It also happens on the office guest network.",
        )
    )
    session.add(
        EmailInteraction(
            ticket_id=ticket.id,
            direction="outbound",
            email_type="ack",
            source="demo",
            from_address="support@example.com",
            body="We are looking into it (outbound, not indexed)",
        )
    )
    session.add(Attachment(ticket_id=ticket.id, filename="log.txt", size=10, extracted_text="IKE phase 2 timeout"))
    return ticket


def test_resolved_tickets_incrementally(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        ticket = resolved_ticket_with_history(session)
        make_ticket(session, 2, status=TicketStatus.NEW, description="Printer jammed")
        session.commit()
        assert teaching.index_resolved_tickets(own_transactions(session), settings) == 1
        assert (
            teaching.index_resolved_tickets(own_transactions(session), settings) == 0
        )  # nothing changed since the cursor
        [chunk] = session.scalars(select(KbChunk).where(KbChunk.source_kind == "ticket"))
        assert chunk.location == {"section": "resolution"}  # the customer's words are never evidence
        assert chunk.text == "resolution\nSwitched the VPN client to TCP 443; stable since."  # no greeting, signature

        evidence = search(session, settings, "VPN client TCP 443", k=3, source_kinds={"ticket"})
        assert evidence[0].title == f"Resolution of TCKT-{ticket.id}" and evidence[0].source_kind == "ticket"
        found = search(session, settings, "IKE phase 2 timeout guest network", source_kinds={"ticket"})
        assert not any("IKE" in e.text or "guest network" in e.text for e in found)

        resolve(session, ticket, "Replaced the VPN profile with the split-tunnel one.")
        session.commit()
        assert teaching.index_resolved_tickets(own_transactions(session), settings) == 1
        assert "split-tunnel" in search(session, settings, "split tunnel profile", k=1)[0].text
        assert_consistent(session, settings)

        ticket.status = TicketStatus.ANALYZING  # re-opened: its answer is no longer evidence
        session.commit()
        assert teaching.index_resolved_tickets(own_transactions(session), settings) == 1
        assert search(session, settings, "VPN hotel wifi", source_kinds={"ticket"}) == []
        assert_consistent(session, settings)


def test_filters_by_kind_team_and_date(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        ticket = make_ticket(session, 1, team="network")
        ticket.resolved_at = datetime.now(UTC) - timedelta(days=30)
        make_ticket(session, 2, team="desktop", resolution="Restarted the VPN client so its icon is back in the tray")
        session.commit()
        teaching.index_resolved_tickets(own_transactions(session), settings)
        shared = add(
            session, settings, "vpn.md", b"# VPN\nThe VPN client lives in the system tray; start it from there.\n"
        )
        add(
            session,
            settings,
            "vpn-network.md",
            b"# VPN gateways\nNetwork team: VPN gateways are vpn1 and vpn2.\n",
            team="network",
        )

        kb_only = search(session, settings, "VPN", k=10, source_kinds={"kb"})
        assert {e.source_kind for e in kb_only} == {"kb"} and len(kb_only) == 2
        desktop = search(session, settings, "VPN", k=10, team="desktop")
        assert {(e.source_kind, e.title) for e in desktop} == {("ticket", "Resolution of TCKT-2"), ("kb", "VPN")}
        assert shared.id in {e.source_id for e in desktop if e.source_kind == "kb"}
        recent = search(
            session, settings, "VPN", k=10, source_kinds={"ticket"}, since=datetime.now(UTC) - timedelta(days=1)
        )
        assert [e.title for e in recent] == ["Resolution of TCKT-2"]


def test_multi_query_and_given_queries(session_factory: sessionmaker[Session], settings: Settings) -> None:
    class FakeChat:
        def invoke(self, prompt: str) -> str:
            assert "<<<" in prompt
            return "1. archive outlook items\n- raise mailbox quota\n"

    class BrokenChat:
        def invoke(self, prompt: str) -> str:
            raise TimeoutError("LLM down")

    from kb.search import deterministic_queries, generate_queries

    assert deterministic_queries("How do I reset the router?") == [
        "How do I reset the router?",
        "reset the router",
        "reset router",
    ]
    assert generate_queries("mailbox full", FakeChat()) == [
        "mailbox full",
        "archive outlook items",
        "raise mailbox quota",
    ]
    assert generate_queries("mailbox full", BrokenChat()) == ["mailbox full"]
    with session_factory() as session:
        add(session, settings, "mail.md", MAIL.encode())
        add(session, settings, "router.md", ROUTER.encode())
        assert search(session, settings, "", queries=["recessed button"], k=1)[0].title == "Router"
        assert search(session, settings, "my outlook is full", chat_model=FakeChat(), k=1)[0].title == "Mailbox quota"
        assert search(session, settings, "   ") == []


@pytest.fixture
def kb_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """`python -m kb` as a module whose settings are the test's."""
    import kb.__main__ as cli

    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    return cli


def test_cli(
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
    kb_cli: ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "router.md").write_text(ROUTER)
    (folder / "guide.docx").write_bytes(make_docx([("Printer", 1), ("Reseat the toner.", 0)]))
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    assert kb_cli.main(["add", "--quiet", "--team", "network", str(folder)]) == 0
    assert kb_cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "router.md" in listing and "corrupt" in listing and "network" in listing
    assert kb_cli.main(["search", "reset router", "-k", "1"]) == 0
    assert "router" in capsys.readouterr().out
    assert kb_cli.main(["reindex"]) == 0
    assert "documents: 3" in capsys.readouterr().out
    with session_factory() as session:
        router_id = session.scalar(select(KbDocument.id).where(KbDocument.filename == "router.md"))
        session.commit()
        assert kb_cli.main(["remove", str(router_id)]) == 0
        assert kb_cli.main(["remove", str(router_id)]) == 1
        assert_consistent(session, settings)


def test_knowledge_base_empty(session_factory: sessionmaker[Session], settings: Settings) -> None:
    """The one "is anything indexed" check the analysers answer from without loading a model."""
    with session_factory() as session:
        assert ledger.knowledge_base_empty(session)
        add(session, settings, "mail.md", MAIL.encode())
        assert not ledger.knowledge_base_empty(session)
        indexer.add_document(own_transactions(session), settings, "bad.pdf", b"%PDF-1.4 broken")
        assert not ledger.knowledge_base_empty(session), "a failed file adds no chunk and removes none"


def test_a_bad_file_and_a_failed_embedding_end_with_a_status(
    session_factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through its own transactions the indexer still never raises for a file: the document says what went wrong."""
    with session_factory() as session:
        broken = add(session, settings, "bad.pdf", b"%PDF-1.4 broken")
        assert broken.status == "corrupt" and broken.chunk_count == 0 and broken.error
        runtime = get_runtime(settings)

        def down(texts: list[str]) -> None:
            raise ConnectionError("embedding endpoint down")

        monkeypatch.setattr(runtime.embedder, "embed_documents", down)
        failed = add(session, settings, "mail.md", MAIL.encode())
        assert failed.status == indexer.FAILED and "embedding endpoint down" in (failed.error or "")
        assert ledger.knowledge_base_empty(session)
        assert_consistent(session, settings)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("rou\x00ter\x07.md", "router.md"),
        ("invoice\u202efdp.md", "invoicefdp.md"),
        ("not-utf8-\udcff.md", "not-utf8-.md"),
        ("\x00\x00", "document"),
        ("a" * 700 + ".md", "a" * 497 + ".md"),
        ("b" * 700, "b" * 500),
    ],
    ids=["nul and bell", "bidi override", "lone surrogate", "nothing left", "too long", "too long, no extension"],
)
def test_a_file_name_no_column_can_hold_is_stored_cleaned_and_the_file_indexed(
    session_factory: sessionmaker[Session],
    settings: Settings,
    given: str,
    stored: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """NUL and over-long names used to fail on PostgreSQL (DataError); now the file is kept under a clean name."""
    with session_factory() as session:
        document = add(session, settings, given, ROUTER.encode())
        assert (document.filename, document.status) == (stored, indexer.INDEXED)
        assert document.chunk_count >= 1 and len(document.title or "") <= 500
    assert f"is stored as {stored[:200]!r}" in caplog.text
    with session_factory() as session:
        hits = search(session, settings, "reset the router", k=1)
    assert hits and hits[0].title == "Router"


def test_the_upload_action_audits_a_cleaned_long_name(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    long_name = "Quarterly\x00 " + "report " * 100 + ".md"
    document = add_kb_document(session_factory, settings, Actor("lee", Role.LEAD), long_name, ROUTER.encode())
    assert document.status == indexer.INDEXED and len(document.filename) == 500 and document.filename.endswith(".md")
    with session_factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "kb_upload")).one()
    assert entry.target_id == document.filename[:100] and "\x00" not in entry.target_id
    assert "control or invisible characters removed" in entry.details["filename_changed"]
    assert "shortened to 500 characters, keeping .md" in entry.details["filename_changed"]


def test_cli_says_under_which_name_a_file_is_stored(
    session_factory: sessionmaker[Session], tmp_path: Path, kb_cli: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "router\x1b[31m.md").write_text(ROUTER)
    assert kb_cli.main(["add", "--quiet", str(folder)]) == 0
    assert "stored as 'router[31m.md'" in capsys.readouterr().out
    with session_factory() as session:
        assert session.scalars(select(KbDocument.filename)).all() == ["router[31m.md"]
