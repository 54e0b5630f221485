"""Scale-out as deployed: two dashboard replicas and two engine workers, each with its own data folder (as on
separate hosts), sharing one PostgreSQL and one Chroma server.

A document indexed through one replica is found by both workers and by the replica that never saw it (vectors
from the Chroma server, keywords rebuilt from `kb_chunks`); every ticket is analysed exactly once; while Chroma is
down the workers keep going and send every ticket to a person with the reason on its timeline; once Chroma is
back, answers cite the document again.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import TicketIn
from engine.core.enums import MessageKind, TicketStatus
from engine.core.models import Analysis, KbDocument, OutboxMessage, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.operators.auth import create_first_admin
from tests.app_process import ChromaServer, streamlit_app
from tests.browser.conftest import CHROMIUM_ARGS
from tests.engine_process import engine_env, start_engine
from tests.factories import ticket_in
from tests.kb.embeddings_emulator import EmbeddingsEmulator
from tests.pages.conftest import PASSWORD
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.browser]
GUIDE = (
    "# VPN on hotel wifi\n\nWhen the VPN disconnects every hour on hotel wifi, open the VPN client settings, "
    "switch the protocol to TCP 443 and reconnect. Captive portals drop UDP sessions after an hour.\n"
)


def vpn_ticket(number: int) -> TicketIn:
    return ticket_in(
        subject=f"VPN disconnects every hour on hotel wifi ({number})",
        body="On hotel wifi my VPN client disconnects every hour and I have to reconnect by hand.",
    )


@pytest.fixture
def shared(settings: Settings, database_url: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    """The environment every replica and worker shares: the database, the Chroma server, the embeddings API."""
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL; SQLite is the single-process embedded mode")
    with EmbeddingsEmulator() as embeddings, ChromaServer(tmp_path / "chroma", tmp_path / "chroma.log") as chroma:
        yield {
            "chroma": chroma,
            "env": {
                "CHROMA_HOST": "127.0.0.1",
                "CHROMA_PORT": chroma.port,
                "EMBEDDINGS_PROVIDER": "openai",
                "OPENAI_BASE_URL": embeddings.url + "/v1",
                "OPENAI_API_KEY": "sk-test",
            },
        }


def host(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return folder


def analysed(factory: sessionmaker[Session], count: int) -> bool:
    with factory() as session:
        done = session.scalar(select(func.count(func.distinct(Analysis.ticket_id))))
        pending = session.scalar(select(func.count()).where(Ticket.pending_since.is_not(None)))
    return done >= count and pending == 0


def cites_the_guide(analysis: Analysis, document_id: int) -> bool:
    return any(
        item["source_kind"] == "kb"
        and item["source_id"] == document_id
        and item["vector_rank"] is not None
        and item["bm25_rank"] is not None
        for item in analysis.evidence
    )


def test_replicas_and_workers_share_one_database_and_one_chroma_server(
    shared: dict[str, object], settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    env: dict[str, object] = shared["env"]  # type: ignore[assignment]
    chroma: ChromaServer = shared["chroma"]  # type: ignore[assignment]
    guide = tmp_path / "vpn-guide.md"
    guide.write_text(GUIDE)
    added = subprocess.run(
        [sys.executable, "-m", "kb", "add", str(guide)],
        env=engine_env(settings, **env, DATA_DIR=host(tmp_path, "replica-a")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    with session_factory.begin() as session:
        create_first_admin(session, "ada", PASSWORD)
        first = [ingest(session, vpn_ticket(n), settings).ticket_id for n in range(40)]
        document_id = session.scalars(select(KbDocument.id)).one()

    tuning = {"PROCESS_INTERVAL_SECONDS": 0.2, "OUTBOX_INTERVAL_SECONDS": 0.2, "PROCESS_BATCH_SIZE": 5}
    # Autopilot on with no confidence bar, so only the error rule can hold a message during the outage.
    autopilot = {"AUTOPILOT_ENABLED": "true", "AUTO_SEND_MIN_CONFIDENCE": 0.0}
    workers = [
        start_engine(
            settings, "run", cwd=tmp_path, WORKER_ID=name, DATA_DIR=host(tmp_path, name), **env, **tuning, **autopilot
        )
        for name in ("worker-1", "worker-2")
    ]
    try:
        wait_until(lambda: analysed(session_factory, len(first)), timeout=180, what="the first tickets analysed")

        chroma.stop()
        with session_factory.begin() as session:
            during = [ingest(session, vpn_ticket(n), settings).ticket_id for n in range(40, 50)]
        wait_until(lambda: analysed(session_factory, 50), timeout=180, what="tickets analysed while Chroma is down")

        chroma.start()
        with session_factory.begin() as session:
            after = [ingest(session, vpn_ticket(n), settings).ticket_id for n in range(50, 60)]
        wait_until(lambda: analysed(session_factory, 60), timeout=180, what="tickets analysed after Chroma is back")
        assert all(worker.poll() is None for worker in workers), "an engine process died"
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)

    with session_factory() as session:
        analyses = {ticket_id: [] for ticket_id in first + during + after}
        for analysis in session.scalars(select(Analysis)):
            analyses[analysis.ticket_id].append(analysis)
        assert all(len(each) == 1 for each in analyses.values()), "a ticket was analysed twice or not at all"
        acknowledgements = session.scalars(
            select(OutboxMessage.ticket_id).where(OutboxMessage.kind == MessageKind.ACKNOWLEDGEMENT)
        ).all()
        assert sorted(acknowledgements) == sorted(analyses)
        messages = session.execute(select(OutboxMessage.ticket_id, OutboxMessage.kind)).all()
        assert len(messages) == len(set(messages)), "a message went out twice"
        workers_by_ticket = {
            event.ticket_id: event.data["worker"]
            for event in session.scalars(select(TimelineEvent).where(TimelineEvent.type == "status_changed"))
            if event.data.get("status") == TicketStatus.ANALYZING
        }
        assert {workers_by_ticket[ticket_id] for ticket_id in first} == {"worker-1", "worker-2"}
        answered = first + after
        assert all(analyses[ticket_id][0].evidence and not analyses[ticket_id][0].error for ticket_id in answered)
        citing = {workers_by_ticket[t] for t in answered if cites_the_guide(analyses[t][0], document_id)}
        assert citing == {"worker-1", "worker-2"}, "each worker finds the guide with both retrievers"

        for ticket_id in during:
            ticket, [analysis] = session.get(Ticket, ticket_id), analyses[ticket_id]
            assert ticket.status in (TicketStatus.ESCALATED, TicketStatus.AWAITING_APPROVAL)
            assert (analysis.error or "").startswith("knowledge base unavailable")
            assert session.scalars(select(OutboxMessage.kind).where(OutboxMessage.ticket_id == ticket_id)).all() == [
                MessageKind.ACKNOWLEDGEMENT
            ]

    replica = {"DATABASE_URL": settings.database_url, "ENGINE_ENABLED": "false", "DEMO_FEED_ENABLED": "false"}
    replica.update({key: str(value) for key, value in env.items()})
    with (
        streamlit_app({**replica, "DATA_DIR": str(host(tmp_path, "replica-a"))}, tmp_path / "a.log") as url_a,
        streamlit_app({**replica, "DATA_DIR": str(host(tmp_path, "replica-b"))}, tmp_path / "b.log") as url_b,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for url in (url_a, url_b):
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_label("Username").fill("ada")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Today")).to_be_visible()
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Queue", exact=True).click()
            expect(page.get_by_text("60 tickets", exact=False).first).to_be_visible()
            page.get_by_test_id("stSidebarNav").get_by_role("link", name="Knowledge Base", exact=True).click()
            page.get_by_role("tab", name="Try a search").click()
            page.get_by_label("Question").fill("VPN drops on hotel wifi")
            page.get_by_role("button", name="Search").click()
            expect(page.get_by_text("switch the protocol to TCP 443").first).to_be_visible()
            page.close()
        browser.close()
