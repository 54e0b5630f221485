"""Write-back isolation: one event's failure is that event's alone, and the job says when events failed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.http import CircuitOpenError, ConnectorError, NotFoundError, UnreachableError
from engine.core.enums import MessageKind, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import JobStatus, SourceCursor, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.core.timeline import record_event
from engine.delivery.outbox import enqueue_email
from engine.delivery.sync import as_update, sync_back, sync_backlog
from engine.intake.ingest import ingest
from engine.jobs import run_job
from tests.factories import FakeSource, ticket_in


def escalate(session_factory: sessionmaker[Session], settings: Settings, count: int) -> list[str]:
    """`count` tickets from the source, each escalated then assigned: two write-back events per ticket."""
    external_ids = []
    with session_factory.begin() as session:
        for _ in range(count):
            ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
            transition(session, ticket, TicketStatus.ESCALATED, reason="needs a person")
            transition(session, ticket, TicketStatus.AWAITING_CUSTOMER, reason="asked for logs")
            external_ids.append(ticket.external_id)
    return external_ids


def timeline_of(session_factory: sessionmaker[Session], kind: str) -> list[TimelineEvent]:
    with session_factory() as session:
        return list(session.scalars(select(TimelineEvent).where(TimelineEvent.type == kind)))


def test_a_refused_event_fails_alone_and_the_job_is_not_ok(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    first, second, third = escalate(session_factory, settings, 3)
    source = FakeSource(answers={second: [NotFoundError("servicenow", "GET sys_journal_field: 404", status=404)]})
    report = run_job(session_factory, "w1", "sync_back", lambda: sync_back(engine, session_factory, settings, [source]))
    assert (report.pushed, report.failed, report.retrying) == (5, 1, 0)
    assert [external_id for external_id, _, _ in source.pushed] == [first, first, second, third, third]
    [failed] = timeline_of(session_factory, "sync_failed")
    assert "404" in failed.title and "Could not write event" in failed.title
    assert "Could not write event" in caplog.text
    with session_factory() as session:
        assert session.get(Ticket, failed.ticket_id).action_required
        status = session.get(JobStatus, ("w1", "sync_back"))
        assert status is not None and not status.last_ok and "1 event(s) failed" in (status.last_error or "")
        assert sync_backlog(session, "test") == 0


def test_a_transient_failure_waits_alone_keeps_its_ticket_in_order_then_gives_up(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings = settings.model_copy(update={"SYNC_BACK_MAX_ATTEMPTS": 2, "SYNC_BACK_INTERVAL_SECONDS": 0.001})
    flaky, healthy = escalate(session_factory, settings, 2)
    busy = ConnectorError("servicenow", "HTTP 503: maintenance", status=503, retryable=True)
    source = FakeSource(answers={flaky: [busy, busy]})
    first = sync_back(engine, session_factory, settings, [source])
    assert (first.pushed, first.failed, first.retrying) == (2, 0, 1)
    assert [external_id for external_id, _, _ in source.pushed] == [healthy, healthy], "flaky's 2nd event waits"
    with session_factory() as session:
        assert sync_backlog(session, "test") == 2
        retry = json.loads(session.get(SourceCursor, "sync:test").cursor)["retry"]
        assert [entry["attempts"] for entry in retry.values()] == [1, 0]
    second = sync_back(engine, session_factory, settings, [source])
    assert (second.pushed, second.failed) == (1, 1), "given up after 2 tries; the event behind it goes on"
    [failed] = timeline_of(session_factory, "sync_failed")
    assert "after 2 tries" in failed.title and "503" in failed.title


def test_a_lost_answer_whose_check_fails_is_uncertain_and_blocks_nothing(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings = settings.model_copy(update={"SYNC_BACK_INTERVAL_SECONDS": 0.001})
    lost, other = escalate(session_factory, settings, 2)
    timeout = UnreachableError("servicenow", "PATCH incident: read timed out", retryable=True)
    lookup = NotFoundError("servicenow", "GET sys_journal_field: 404 Invalid table", status=404)
    source = FakeSource(answers={lost: [timeout, lookup]})
    assert sync_back(engine, session_factory, settings, [source]).retrying == 1
    report = sync_back(engine, session_factory, settings, [source])
    assert (report.uncertain, report.failed, report.ok) == (1, 0, False)
    assert [(external_id, check) for external_id, _, check in source.pushed if external_id == lost] == [(lost, False)]
    assert len([pushed for pushed in source.pushed if pushed[0] == other]) == 2
    [uncertain] = timeline_of(session_factory, "sync_uncertain")
    assert "may or may not have reached test" in uncertain.title


def test_an_unreachable_source_pauses_the_run_without_counting(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    [external_id] = escalate(session_factory, settings, 1)
    source = FakeSource(answers={external_id: [CircuitOpenError("servicenow", "paused", retryable=True)] * 3})
    for _ in range(3):
        report = sync_back(engine, session_factory, settings, [source])
        assert report.stopped and report.ok and report.pushed == 0
    assert sync_back(engine, session_factory, settings, [source]).pushed == 2
    assert timeline_of(session_factory, "sync_failed") == []


def test_history_and_what_the_source_did_itself_are_never_written_back(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    open_item = ticket_in()
    with session_factory.begin() as session:
        ingest(session, ticket_in(history=True), settings)
        ingest(session, open_item, settings)
        ingest(session, open_item.model_copy(update={"history": True}), settings)
    source = FakeSource()
    assert sync_back(engine, session_factory, settings, [source]).pushed == 0
    with session_factory() as session:
        assert sync_backlog(session, "test") == 0


def test_only_messages_to_the_customer_are_public(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
        for kind in (MessageKind.ACKNOWLEDGEMENT, MessageKind.RESOLUTION):
            content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE)
            message = enqueue_email(session, settings, ticket, kind, content, dedupe_key=kind)
            session.flush()
            session.add(
                TimelineEvent(ticket_id=ticket.id, type="email_sent", title="sent", data={"outbox_id": message.id})
            )
        transition(session, ticket, TicketStatus.RESOLVED, reason="fixed")
        session.flush()
        events = session.scalars(
            select(TimelineEvent)
            .where(TimelineEvent.type.in_(["email_sent", "status_changed"]))
            .order_by(TimelineEvent.id)  # PostgreSQL returns rows in no promised order without it
        )
        assert [(e.type, as_update(session, e, ticket).public) for e in events] == [
            ("email_sent", False),
            ("email_sent", True),
            ("status_changed", False),
        ]


HOSTILE_NO = (
    "[code]<img src=x onerror=alert(1)>[/code] {html}<b>x</b>{html} [~accountid:5b10-admin] "
    "[click|https://evil.example/login] !https://evil.example/pixel.png! {noformat}"
)


def test_a_customers_no_comment_is_a_quote_apart_from_our_sentence(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
        title = f"Customer says the resolution did not solve it, rated 2/5: “{HOSTILE_NO[:200]}”"
        event = record_event(session, ticket, "resolution_rejected", title, actor="customer", comment=HOSTILE_NO)
        session.flush()
        update = as_update(session, event, ticket)
    assert update.quote == HOSTILE_NO and not update.public
    assert update.text.endswith(
        "Customer says the resolution did not solve it, rated 2/5. The customer's words, quoted as written:"
    )
    assert "code" not in update.text and "evil" not in update.text
