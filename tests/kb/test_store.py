"""The vector store across processes: another process removing a document never breaks this one's search."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from kb import indexer
from kb.search import search
from tests.engine_process import engine_env

VPN = b"# VPN\nStart the VPN client and choose the office profile.\n"
PRINTER = b"# Printer\nReseat the toner cartridge when the printer shows E42.\n"


def test_kb_remove_in_another_process_leaves_this_process_searching(
    session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """This process plays the running engine (its Chroma handle is open and warm); `python -m kb remove` is a real
    second process. Before the fix every later search failed and tickets escalated "knowledge base unavailable"."""
    vpn = indexer.add_document(session_factory, settings, "vpn.md", VPN)
    indexer.add_document(session_factory, settings, "printer.md", PRINTER)
    with session_factory() as session:
        assert {evidence.title for evidence in search(session, settings, "VPN client", k=5)} == {"VPN", "Printer"}

    removed = subprocess.run(
        [sys.executable, "-m", "kb", "remove", str(vpn.id)],
        env=engine_env(settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert removed.returncode == 0 and f"Removed document {vpn.id}." in removed.stdout, removed.stderr[-2000:]

    with caplog.at_level(logging.WARNING, logger="kb.store"), session_factory() as session:
        assert [evidence.title for evidence in search(session, settings, "VPN client", k=5)] == ["Printer"]
        assert [evidence.title for evidence in search(session, settings, "toner cartridge E42", k=5)] == ["Printer"]
    assert [record.message for record in caplog.records].count(
        "the vector index changed under this process (StaleIndexError: a nearest vector has no stored record "
        "(deleted by another process)): reopening the Chroma client"
    ) == 1
