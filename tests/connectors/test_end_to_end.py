"""The whole loop through emulators: ServiceNow incident → acknowledgement via Mailgun → customer reply via
Graph threads onto the ticket → resolution written back to ServiceNow; and sync-back's failure handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.graph_mail import GraphMailSource
from connectors.mailgun import MailgunEvents
from connectors.servicenow import ServiceNowSource
from engine.core.enums import MessageKind, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import EmailInteraction, SourceCursor, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.delivery.delivery_events import poll_delivery_events
from engine.delivery.outbox import deliver_outbox, enqueue_email, make_transport
from engine.delivery.sync import sync_back, sync_backlog
from engine.jobs import poll_source
from tests.connectors.conftest import graph_values, mailgun_values, snow_values, with_settings
from tests.emulators.base import Response
from tests.emulators.graph import GraphEmulator, IdentityEmulator
from tests.emulators.mailgun import MailgunEmulator
from tests.emulators.servicenow import ServiceNowEmulator


@pytest.mark.slow
def test_servicenow_mailgun_graph_round_trip(
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
    snow: ServiceNowEmulator,
    mailgun: MailgunEmulator,
    identity: IdentityEmulator,
    graph: GraphEmulator,
    tls_files: tuple[Path, Path, Path],
) -> None:
    configured = with_settings(
        settings, **snow_values(snow), **mailgun_values(mailgun), **graph_values(identity, graph, tls_files[0])
    )
    caller = snow.add_user("casey@example.com", "Casey Caller")
    incident = snow.add_incident("VPN drops every hour", caller=caller, description="Since Monday")
    servicenow, outlook = ServiceNowSource(configured), GraphMailSource(configured)

    assert poll_source(engine, session_factory, configured, servicenow) == {"created": 1}
    with session_factory() as session, session.begin():
        ticket = session.scalars(select(Ticket)).one()
        content = acknowledgement(ticket, configured.SUPPORT_SIGNATURE)
        enqueue_email(session, configured, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="ack")
    assert deliver_outbox(session_factory, configured, make_transport(configured)).sent == 1
    [ack] = mailgun.messages
    assert "TCKT-1" in (ack.one("subject") or "")

    graph.deliver(
        "casey@example.com",
        "RE: " + (ack.one("subject") or "").replace("TCKT-1", "ticket"),
        "It still drops after the update",
        headers={"In-Reply-To": ack.one("h:Message-Id") or ""},
    )
    assert poll_source(engine, session_factory, configured, outlook) == {"reply": 1}
    assert poll_delivery_events(engine, session_factory, MailgunEvents(configured)) == {
        "ignored": 1,
        "email_delivered": 1,
    }

    with session_factory() as session, session.begin():
        ticket = session.scalars(select(Ticket)).one()
        replies = session.scalars(select(EmailInteraction).where(EmailInteraction.direction == "inbound")).all()
        assert [r.body for r in replies] == ["It still drops after the update"]
        ticket.resolution = "Updated the VPN client to 5.2; drops stopped."
        transition(session, ticket, TicketStatus.RESOLVED, actor="agent:sam", reason="fix confirmed")
        assert sync_backlog(session, "servicenow") == 2

    report = sync_back(engine, session_factory, configured, [servicenow])
    assert report.pushed == 2
    assert incident["state"] == "6" and incident["close_code"] == "Solution provided"
    assert incident["close_notes"] == "Updated the VPN client to 5.2; drops stopped."
    notes = [entry["text"] for entry in snow.journal]
    assert "acknowledgement sent to casey@example.com" in notes[0] and "Subject: Re: your request [TCKT-" in notes[0]
    assert "Resolved" in notes[1]
    assert sync_back(engine, session_factory, configured, [servicenow]).pushed == 0
    assert poll_source(engine, session_factory, configured, servicenow) == {"duplicate": 1}, "our write-back echo"


def test_sync_back_retries_each_event_and_a_refusal_fails_only_its_own(
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
    snow: ServiceNowEmulator,
) -> None:
    configured = with_settings(
        settings,
        **snow_values(snow),
        SYNC_BACK_MAX_ATTEMPTS=3,
        SYNC_BACK_INTERVAL_SECONDS=0.001,
        CONNECTOR_RETRY_ATTEMPTS=1,
        CONNECTOR_BREAKER_THRESHOLD=50,
    )
    caller = snow.add_user("casey@example.com")
    gone, kept = (snow.add_incident(f"Issue {n}", caller=caller) for n in range(2))
    servicenow = ServiceNowSource(configured)
    poll_source(engine, session_factory, configured, servicenow)
    del snow.tables["incident"][gone["sys_id"]]
    with session_factory() as session, session.begin():
        for ticket in session.scalars(select(Ticket).order_by(Ticket.id)):
            transition(session, ticket, TicketStatus.ESCALATED, reason="needs a network engineer")
            ticket.team = "Network"

    snow.fail(Response.json({"error": {"message": "maintenance"}}, 503), times=2)
    outage = sync_back(engine, session_factory, configured, [servicenow])
    assert (outage.pushed, outage.retrying, outage.failed) == (0, 2, 0), "each event waits for its own retry"
    second = sync_back(engine, session_factory, configured, [servicenow])
    assert (second.pushed, second.failed, second.retrying) == (1, 1, 0), "404 fails its event alone"
    assert kept["assignment_group"] == "Network" and kept["state"] == "2"
    with session_factory() as session:
        failed = session.scalars(select(TimelineEvent).where(TimelineEvent.type == "sync_failed")).one()
        assert "404" in failed.title
        assert session.get(Ticket, failed.ticket_id).action_required
        cursor = json.loads(session.get(SourceCursor, "sync:servicenow").cursor)
        assert cursor["retry"] == {}
        assert sync_backlog(session, "servicenow") == 0
