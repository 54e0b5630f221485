"""The connector card on Settings: open records before a source's start window, a lead taking them as backlog, and
a mailbox's start window shown and moved by a lead."""

from collections.abc import Iterator
from datetime import date, time

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine import connector_status
from engine.core.models import AuditEntry, Ticket
from engine.core.settings import Settings, get_settings
from tests.emulators.base import running
from tests.emulators.imap import ImapEmulator
from tests.emulators.servicenow import ServiceNowEmulator
from tests.factories import imap_values
from tests.pages.conftest import open_page, texts

SETTINGS = "pages/5_Settings.py"


@pytest.fixture
def instance(app: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServiceNowEmulator]:
    """A connected ServiceNow instance with 12 open incidents and 3 closed ones, all before the window."""
    for snow in running(ServiceNowEmulator()):
        caller = snow.add_user("caller@example.com", "Casey Caller")
        for n in range(12):
            snow.add_incident(f"Printer {n} jams", caller=caller)
        for n in range(3):
            snow.add_incident(f"Closed {n}", caller=caller, state="7")
        monkeypatch.setenv("SNOW_API_URL", f"{snow.url}/api/now/table/incident")
        monkeypatch.setenv("SNOW_AUTH_USERNAME", snow.username)
        monkeypatch.setenv("SNOW_AUTH_PASSWORD", snow.password)
        monkeypatch.setenv("CONNECTOR_RETRY_ATTEMPTS", "1")
        get_settings.cache_clear()
        connector_status._counts.clear()
        yield snow
        connector_status._counts.clear()


def test_a_lead_sees_the_open_backlog_and_takes_it_in_one_click(
    instance: ServiceNowEmulator, session_factory: sessionmaker[Session]
) -> None:
    at = open_page(SETTINGS, "ann")
    assert "12 open records last changed before the start window" in texts(at)
    assert at.button(key="backlog_take_servicenow").disabled, "an agent may not take it"

    at = open_page(SETTINGS, "lee")
    assert not at.button(key="backlog_take_servicenow").disabled
    assert at.button(key="backlog_take_servicenow").label == "Take 12 as backlog"
    at = at.button(key="backlog_take_servicenow").click().run()
    assert not at.exception
    assert "ServiceNow: 12 tickets taken as backlog; no acknowledgements sent." in texts(at)
    assert "Backlog taken by lee" in texts(at)
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 12
        [audit] = session.scalars(select(AuditEntry).where(AuditEntry.action == "take_backlog")).all()
        assert audit.actor == "operator:lee" and audit.target_id == "servicenow"


@pytest.fixture
def mailbox(app: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ImapEmulator]:
    """A connected IMAP mailbox whose start window is 1 December 2026, 08:00 UTC."""
    server = ImapEmulator().start()
    for name, value in imap_values(server).items():
        monkeypatch.setenv(name, value.get_secret_value() if isinstance(value, SecretStr) else str(value))
    monkeypatch.setenv("IMAP_START_AT", "2026-12-01 08:00:00")
    get_settings.cache_clear()
    yield server
    server.stop()


def test_the_mailbox_card_shows_its_start_window_and_a_lead_moves_it(
    mailbox: ImapEmulator, session_factory: sessionmaker[Session]
) -> None:
    at = open_page(SETTINGS, "ann")
    assert "reads what arrived from 2026-12-01 08:00:00 UTC on" in texts(at)
    assert at.button(key="window_move_imap").disabled, "an agent may not move it"

    at = open_page(SETTINGS, "lee")
    at.date_input(key="window_day_imap").set_value(date(2026, 11, 15))
    at.time_input(key="window_time_imap").set_value(time(6, 30))
    at = at.button(key="window_move_imap").click().run()
    assert not at.exception
    assert "imap: the start window now begins 2026-11-15 06:30:00 UTC" in texts(at)
    assert "reads what arrived from 2026-11-15 06:30:00 UTC on" in texts(at)
    with session_factory() as session:
        [audit] = session.scalars(select(AuditEntry).where(AuditEntry.action == "move_start_window")).all()
        assert audit.actor == "operator:lee"
        assert audit.details["before"] == "2026-12-01 08:00:00" and audit.details["after"] == "2026-11-15 06:30:00"
