"""Every vendor API misbehaves for a while: ServiceNow, Jira, Microsoft Graph and Mailgun answer with 500s,
429s with Retry-After, a request that outlives the client's timeout, and bodies cut off mid-stream.

The engine's jobs run as the scheduler runs them (`run_all_once`) until the desk settles. Afterwards every
ticket exists once, every acknowledgement reached Mailgun once, every decision was written back once, and
the job records the dashboard reads show the failures that happened and a healthy last run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.connector_status import check_connectors
from engine.core.enums import OutboxState
from engine.core.models import JobStatus, OutboxMessage, Ticket
from engine.core.settings import Settings
from engine.delivery.sync import sync_backlog
from engine.runtime import build_runtime
from engine.scheduler import run_all_once
from tests.connectors.conftest import graph_values, jira_values, mailgun_values, snow_values, with_settings
from tests.emulators.base import Emulator, Response
from tests.emulators.graph import GraphEmulator, IdentityEmulator
from tests.emulators.jira import JiraEmulator
from tests.emulators.mailgun import MailgunEmulator
from tests.emulators.servicenow import ServiceNowEmulator
from tests.waiting import wait_until

PER_SOURCE = 12
READ_TIMEOUT = 1.0
SOURCES = ("servicenow", "jira", "outlook")
ROUND_SECONDS = 0.2  # between runs of every job, as the scheduler's intervals space them


def storm(emulator: Emulator, path: str = "", method: str | None = None) -> None:
    """The next requests under `path` (by `method`, when given) fail in each way a vendor API fails; the one that
    outlives the client's timeout is still carried out by the server, as a slow real service would."""
    fault = {"path": path, "method": method}
    emulator.fail(Response.json({"error": {"message": "Internal Server Error"}}, 500), times=2, **fault)
    emulator.fail(
        Response.json({"error": {"message": "Too Many Requests"}}, 429, **{"Retry-After": "1"}), times=2, **fault
    )
    emulator.fail(delay=READ_TIMEOUT * 1.5, **fault)
    emulator.fail(Response.cut_off({"result": [{"sys_id": "x" * 500}]}), times=2, **fault)
    emulator.fail(Response.json({"error": {"message": "Service Unavailable"}}, 503, **{"Retry-After": "1"}), **fault)


def settled(factory: sessionmaker[Session]) -> bool:
    with factory() as session:
        tickets = session.scalar(select(func.count()).select_from(Ticket))
        queued = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.pending_since.is_not(None)))
        states = Counter(session.scalars(select(OutboxMessage.state)))
        unsynced = sync_backlog(session, "servicenow") + sync_backlog(session, "jira")
    return (
        tickets == PER_SOURCE * len(SOURCES) and queued == 0 and states == {OutboxState.SENT: tickets} and not unsynced
    )


@pytest.mark.slow
def test_every_vendor_api_misbehaving_for_a_while_loses_and_doubles_nothing(
    session_factory: sessionmaker[Session],
    settings: Settings,
    snow: ServiceNowEmulator,
    jira_server: JiraEmulator,
    identity: IdentityEmulator,
    graph: GraphEmulator,
    mailgun: MailgunEmulator,
    tls_files: tuple[Path, Path, Path],
) -> None:
    configured = with_settings(
        settings,
        **snow_values(snow),
        **jira_values(jira_server),
        **graph_values(identity, graph, tls_files[0]),
        **mailgun_values(mailgun),
        CONNECTOR_RETRY_ATTEMPTS=2,
        CONNECTOR_READ_TIMEOUT_SECONDS=READ_TIMEOUT,
        CONNECTOR_BREAKER_THRESHOLD=3,
        CONNECTOR_BREAKER_RESET_SECONDS=0.5,
        OUTBOX_BACKOFF_SECONDS=1,
        SYNC_BACK_ENABLED=True,
        SYNC_BACK_INTERVAL_SECONDS=0.5,
        JIRA_INTERNAL_NOTES="property",
    )
    for n in range(PER_SOURCE):
        snow.add_incident(f"Laptop {n} will not boot", caller=snow.add_user(f"caller{n}@example.com"))
        jira_server.add_issue(f"Build server {n} is red", reporter=f"dev{n}@example.com")
        graph.deliver(f"mailer{n}@example.com", f"Printer {n} jams")
    writes: list[tuple[Emulator, str, str]] = [
        (snow, "/api/now/table/incident/", "PATCH"),
        (jira_server, "/rest/api/2/issue/", "POST"),
        (graph, f"/v1.0/users/{graph.mailbox}/messages/", "PATCH"),
        (mailgun, f"/v3/{mailgun.domain}/messages", "POST"),
    ]
    for emulator, write_path, method in writes:
        storm(emulator, write_path, method)
        storm(emulator)

    runtime = build_runtime(configured)
    rounds = 0

    def one_round_then_settled() -> bool:
        """Every job once, as the scheduler runs them; settled only after a few rounds have run."""
        nonlocal rounds
        rounds += 1
        run_all_once(runtime)
        return settled(session_factory) and rounds >= 3

    wait_until(one_round_then_settled, timeout=120, interval=ROUND_SECONDS, what="the desk to settle after the storm")
    run_all_once(runtime)  # one more sync-back round after the last message went out

    with session_factory() as session:
        tickets = session.execute(select(Ticket.source, Ticket.external_id)).all()
        jobs = {row.job: row for row in session.scalars(select(JobStatus))}
    sent_to = Counter(message.one("to") for message in mailgun.messages)
    notes = Counter((entry["sys_id"], entry["text"]) for entry in snow.journal)
    comments = Counter(jira_server.comments)
    failures = {name: jobs[name].failures for name in sorted(jobs) if jobs[name].failures}
    checked = {
        "servicenow notes": snow.paths("GET").count("/api/now/table/sys_journal_field"),
        "jira comments": sum(path.endswith("/comment") for path in jira_server.paths("GET")),
        "mailgun sends": sum(1 for r in mailgun.requests if r.method == "GET" and r.arg("message-id")),
    }
    print(f"\nconnector storm: {rounds} rounds, job failures {failures}, lost answers checked {checked}")

    assert Counter(source for source, _ in tickets) == dict.fromkeys(SOURCES, PER_SOURCE)
    assert len(set(tickets)) == len(tickets)
    assert len(sent_to) == PER_SOURCE * len(SOURCES) and set(sent_to.values()) == {1}, "an acknowledgement twice"
    assert notes and max(notes.values()) == 1, "a ServiceNow work note written twice"
    assert comments and max(comments.values()) == 1, "a Jira comment written twice"
    assert all(checked.values()), "every write whose answer was lost is checked before it is repeated"
    for name in ("poll_servicenow", "poll_jira", "poll_outlook"):
        assert jobs[name].failures > 0 and jobs[name].last_ok, name
    status = {connector.name: connector for connector in check_connectors(configured)}
    assert all(status[name].reachable and not status[name].last_error for name in SOURCES)
