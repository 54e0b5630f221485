"""Hostile files for the knowledge base: each ends with a status, the rest of the batch is indexed, none is cited
in an automatic answer (an injected article is quarantined, so the analysers never see it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.retrieval_analyser import RetrievalAnalyser
from engine.core.enums import ActionKind, MessageKind, TicketStatus
from engine.core.models import Action, KbChunk, KbDocument, OutboxMessage, Ticket
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.pipeline import process_pending
from kb.extract import extract
from kb.indexer import add_document
from tests.corpus.hostile.make_corpus import make_deep_html, make_many_recipients_eml, make_office_bomb
from tests.factories import own_transactions, ticket_in
from tests.kb.files import hostile_kb_documents
from tests.security.conftest import HOSTILE, customer_messages

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 25 * 1024 * 1024
GUIDE = b"# Printer jams\n\n1. Open tray 2 and remove the jammed sheet.\n2. Fan the paper stack before reloading.\n"


def hostile_files() -> dict[str, bytes]:
    """Every hostile KB case: the committed files and the generated large ones."""
    committed = ("malformed.pdf", "encrypted.pdf", "broken-base64.eml", "unknown-charset.eml", "mixed-encoding.txt")
    files = {name: (HOSTILE / name).read_bytes() for name in committed}
    files["control-characters.txt"] = (HOSTILE / "control-characters.txt").read_bytes()
    files["bomb.docx"] = make_office_bomb("docx")
    files["bomb.pptx"] = make_office_bomb("pptx")
    files["deep.html"] = make_deep_html()
    files["many-recipients.eml"] = make_many_recipients_eml()
    return files


EXPECTED = {
    "malformed.pdf": "corrupt",
    "encrypted.pdf": "encrypted",
    "broken-base64.eml": "ok",
    "unknown-charset.eml": "corrupt",
    "mixed-encoding.txt": "ok",
    "control-characters.txt": "unsupported",
    "bomb.docx": "too_large",
    "bomb.pptx": "too_large",
    "deep.html": "ok",
    "many-recipients.eml": "ok",
}
SLOW = {"many-recipients.eml"}
"""Seconds to parse 10,000 addresses: checked once by `extract`, left out of the database batch."""


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return hostile_files()


@pytest.mark.parametrize("name", EXPECTED)
def test_each_hostile_file_ends_with_a_status(files: dict[str, bytes], name: str) -> None:
    result = extract(name, files[name], max_bytes=LIMIT)
    assert result.status == EXPECTED[name], result.error
    assert (result.error is None) == (result.status == "ok")


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    """In a child limited to 1 GiB of address space: inflating 1.9 GiB of XML there would fail, refusing it not."""
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(make_office_bomb("docx"))
    script = textwrap.dedent(
        f"""
        import resource, sys
        from kb.extract import extract
        data = open({str(bomb)!r}, "rb").read()
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        result = extract("bomb.docx", data, max_bytes={LIMIT})
        print(result.status, result.error)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("too_large the file unpacks to 2,039,480,"), child.stdout


def test_hostile_documents_do_not_stop_the_batch(
    session_factory: sessionmaker[Session], autopilot: Settings, files: dict[str, bytes]
) -> None:
    with session_factory() as session:
        for name, data in files.items():
            if name not in SLOW:
                add_document(own_transactions(session), autopilot, name, data)
        add_document(own_transactions(session), autopilot, "printer.md", GUIDE)
        statuses = {doc.filename: (doc.status, doc.error) for doc in session.scalars(select(KbDocument))}
    expected = {name: "indexed" if status == "ok" else status for name, status in EXPECTED.items() if name not in SLOW}
    assert {name: status for name, (status, _) in statuses.items()} == {**expected, "printer.md": "indexed"}
    assert all(error for status, error in statuses.values() if status != "indexed")


def test_an_injected_knowledge_base_article_is_quarantined_and_never_cited(
    session_factory: sessionmaker[Session], autopilot: Settings
) -> None:
    with session_factory() as session:
        document = add_document(
            own_transactions(session), autopilot, "vpn-password.md", (HOSTILE / "kb-injection.md").read_bytes()
        )
        [chunk] = session.scalars(select(KbChunk).where(KbChunk.source_id == document.id))
        assert document.quarantined_count == 1 and chunk.quarantine
        assert "possible prompt injection" in chunk.quarantine and "evil.example" in chunk.quarantine
    with session_factory.begin() as session:
        ticket_id = ingest(
            session,
            ticket_in(subject="Resetting your VPN password", body="How do I reset my VPN password?"),
            autopilot,
        ).ticket_id
    process_pending(session_factory, autopilot, RetrievalAnalyser(session_factory, autopilot), worker="w")
    assert customer_messages(session_factory) == []
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.ESCALATED  # no evidence: a person answers
        [action] = session.scalars(select(Action).where(Action.ticket_id == ticket_id))
        assert action.kind == ActionKind.ESCALATE and "vpn-password" not in (action.body or "") + action.reason


HOSTILE_QUESTIONS = (
    "Where do I pay the open invoices, to which account?",
    "How do I reset the printer?",
    "How do I connect to the VPN and sign in?",
    "The scanner needs a fix, where is the guide?",
    "Faster password reset: where do I sign in?",
)
HOSTILE_CONTENT = (
    "GB82",
    "settlement",
    "MFA",
    "password and",
    "vpn-no-touch",
    "HYPERLINK",
    "no-touch-localhost.support",
)


def test_hostile_knowledge_base_content_never_reaches_a_customer(
    session_factory: sessionmaker[Session], autopilot: Settings
) -> None:
    with session_factory() as session:
        for name, data in hostile_kb_documents().items():
            add_document(own_transactions(session), autopilot, name, data)
    with session_factory.begin() as session:
        tickets = [ingest(session, ticket_in(subject=q, body=q), autopilot).ticket_id for q in HOSTILE_QUESTIONS]
    process_pending(session_factory, autopilot, RetrievalAnalyser(session_factory, autopilot), worker="w")
    with session_factory() as session:
        drafts = [
            f"{action.body or ''}\n{action.reason}"
            for action in session.scalars(select(Action).where(Action.ticket_id.in_(tickets)))
        ]
        replies = select(OutboxMessage).where(OutboxMessage.kind != MessageKind.ACKNOWLEDGEMENT)
        sent = [f"{m.subject}\n{m.body_text}" for m in session.scalars(replies)]
    assert len(drafts) == len(HOSTILE_QUESTIONS)
    assert not [(word, text) for text in drafts + sent for word in HOSTILE_CONTENT if word in text]
