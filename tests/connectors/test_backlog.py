"""Open records before a source's start window: counted on the card and in "test connection", taken as backlog by
a lead in one click (ServiceNow and Jira emulators, through the engine)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.jira import JiraSource
from connectors.servicenow import ServiceNowSource
from engine.connector_status import backlog_taken, open_before_window, take_backlog, test_connection
from engine.core.enums import MessageKind, Role
from engine.core.models import AuditEntry, OutboxMessage, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.delivery.sync import SYNCED_TYPES
from engine.jobs import poll_source
from engine.operators.permissions import Actor, PermissionDeniedError
from engine.pipeline import claim_pending_tickets
from tests.connectors.conftest import Sleeps, jira_values, snow_values, with_settings
from tests.emulators.jira import JiraEmulator
from tests.emulators.servicenow import ServiceNowEmulator

LEAD = Actor("lena", Role.LEAD)


def _acknowledgements(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == MessageKind.ACKNOWLEDGEMENT)
        return int(session.scalar(query) or 0)


def _claim_all(factory: sessionmaker[Session], settings: Settings) -> None:
    while claims := claim_pending_tickets(factory, settings, worker="test"):
        with factory() as session, session.begin():
            for ticket in session.scalars(select(Ticket).where(Ticket.id.in_([c.ticket_id for c in claims]))):
                ticket.pending_since = None


def test_servicenow_open_backlog_is_counted_and_taken_once_without_acknowledgements(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, snow: ServiceNowEmulator
) -> None:
    caller = snow.add_user("caller@example.com", "Casey Caller")
    for n in range(300):
        snow.add_incident(f"Printer {n} jams", caller=caller)
    for n in range(20):
        snow.add_incident(f"Closed {n}", caller=caller, state="7")
    configured = with_settings(settings, **{**snow_values(snow), "SNOW_START_AT": ""})
    assert poll_source(engine, session_factory, configured, ServiceNowSource(configured, sleep=Sleeps())) == {}

    status = test_connection("servicenow", configured)
    assert status.authenticated is True and status.before_window == 300 and status.window_start

    with pytest.raises(PermissionDeniedError):
        take_backlog(engine, session_factory, configured, "servicenow", Actor("abe", Role.AGENT), acknowledge=True)
    counts = take_backlog(engine, session_factory, configured, "servicenow", LEAD, acknowledge=False)
    assert counts == {"created": 300}
    again = take_backlog(engine, session_factory, configured, "servicenow", LEAD, acknowledge=False)
    assert "created" not in again and sum(again.values()) == 300, "taking it twice makes no second ticket"
    assert poll_source(engine, session_factory, configured, ServiceNowSource(configured, sleep=Sleeps())) == {}

    with session_factory() as session:
        tickets = session.scalars(select(Ticket)).all()
        assert len(tickets) == 300 and all(t.pending_since is not None for t in tickets), "queued for analysis"
        assert all(t.additional_info["backlog"] == {"acknowledge": False} for t in tickets)
        events = session.scalars(select(TimelineEvent).where(TimelineEvent.type == "received_backlog")).all()
        assert len(events) == 300 and "received_backlog" not in SYNCED_TYPES, "never written back"
        [audit, _] = session.scalars(select(AuditEntry).where(AuditEntry.action == "take_backlog")).all()
        assert audit.actor == "operator:lena" and audit.details == {"acknowledge": False, "created": 300}
        taken = backlog_taken(session, "servicenow")
        assert taken is not None and taken.actor == "operator:lena"
    _claim_all(session_factory, configured)
    assert _acknowledgements(session_factory) == 0


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_jira_open_backlog_is_counted_and_taken_with_acknowledgements_when_chosen(
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
    jira_server: JiraEmulator,
    deployment: str,
) -> None:
    jira_server.deployment = deployment
    for n in range(230):
        jira_server.add_issue(f"Laptop {n}")
    for n in range(7):
        jira_server.add_issue(f"Done {n}", done=True)
    configured = with_settings(settings, **{**jira_values(jira_server), "JIRA_START_AT": ""})
    assert poll_source(engine, session_factory, configured, JiraSource(configured, sleep=Sleeps())) == {}

    found = open_before_window("jira", configured, max_age=0)
    assert not isinstance(found, str) and found is not None
    assert found.count == 230 and found.approximate is (deployment == "Cloud")
    assert test_connection("jira", configured).before_window == 230

    assert take_backlog(engine, session_factory, configured, "jira", LEAD, acknowledge=True) == {"created": 230}
    assert poll_source(engine, session_factory, configured, JiraSource(configured, sleep=Sleeps())) == {}
    _claim_all(session_factory, configured)
    assert _acknowledgements(session_factory) == 230


def test_a_source_that_cannot_count_says_so(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    configured = with_settings(plain_settings, **{**snow_values(snow), "SNOW_AUTH_PASSWORD": SecretStr("wrong")})
    found = open_before_window("servicenow", configured, max_age=0)
    assert isinstance(found, str) and found.startswith("open records before the start window not counted")
