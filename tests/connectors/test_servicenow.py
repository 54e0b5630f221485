"""ServiceNow connector against the Table/Attachment API emulator: paging, resume, faults, write-back."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import SourceUpdate
from connectors.http import (
    AuthenticationError,
    CircuitOpenError,
    ConnectorError,
    MalformedResponseError,
    NotFoundError,
    UnreachableError,
)
from connectors.servicenow import ServiceNowSource, configuration_problems
from engine.jobs import poll_source
from engine.models import IngestError, SourceCursor, Ticket
from engine.settings import ConfigurationError, Settings
from tests.connectors.conftest import Sleeps, snow_values, with_settings
from tests.emulators.base import Response
from tests.emulators.servicenow import ServiceNowEmulator


def source(settings: Settings, snow: ServiceNowEmulator, sleep: Sleeps | None = None, **values: object):
    configured = with_settings(settings, **{**snow_values(snow), **values})
    return ServiceNowSource(configured, sleep=sleep if sleep is not None else Sleeps())


def seed(snow: ServiceNowEmulator, count: int, **fields: object) -> list[dict]:
    caller = snow.add_user("caller@example.com", "Casey Caller")
    return [snow.add_incident(f"Printer {n} jams", caller=caller, **fields) for n in range(count)]


def everything(polled) -> list:
    return [item for page in polled for item in page.items]


def test_pages_through_every_incident_in_order(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    records = seed(snow, 130)
    pages = list(source(plain_settings, snow, CONNECTOR_PAGE_SIZE=25).poll(None))
    items = [item for page in pages for item in page.items]
    assert [item.external_id for item in items] == [f"incident:{r['sys_id']}" for r in records]
    assert [len(page.items) for page in pages] == [25, 25, 25, 25, 25, 5, 0], "the last page stores the window"
    assert items[0].requester_email == "caller@example.com"
    assert items[0].requester_name == "Casey Caller"
    assert items[0].updated_at is not None and items[0].updated_at.tzinfo is not None
    assert sum(path.startswith("/api/now/table/sys_user/") for path in snow.paths()) == 1, "callers are cached"
    queries = [r.arg("sysparm_query") for r in snow.requests if r.path == "/api/now/table/incident"]
    assert all(query.endswith("ORDERBYsys_updated_on^ORDERBYsys_id") for query in queries)


def test_resumes_from_the_cursor_after_a_restart(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    records = seed(snow, 60)
    first = source(plain_settings, snow, CONNECTOR_PAGE_SIZE=20).poll(None)
    seen = [next(first), next(first)]
    cursor = seen[-1].cursor
    rest = list(source(plain_settings, snow, CONNECTOR_PAGE_SIZE=20).poll(cursor))
    ids = [item.external_id for page in [*seen, *rest] for item in page.items]
    assert ids == [f"incident:{r['sys_id']}" for r in records]
    assert list(source(plain_settings, snow, CONNECTOR_PAGE_SIZE=20).poll(rest[-1].cursor)) == []


def test_an_update_during_the_poll_skips_nothing(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    records = seed(snow, 50)
    polled = source(plain_settings, snow, CONNECTOR_PAGE_SIZE=10).poll(None)
    first = next(polled)
    records[3]["short_description"] = "Printer 3 jams again"
    records[3]["sys_updated_on"] = snow.tick()
    later = list(polled)
    ids = {item.external_id for page in [first, *later] for item in page.items}
    assert ids == {f"incident:{r['sys_id']}" for r in records}
    assert [i.subject for p in later for i in p.items][-1] == "Printer 3 jams again"


def test_many_records_with_one_timestamp_page_correctly(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    records = seed(snow, 75, updated="2025-03-01 09:00:00")
    items = everything(source(plain_settings, snow, CONNECTOR_PAGE_SIZE=20).poll(None))
    assert sorted(item.external_id for item in items) == sorted(f"incident:{r['sys_id']}" for r in records)


def test_start_at_skips_older_records(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    seed(snow, 3, updated="2020-01-01 00:00:00")
    new = seed(snow, 2)
    items = everything(source(plain_settings, snow, SNOW_START_AT="2024-01-01 00:00:00").poll(None))
    assert [item.external_id for item in items] == [f"incident:{r['sys_id']}" for r in new]


def test_attachments_come_with_their_incident(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    [record] = seed(snow, 1)
    snow.attach("incident", record["sys_id"], "error.log", b"stack trace here")
    snow.attach("incident", record["sys_id"], "huge.bin", b"x" * 2000, "application/octet-stream")
    [item] = everything(source(plain_settings, snow, MAX_ATTACHMENT_BYTES=1000).poll(None))
    assert [(a.filename, a.data) for a in item.attachments] == [("error.log", b"stack trace here")]


def test_unreadable_records_are_rejected_and_the_rest_goes_on(
    plain_settings: Settings, snow: ServiceNowEmulator
) -> None:
    good = seed(snow, 2)
    nobody = snow.add_user(None, "No Mail")
    snow.add_incident("From someone without e-mail", caller=nobody)
    snow.add_incident("Enormous", caller=good[0]["caller_id"]["value"], description="é" * 2_100_000)
    page, _ = list(source(plain_settings, snow).poll(None))
    assert [item.subject for item in page.items] == ["Printer 0 jams", "Printer 1 jams"]
    errors = [rejected.error for rejected in page.rejected]
    assert any("no e-mail address" in error for error in errors)
    assert any("at most 2000000 characters" in error for error in errors)
    assert json.loads(page.cursor)["incident"]["sys_id"], "the cursor moves past rejected records too"


def test_retry_after_is_honoured(plain_settings: Settings, snow: ServiceNowEmulator, sleeps: Sleeps) -> None:
    seed(snow, 1)
    snow.fail(
        Response.json({"error": {"message": "Too many requests"}}, 429, **{"Retry-After": "7"}),
        path="/api/now/table/incident",
    )
    items = everything(source(plain_settings, snow, sleeps, CONNECTOR_MAX_RETRY_AFTER_SECONDS=600).poll(None))
    assert len(items) == 1
    assert sleeps == [7.0]


def test_server_errors_back_off_exponentially_then_give_up(
    plain_settings: Settings, snow: ServiceNowEmulator, sleeps: Sleeps
) -> None:
    seed(snow, 1)
    snow.fail(Response.json({"error": {"message": "boom"}}, 500), path="/api/now/table/incident", times=10)
    polled = source(plain_settings, snow, sleeps, CONNECTOR_BACKOFF_SECONDS=1.0, CONNECTOR_RETRY_ATTEMPTS=4).poll(None)
    with pytest.raises(ConnectorError, match="answered 500: boom"):
        list(polled)
    assert len(sleeps) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0 and 2.0 <= sleeps[2] <= 4.0


def test_a_dead_source_opens_the_breaker(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    seed(snow, 1)
    snow.fail(Response.json({"error": {"message": "down"}}, 503), times=100)
    connector = source(plain_settings, snow, CONNECTOR_BREAKER_THRESHOLD=2, CONNECTOR_RETRY_ATTEMPTS=1)
    for _ in range(2):
        with pytest.raises(ConnectorError, match="503"):
            list(connector.poll(None))
    calls = len(snow.requests)
    with pytest.raises(CircuitOpenError, match="paused"):
        list(connector.poll(None))
    assert len(snow.requests) == calls, "an open breaker makes no call"


def test_wrong_password_is_a_clear_error_without_the_secret(
    plain_settings: Settings, snow: ServiceNowEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    seed(snow, 1)
    wrong = "Wr0ng-Passw0rd-xyz"
    configured = with_settings(plain_settings, **{**snow_values(snow), "SNOW_AUTH_PASSWORD": _secret(wrong)})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError, match=r"401: User Not Authenticated.*check the credentials") as raised:
        list(ServiceNowSource(configured).poll(None))
    assert wrong not in str(raised.value) and wrong not in repr(raised.value.__dict__)
    assert wrong not in caplog.text
    assert snow.password not in str(raised.value)


def test_timeouts_malformed_and_non_utf8_answers(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    seed(snow, 1)
    connector = source(
        plain_settings,
        snow,
        CONNECTOR_READ_TIMEOUT_SECONDS=0.2,
        CONNECTOR_RETRY_ATTEMPTS=2,
        CONNECTOR_BREAKER_THRESHOLD=100,
    )
    snow.fail(None, path="/api/now/table/incident", delay=0.6, times=2)
    with pytest.raises(UnreachableError, match="timed out"):
        list(connector.poll(None))
    snow.fail(Response(200, b'{"result": [', {"Content-Type": "application/json"}))
    with pytest.raises(MalformedResponseError, match="not JSON"):
        list(connector.poll(None))
    snow.fail(Response.json({"rows": []}))
    with pytest.raises(MalformedResponseError, match="no `result` list"):
        list(connector.poll(None))


def test_non_utf8_bytes_are_replaced_not_fatal(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    [record] = seed(snow, 1)
    body = json.dumps({"result": [{**record, "caller_id": record["caller_id"]["value"]}]}).encode()
    snow.fail(Response(200, body.replace(b"Printer 0", b"Printer \xff0"), {"Content-Type": "application/json"}))
    [item] = everything(source(plain_settings, snow).poll(None))
    assert item.subject == "Printer \ufffd0 jams"


def test_write_back_notes_state_group_and_resolution(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    [record] = seed(snow, 1)
    connector = source(plain_settings, snow)
    external_id = f"incident:{record['sys_id']}"
    connector.push(SourceUpdate(1, external_id, "note", "Acknowledgement sent to the caller"))
    connector.push(SourceUpdate(2, external_id, "status", "Escalated to Network", status="Escalated", team="Network"))
    assert record["state"] == "2" and record["assignment_group"] == "Network"
    connector.push(SourceUpdate(3, external_id, "status", "Resolved", status="Resolved", resolution="Reset the VPN"))
    assert record["state"] == "6"
    assert record["close_code"] == "Solution provided" and record["close_notes"] == "Reset the VPN"
    assert [entry["text"] for entry in snow.journal] == [
        "Acknowledgement sent to the caller",
        "Escalated to Network",
        "Resolved",
    ]
    assert all(entry["field"] == "work_notes" for entry in snow.journal)
    with pytest.raises(NotFoundError, match="404: No Record found"):
        connector.push(SourceUpdate(4, "incident:missing", "note", "hello"))


def test_configuration_check_names_each_variable(plain_settings: Settings) -> None:
    problems = configuration_problems(with_settings(plain_settings, SNOW_API_URL="https://x.example/incidents"))
    assert problems == [
        "SNOW_API_URL: must be a Table API URL like https://<instance>.service-now.com/api/now/table/incident",
        "SNOW_AUTH_USERNAME: not set",
        "SNOW_AUTH_PASSWORD: not set",
    ]
    with pytest.raises(ConfigurationError, match="SNOW_API_URL"):
        ServiceNowSource(plain_settings)


def test_poll_job_stores_cursor_and_ingests_once(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, snow: ServiceNowEmulator
) -> None:
    seed(snow, 30)
    connector = source(settings, snow, CONNECTOR_PAGE_SIZE=8)
    assert poll_source(engine, session_factory, settings, connector) == {"created": 30}
    assert poll_source(engine, session_factory, settings, connector) == {}
    restarted = source(settings, snow, CONNECTOR_PAGE_SIZE=8)
    with session_factory() as session:
        restarted_cursor = session.get(SourceCursor, "servicenow")
        assert restarted_cursor is not None
        cursor = json.loads(restarted_cursor.cursor)
    overlapping = list(restarted.poll(json.dumps({"incident": {"updated": "2025-03-01 08:00:10", "sys_id": ""}})))
    assert sum(len(page.items) for page in overlapping) == 21
    assert poll_source(engine, session_factory, settings, restarted) == {}
    snow.add_incident("New one", caller=snow.add_user("new@example.com"))
    assert poll_source(engine, session_factory, settings, restarted) == {"created": 1}
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Ticket)) == 31
        assert session.scalar(select(func.count()).select_from(IngestError)) == 0
    assert cursor["incident"]["updated"] == "2025-03-01 08:00:30"


def _secret(value: str):
    from pydantic import SecretStr

    return SecretStr(value)
