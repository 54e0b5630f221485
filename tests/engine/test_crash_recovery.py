"""SIGKILL the engine at every step between claim and delivery; after a restart nothing is lost or doubled. Also
against real Postfix and Dovecot, killed mid-poll and mid-send."""

import email
import email.policy
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutboxState
from engine.core.models import Analysis, EmailInteraction, IngestError, OutboxMessage, Ticket
from engine.core.settings import Settings
from engine.delivery.outbox import resolve_uncertain
from engine.intake.ingest import ingest
from tests.engine_process import run_engine
from tests.factories import customer_mail, ticket_in
from tests.mail_servers import CUSTOMER_DOMAIN, DESK, USERS, MailServers
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


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_kill_mid_poll_and_mid_send_against_real_postfix_and_dovecot(
    session_factory: sessionmaker[Session], settings: Settings, mail_servers: MailServers, tmp_path: Path
) -> None:
    """The engine, SIGKILLed by failpoints after a committed page, before a page's commit, after a message went to
    Postfix and before one did, takes each customer mail in once and delivers each message once: counted in the
    customers' Dovecot mailbox, not in a test double."""
    for user in USERS:
        mail_servers.empty(user)
    values = {**mail_servers.desk_values(), "CONNECTOR_PAGE_SIZE": 2, "CONNECTOR_READ_TIMEOUT_SECONDS": 60}
    env = {name: value.get_secret_value() if isinstance(value, SecretStr) else value for name, value in values.items()}

    def engine(step: str = "") -> subprocess.CompletedProcess[str]:
        return run_engine(settings, "run", "--once", cwd=tmp_path, CLAIM_LEASE_SECONDS=1, NTS_FAILPOINTS=step, **env)

    def write(first: int, last: int) -> None:
        for number in range(first, last + 1):
            sender = f"pat+{number}@{CUSTOMER_DOMAIN}"
            mail_servers.deliver(
                customer_mail(f"Printer {number} shows E42", f"<crash-{number}@x.test>", sender), sender, DESK
            )
        mail_servers.wait_for_messages(DESK, last)

    def killed(step: str) -> None:
        crashed = engine(step)
        assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr

    def tickets() -> int:
        with session_factory() as session:
            return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)

    write(1, 3)
    killed("poll.after_commit")
    assert tickets() == 2, "the first page of two was committed"
    killed("poll.before_commit")
    assert tickets() == 2, "the second page was read, not committed"
    killed("outbox.after_send")
    assert tickets() == 3
    write(4, 5)
    killed("outbox.after_claim")

    def settled() -> bool:
        states = counts(session_factory)["states"]
        return tickets() == 5 and states.count("uncertain") == 2 and set(states) == {"sent", "uncertain"}

    settle(settled, engine, deadline=300)
    mailbox = f"pat@{CUSTOMER_DOMAIN}"

    def delivered_ids() -> list[str]:
        return [
            str(email.message_from_bytes(raw, policy=email.policy.default)["Message-ID"])
            for raw in mail_servers.messages(mailbox)
        ]

    wait_until(mail_servers.queue_empty, timeout=120, interval=0.5, what="Postfix's queue to empty")
    arrived = set(delivered_ids())
    with session_factory.begin() as session:
        uncertain = session.scalars(select(OutboxMessage).where(OutboxMessage.state == OutboxState.UNCERTAIN)).all()
        assert sorted(message.message_id in arrived for message in uncertain) == [False, True]
        for message in uncertain:  # the operator looks in the mailbox, as the outbox asks
            resolve_uncertain(session, message.id, resend=message.message_id not in arrived, actor="operator:ann")
    settle(lambda: set(counts(session_factory)["states"]) == {"sent"}, engine, deadline=300)
    wait_until(mail_servers.queue_empty, timeout=120, interval=0.5, what="Postfix's queue to empty")
    with session_factory() as session:
        sent = sorted(session.scalars(select(OutboxMessage.message_id)))
        inbound = session.scalars(
            select(EmailInteraction.message_id).where(EmailInteraction.direction == "inbound")
        ).all()
        assert session.scalar(select(func.count()).select_from(IngestError)) == 0
    assert sorted(inbound) == sorted(f"<crash-{number}@x.test>" for number in range(1, 6)), "each mail in once"
    assert len(sent) >= 5, "at least an acknowledgement per ticket"
    assert sorted(delivered_ids()) == sent, "each message delivered once"
