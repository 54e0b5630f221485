"""SIGKILL the engine at every step between claim and delivery; after a restart nothing is lost or doubled."""

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutboxState
from engine.core.models import Analysis, EmailInteraction, OutboxMessage, Ticket
from engine.core.settings import Settings
from engine.delivery.outbox import resolve_uncertain
from engine.intake.ingest import ingest
from tests.engine_process import run_engine
from tests.factories import ticket_in
from tests.mail_sink import send_through, smtp_sink
from tests.waiting import wait_until

TICKETS = 3
STEPS = [
    "pipeline.after_claim",
    "pipeline.before_commit",
    "pipeline.after_commit",
    "outbox.after_claim",
    "outbox.after_send",
    "outbox.after_mark_sent",
]


def settle(condition: Callable[[], bool], restart: Callable[[], None], deadline: float = 60) -> None:
    """Restart the engine until `condition` holds (claims need their short lease to expire first)."""

    def recovered() -> bool:
        if condition():
            return True
        restart()
        return False

    wait_until(recovered, timeout=deadline, interval=0, what="the engine to recover")


def counts(factory: sessionmaker[Session]) -> dict[str, object]:
    with factory() as session:
        per_ticket = session.execute(
            select(Ticket.id, func.count(Analysis.id))
            .outerjoin(Analysis, Analysis.ticket_id == Ticket.id)
            .group_by(Ticket.id)
        ).all()
        return {
            "analyses": sorted(n for _, n in per_ticket),
            "outbox": session.scalar(select(func.count()).select_from(OutboxMessage)),
            "states": sorted(session.scalars(select(OutboxMessage.state))),
            "outbound": session.scalar(
                select(func.count()).select_from(EmailInteraction).where(EmailInteraction.direction == "outbound")
            ),
        }


@pytest.fixture
def queued(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory.begin() as session:
        for _ in range(TICKETS):
            ingest(session, ticket_in(), settings)


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
@pytest.mark.usefixtures("queued")
def test_kill_at_each_step_with_the_database_transport(
    step: str, session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    crashed = run_engine(settings, "run", "--once", cwd=tmp_path, NTS_FAILPOINTS=step, CLAIM_LEASE_SECONDS=1)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr

    def done() -> bool:
        now = counts(session_factory)
        return now["states"] == ["sent"] * TICKETS and now["analyses"] == [1] * TICKETS

    settle(done, lambda: run_engine(settings, "run", "--once", cwd=tmp_path, CLAIM_LEASE_SECONDS=1))
    assert counts(session_factory) == {
        "analyses": [1] * TICKETS,
        "outbox": TICKETS,
        "states": ["sent"] * TICKETS,
        "outbound": TICKETS,
    }


@pytest.mark.slow
@pytest.mark.parametrize(("step", "arrived"), [("outbox.after_claim", False), ("outbox.after_send", True)])
@pytest.mark.usefixtures("queued")
def test_kill_mid_send_over_smtp_never_doubles_a_message(
    step: str, arrived: bool, session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    with smtp_sink() as (mailbox, port):
        send_through(settings, port)
        crashed = run_engine(settings, "run", "--once", cwd=tmp_path, NTS_FAILPOINTS=step, CLAIM_LEASE_SECONDS=1)
        assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
        assert len(mailbox.messages) == int(arrived)

        def settled() -> bool:
            states = counts(session_factory)["states"]
            return states.count("uncertain") == 1 and states.count("sent") == TICKETS - 1

        settle(settled, lambda: run_engine(settings, "run", "--once", cwd=tmp_path, CLAIM_LEASE_SECONDS=1))
        with session_factory.begin() as session:
            uncertain = session.scalar(select(OutboxMessage).where(OutboxMessage.state == OutboxState.UNCERTAIN))
            assert (
                uncertain.message_id in mailbox.message_ids()
                if arrived
                else uncertain.message_id not in mailbox.message_ids()
            )
            resolve_uncertain(session, uncertain.id, resend=not arrived, actor="operator:ann")
        settle(
            lambda: counts(session_factory)["states"] == ["sent"] * TICKETS,
            lambda: run_engine(settings, "run", "--once", cwd=tmp_path, CLAIM_LEASE_SECONDS=1),
        )
        assert sorted(mailbox.message_ids()) == sorted(set(mailbox.message_ids()))
        assert len(mailbox.messages) == TICKETS
