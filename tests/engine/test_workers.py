"""Two engine processes on one PostgreSQL: each ticket is processed once and each message sent once."""

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import Analysis, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from tests.engine_process import start_engine
from tests.factories import ticket_in
from tests.mail_sink import send_through, smtp_sink
from tests.waiting import wait_until

TICKETS = 200


@pytest.mark.slow
def test_two_engines_share_the_work_exactly_once(
    database_url: str, session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite is the single-process embedded mode; replicas need PostgreSQL")
    with session_factory.begin() as session:
        for _ in range(TICKETS):
            ingest(session, ticket_in(), settings)
    with smtp_sink() as (mailbox, port):
        send_through(settings, port)
        tuning = {"PROCESS_INTERVAL_SECONDS": 0.2, "OUTBOX_INTERVAL_SECONDS": 0.2, "PROCESS_BATCH_SIZE": 10}
        workers = [start_engine(settings, "run", cwd=tmp_path, WORKER_ID=f"worker-{n}", **tuning) for n in (1, 2)]

        def all_acknowledged() -> bool:
            assert all(worker.poll() is None for worker in workers), "an engine process died"
            return len(mailbox.messages) >= TICKETS

        try:
            wait_until(all_acknowledged, timeout=180, what=f"{TICKETS} acknowledgements")
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
        ids = mailbox.message_ids()
    assert len(ids) == TICKETS
    assert len(set(ids)) == TICKETS
    with session_factory() as session:
        per_ticket = (
            session.execute(select(func.count(Analysis.id)).select_from(Ticket).outerjoin(Analysis).group_by(Ticket.id))
            .scalars()
            .all()
        )
        assert per_ticket == [1] * TICKETS
        claims = Counter(
            event.data["worker"]
            for event in session.scalars(select(TimelineEvent).where(TimelineEvent.type == "status_changed"))
            if event.data["status"] == "Analyzing"
        )
    assert set(claims) == {"worker-1", "worker-2"}
    assert sum(claims.values()) == TICKETS
    assert all(worker.returncode == 0 for worker in workers)
