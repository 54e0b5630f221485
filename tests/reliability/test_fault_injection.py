"""Two engines over SMTP while a controller SIGKILLs them, cuts their database connections and restarts the
PostgreSQL server itself at random moments.

The faults come at seeded random points of progress; afterwards the desk must settle with every ticket analysed
once, nothing left claimed, and every acknowledgement in the sink exactly once after an operator settles the
`uncertain` rows the way the dashboard does.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutboxState, TicketStatus
from engine.core.models import Analysis, OutboxMessage, Ticket, TimelineEvent, utcnow
from engine.core.settings import Settings
from engine.delivery.outbox import resolve_uncertain
from engine.intake.ingest import ingest
from tests.engine_process import engine_env
from tests.factories import ticket_in
from tests.mail_sink import Mailbox, send_through, smtp_sink
from tests.waiting import wait_until

TICKETS = 2000
SEED = 20240611
KILLS = 6
DROPS = 4
RESTARTS = 1
CLUSTERS = Path("/etc/postgresql")
TUNING = {
    "CLAIM_LEASE_SECONDS": 2,
    "PROCESS_INTERVAL_SECONDS": 0.2,
    "OUTBOX_INTERVAL_SECONDS": 0.2,
    "PROCESS_BATCH_SIZE": 20,
    "OUTBOX_BACKOFF_SECONDS": 1,
}
TERMINATE_OTHERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@dataclass
class Engines:
    """Two `python -m engine run` slots; a killed one is restarted under a new worker id, its log kept."""

    settings: Settings
    workdir: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)
    starts: int = 0

    def start(self) -> subprocess.Popen[str]:
        self.starts += 1
        log = (self.workdir / f"engine-{self.starts}.log").open("w")
        self.logs.append(log)
        return subprocess.Popen(
            [sys.executable, "-m", "engine", "run"],
            env=engine_env(self.settings, WORKER_ID=f"worker-{self.starts}", **TUNING),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def kill_and_restart(self, slot: int) -> None:
        os.kill(self.processes[slot].pid, signal.SIGKILL)
        self.processes[slot].wait(timeout=30)
        self.processes[slot] = self.start()

    def assert_alive(self) -> None:
        dead = [process.args for process in self.processes if process.poll() is not None]
        assert not dead, f"an engine process died on its own; logs in {self.workdir}"

    def stop(self) -> list[int | None]:
        for process in self.processes:
            process.terminate()
        codes = [process.wait(timeout=60) for process in self.processes]
        for log in self.logs:
            log.close()
        return codes


def drop_connections(engine: Engine) -> int:
    """Terminate every other backend on the test database: what a failover or a network cut does to the engines."""
    with engine.connect() as connection:
        dropped = len(connection.execute(text(TERMINATE_OTHERS)).all())
        connection.commit()
    return dropped


def restart_postgres() -> None:
    """Restart the server (Debian cluster tools, as `.ci/run` starts it): every connection of every engine breaks,
    and for a few seconds no new one is accepted."""
    version = sorted(path.name for path in CLUSTERS.iterdir())[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def analyses_done(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Analysis)) or 0


def settled(factory: sessionmaker[Session]) -> bool:
    """Every ticket analysed and released, every message out of `pending`/`sending`."""
    with factory() as session:
        analysed = session.scalar(select(func.count(func.distinct(Analysis.ticket_id))))
        queued = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.pending_since.is_not(None)))
        states = Counter(session.scalars(select(OutboxMessage.state)))
    in_flight = states[OutboxState.PENDING] + states[OutboxState.SENDING]
    return analysed == TICKETS and queued == 0 and states.total() == TICKETS and in_flight == 0


def all_sent(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        return set(session.scalars(select(OutboxMessage.state).distinct())) == {OutboxState.SENT}


def settle_uncertain(factory: sessionmaker[Session], mailbox: Mailbox) -> int:
    """Do what an operator does: mark sent what reached the mailbox, resend what did not."""
    received = set(mailbox.message_ids())
    with factory.begin() as session:
        uncertain = session.scalars(select(OutboxMessage).where(OutboxMessage.state == OutboxState.UNCERTAIN)).all()
        for message in uncertain:
            resolve_uncertain(session, message.id, resend=message.message_id not in received, actor="operator:ann")
    return len(uncertain)


@pytest.mark.slow
@pytest.mark.serial
@pytest.mark.timeout(900)
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_kills_drops_and_a_database_restart_neither_lose_nor_double_work(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    if not CLUSTERS.is_dir():
        pytest.skip("restarting PostgreSQL needs the Debian cluster tools (/etc/postgresql), as in CI")
    with session_factory.begin() as session:
        for _ in range(TICKETS):
            ingest(session, ticket_in(), settings)
    rng = random.Random(SEED)
    faults = ["kill"] * KILLS + ["drop"] * DROPS + ["restart"] * RESTARTS
    rng.shuffle(faults)
    moments = sorted(rng.randint(TICKETS // 20, TICKETS * 9 // 10) for _ in faults)
    kills = drops = restarts = dropped_backends = 0
    with smtp_sink() as (mailbox, port):
        send_through(settings, port)
        engines = Engines(settings, tmp_path)
        engines.processes = [engines.start(), engines.start()]
        try:
            for fault, moment in zip(faults, moments, strict=True):

                def reached(moment: int = moment) -> bool:
                    engines.assert_alive()
                    return analyses_done(session_factory) >= moment

                wait_until(reached, timeout=120, what=f"{moment} analyses")
                if fault == "kill":
                    engines.kill_and_restart(rng.randrange(len(engines.processes)))
                    kills += 1
                elif fault == "drop":
                    dropped_backends += drop_connections(engine)
                    drops += 1
                else:
                    restart_postgres()
                    restarts += 1

            def quiet() -> bool:
                engines.assert_alive()
                return settled(session_factory)

            wait_until(quiet, timeout=150, interval=0.5, what="the desk to settle after the faults")
            with session_factory() as session:
                uncertain_ids = set(
                    session.scalars(
                        select(OutboxMessage.message_id).where(OutboxMessage.state == OutboxState.UNCERTAIN)
                    )
                )
            before = Counter(mailbox.message_ids())
            resolved = settle_uncertain(session_factory, mailbox)
            wait_until(lambda: all_sent(session_factory), timeout=60, what="resent messages to be delivered")
        finally:
            exit_codes = engines.stop()
        received = Counter(mailbox.message_ids())

    with session_factory() as session:
        per_ticket = Counter(session.scalars(select(Analysis.ticket_id)))
        stuck = session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(
                Ticket.status == TicketStatus.ANALYZING,
                (Ticket.claim_expires.is_(None)) | (Ticket.claim_expires < utcnow()),
            )
        )
        claimed = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.claim_token.is_not(None)))
        reclaimed = session.scalar(select(func.count()).where(TimelineEvent.type == "claim_expired"))
        requeued = session.scalar(select(func.count()).where(TimelineEvent.type == "requeued"))
        acknowledgements = list(session.scalars(select(OutboxMessage.message_id)))
    print(
        f"\nfault injection (seed {SEED}): kills={kills} connection_drops={drops} postgres_restarts={restarts} "
        f"(backends terminated={dropped_backends}) reclaimed_claims={reclaimed} requeued_by_sweeper={requeued} "
        f"uncertain_rows={resolved} (of which had arrived={len(uncertain_ids & set(before))}) "
        f"received_before_resolution={before.total()} received_messages={received.total()}"
    )
    assert (kills, drops, restarts) == (KILLS, DROPS, RESTARTS)
    assert len(per_ticket) == TICKETS and set(per_ticket.values()) == {1}, "a ticket was analysed twice or never"
    assert stuck == 0 and claimed == 0 and requeued == 0
    assert max(before.values()) == 1, "a message reached the customer twice before any operator acted"
    cuts = KILLS + (DROPS + RESTARTS) * len(engines.processes)
    assert resolved <= cuts, "uncertain rows without a crash or cut mid-send"
    assert len(acknowledgements) == TICKETS
    assert received == Counter(acknowledgements), "every acknowledgement arrives exactly once"
    assert exit_codes == [0, 0]
