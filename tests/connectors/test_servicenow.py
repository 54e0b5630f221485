"""ServiceNow connector against the Table/Attachment API emulator: paging, resume, faults, write-back."""

from __future__ import annotations

import json
import logging
import re

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
from connectors.servicenow import ServiceNowSource, configuration_problems, journal_text
from engine.core.enums import TicketStatus
from engine.core.models import EmailInteraction, IngestError, SourceCursor, Ticket
from engine.core.settings import ConfigurationError, Settings
from engine.core.timeline import record_event
from engine.delivery.sync import sync_back
from engine.jobs import poll_source
from tests.connectors.conftest import Sleeps, snow_values, with_settings
from tests.emulators.base import SLOWER_THAN_ANY_TIMEOUT, Response
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
    snow.attach("incident", record["sys_id"], "small-they-say.bin", b"y" * 5000, size=10)
    snow.attach("incident", record["sys_id"], "streamed.bin", b"z" * 300_000, size=10, chunked=True)
    [item] = everything(source(plain_settings, snow, MAX_ATTACHMENT_BYTES=1000).poll(None))
    files = {a.filename: a for a in item.attachments}
    assert (files["error.log"].data, files["error.log"].left_at_source) == (b"stack trace here", None)
    assert (files["huge.bin"].left_at_source, files["huge.bin"].declared_size) == ("too_large", 2000)
    for name in ("small-they-say.bin", "streamed.bin"):  # the stated size is not trusted: the download stops
        assert (files[name].left_at_source, files[name].data) == ("too_large", b""), name
        assert "1000-byte limit (MAX_ATTACHMENT_BYTES)" in files[name].reason
    assert len(snow.downloads) == 3, "a file stated over the limit is not even asked for"


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
    snow.fail(None, path="/api/now/table/incident", delay=SLOWER_THAN_ANY_TIMEOUT, times=2)
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


@pytest.mark.parametrize("status", [403, 404])
def test_unreadable_attachments_warn_once_and_incidents_still_arrive(
    plain_settings: Settings, snow: ServiceNowEmulator, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    records = seed(snow, 30)
    snow.attach("incident", records[0]["sys_id"], "error.log", b"trace")
    snow.restricted["sys_attachment"] = status
    items = everything(source(plain_settings, snow, CONNECTOR_PAGE_SIZE=10).poll(None))
    assert len(items) == 30 and items[0].attachments == []
    assert caplog.text.count("attachments not readable: grant read on sys_attachment") == 1


def test_test_connection_names_each_unreadable_table(plain_settings: Settings, snow: ServiceNowEmulator) -> None:
    from engine.connector_status import test_connection

    snow.restricted.update({"sys_attachment": 404, "sys_journal_field": 403})
    status = test_connection("servicenow", with_settings(plain_settings, **snow_values(snow)))
    assert status.authenticated is True and status.last_error is not None
    assert "sys_attachment not readable (404): grant read on sys_attachment" in status.last_error
    assert "sys_journal_field not readable (403)" in status.last_error and "sys_user" not in status.last_error


def test_every_incident_arrives_once_when_the_instance_ignores_nq(
    plain_settings: Settings, snow: ServiceNowEmulator
) -> None:
    snow.honours_nq = False
    records = seed(snow, 10, updated="2025-03-01 09:00:00") + seed(snow, 45)
    items = everything(source(plain_settings, snow, CONNECTOR_PAGE_SIZE=7).poll(None))
    assert sorted(item.external_id for item in items) == sorted(f"incident:{r['sys_id']}" for r in records)
    assert len(items) == len(records)


def test_the_window_starts_when_first_configured_and_a_restart_keeps_it(
    plain_settings: Settings, snow: ServiceNowEmulator
) -> None:
    seed(snow, 3)
    configured = with_settings(plain_settings, **{**snow_values(snow), "SNOW_START_AT": ""})
    pages = list(ServiceNowSource(configured, sleep=Sleeps()).poll(None))
    assert everything(pages) == []
    cursor = pages[-1].cursor
    start_at = json.loads(cursor)["start_at"]
    later = snow.add_incident(
        "After the start", caller=snow.add_user("late@example.com"), updated="2999-01-01 00:00:00"
    )
    items = everything(ServiceNowSource(configured, sleep=Sleeps()).poll(cursor))
    assert [item.external_id for item in items] == [f"incident:{later['sys_id']}"]
    assert json.loads(cursor)["start_at"] == start_at


def test_backfill_sends_closed_incidents_as_history_and_queues_nothing_for_them(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, snow: ServiceNowEmulator
) -> None:
    from engine.pipeline import claim_pending_tickets

    caller = snow.add_user("caller@example.com")
    for n in range(200):
        closed = n % 10 < 3
        fields = {"state": "7", "close_notes": f"Fixed {n}"} if closed else {}
        snow.add_incident(f"Issue {n}", caller=caller, **fields)
    configured = with_settings(settings, **snow_values(snow))
    assert poll_source(engine, session_factory, configured, ServiceNowSource(configured)) == {
        "created": 140,
        "history": 60,
    }
    with session_factory() as session:
        history = session.scalars(select(Ticket).where(Ticket.pending_since.is_(None))).all()
        assert len(history) == 60 and all(t.status == TicketStatus.CLOSED and t.resolution for t in history)
        history_ids = {ticket.id for ticket in history}
    claimed = {claim.ticket_id for claim in claim_pending_tickets(session_factory, configured, worker="w1")}
    assert not claimed & history_ids, "nothing is acknowledged or analysed for history"
    assert poll_source(engine, session_factory, configured, ServiceNowSource(configured)) == {}


def test_history_keeps_the_team_it_was_resolved_under_for_routing_to_learn(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, snow: ServiceNowEmulator
) -> None:
    caller = snow.add_user("caller@example.com")
    network, database = snow.add_group("Network Operations"), snow.add_group("DBA")
    snow.add_incident("VPN drops", caller=caller, state="7", close_notes="Replaced tunnel", assignment_group=network)
    snow.add_incident("Slow query", caller=caller, state="7", close_notes="Index added", assignment_group=database)
    snow.add_incident("New laptop", caller=caller, assignment_group=network)
    configured = with_settings(settings, **snow_values(snow), SNOW_ASSIGNMENT_GROUPS={"Network": network["value"]})
    poll_source(engine, session_factory, configured, ServiceNowSource(configured))
    with session_factory() as session:
        teams = {subject: team for subject, team in session.execute(select(Ticket.subject, Ticket.team))}
    assert teams == {"VPN drops": "Network", "Slow query": "DBA", "New laptop": None}, "open work is ours to route"


def test_a_user_who_may_not_read_groups_gets_history_without_teams_and_one_warning(
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
    snow: ServiceNowEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snow.restricted["sys_user_group"] = 403
    caller = snow.add_user("caller@example.com")
    for n in range(3):
        group = snow.add_group(f"Group {n}")
        snow.add_incident(f"Old {n}", caller=caller, state="7", close_notes="Done", assignment_group=group)
    configured = with_settings(settings, **snow_values(snow))
    with caplog.at_level(logging.WARNING):
        assert poll_source(engine, session_factory, configured, ServiceNowSource(configured)) == {"history": 3}
    with session_factory() as session:
        assert session.scalars(select(Ticket.team)).all() == [None, None, None]
    assert sum("grant read on sys_user_group" in record.getMessage() for record in caplog.records) == 1


def test_caller_comments_become_replies_and_ours_do_not(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, snow: ServiceNowEmulator
) -> None:
    caller = snow.add_user("casey@example.com", "Casey")
    incident = snow.add_incident("VPN drops", caller=caller)
    configured = with_settings(settings, **snow_values(snow))
    servicenow = ServiceNowSource(configured)
    poll_source(engine, session_factory, configured, servicenow)
    servicenow.push(
        SourceUpdate(1, f"incident:{incident['sys_id']}", "note", "[No-Touch Support TCKT-1 · event 1] hi", public=True)
    )
    snow.add_comment(incident, caller, "It still drops after the update")
    counts = poll_source(engine, session_factory, configured, servicenow)
    assert counts.get("reply") == 1
    with session_factory() as session:
        [reply] = session.scalars(select(EmailInteraction)).all()
        assert (reply.body, reply.from_address) == ("It still drops after the update", "casey@example.com")
        assert [entry["field"] for entry in snow.journal] == ["comments", "comments"], "ours public, then the caller's"
    assert poll_source(engine, session_factory, configured, servicenow).get("reply") is None


def test_closing_writes_close_information_and_teams_set_the_group(
    plain_settings: Settings, snow: ServiceNowEmulator
) -> None:
    snow.requires_close_info = True
    [record] = seed(snow, 1)
    servicenow = source(plain_settings, snow, SNOW_ASSIGNMENT_GROUPS={"Network": "net-group-id"})
    external_id = f"incident:{record['sys_id']}"
    servicenow.push(SourceUpdate(1, external_id, "note", "[tag · event 1] assigned", team="Network"))
    assert record["assignment_group"] == "net-group-id"
    servicenow.push(SourceUpdate(2, external_id, "status", "[tag · event 2] closed", status=TicketStatus.CLOSED))
    assert (record["state"], record["close_code"], record["close_notes"]) == (
        "7",
        "Solution provided",
        "Closed by the support desk",
    )
    assert [entry["field"] for entry in snow.journal] == ["work_notes", "work_notes"]


def test_a_customers_words_in_a_note_render_as_text_in_the_journal(
    plain_settings: Settings, snow: ServiceNowEmulator
) -> None:
    """Journal fields render HTML between [code] tags (glide.ui.security.allow_codetag, true by default): no tag
    of the customer's, in any case or spacing, reaches the work note as one; the words arrive as "> " lines."""
    [record] = seed(snow, 1)
    words = "Still broken [code]<img src=x onerror=alert(1)>[/code]\n[ CODE ]<script>x()</script>[/ Code ] thanks"
    text = "[No-Touch Support TCKT-1 · event 7] Customer says it did not solve it. The customer's words, quoted:"
    source(plain_settings, snow).push(SourceUpdate(7, f"incident:{record['sys_id']}", "note", text, quote=words))
    [entry] = snow.journal
    assert entry["field"] == "work_notes" and entry["text"].startswith(text + "\n> Still broken ")
    assert not re.search(r"\[\s*/?\s*code\s*\]", entry["text"], re.IGNORECASE)
    assert "> Still broken ［code］<img src=x onerror=alert(1)>［/code］" in entry["text"]
    assert "\n> ［ CODE ］<script>x()</script>［/ Code ］ thanks" in entry["text"]
    assert journal_text("no tags here", "a\nb") == "no tags here\n> a\n> b"


def test_a_customers_no_comment_reaches_the_work_notes_inert_through_the_engine(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, snow: ServiceNowEmulator
) -> None:
    """The whole way: a link answer's comment on the timeline, the write-back job, the journal entry."""
    seed(snow, 1)
    configured = with_settings(settings, **snow_values(snow))
    connector = ServiceNowSource(configured, sleep=Sleeps())
    assert poll_source(engine, session_factory, configured, connector) == {"created": 1}
    words = "[code]<a href=https://evil.example>Reset</a>[/code] still broken"
    with session_factory.begin() as session:
        ticket = session.scalars(select(Ticket)).one()
        title = f"Customer says the resolution did not solve it: “{words}”"
        record_event(session, ticket, "resolution_rejected", title, actor="customer", comment=words)
    sync_back(engine, session_factory, configured, [connector])
    [note] = [entry["text"] for entry in snow.journal if "The customer's words" in entry["text"]]
    assert "did not solve it. The customer's words, quoted as written:\n> ［code］<a href=" in note
    assert not re.search(r"\[\s*/?\s*code\s*\]", note, re.IGNORECASE)


def test_a_least_privilege_user_hears_callers_from_the_records_own_comments(
    engine: Engine,
    session_factory: sessionmaker[Session],
    settings: Settings,
    snow: ServiceNowEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Without read on sys_journal_field (403), the incident's `comments` display value carries the caller's
    portal comments: each reaches its ticket once, however often the incident changes; ours never come back."""
    snow.restricted["sys_journal_field"] = 403
    caller = snow.add_user("casey@example.com", "Casey Caller")
    incident = snow.add_incident("VPN drops", caller=caller)
    configured = with_settings(settings, **snow_values(snow))
    servicenow = ServiceNowSource(configured)
    assert poll_source(engine, session_factory, configured, servicenow) == {"created": 1}
    servicenow.push(
        SourceUpdate(1, f"incident:{incident['sys_id']}", "note", "[No-Touch Support TCKT-1 · event 1] hi", public=True)
    )
    snow.add_comment(incident, caller, "It still drops after the update")
    assert poll_source(engine, session_factory, configured, servicenow).get("reply") == 1
    snow.add_comment(incident, caller, "And now it is down\nfor good")
    counts = poll_source(engine, session_factory, configured, servicenow)
    assert counts.get("reply") == 1, "the first comment, read again with the second, is a duplicate"
    assert poll_source(engine, session_factory, configured, servicenow).get("reply") is None
    with session_factory() as session:
        replies = session.scalars(select(EmailInteraction).order_by(EmailInteraction.id)).all()
        assert [(r.body, r.from_address) for r in replies] == [
            ("It still drops after the update", "casey@example.com"),
            ("And now it is down\nfor good", "casey@example.com"),
        ]
    assert "callers' comments are read from each changed record's `comments` field" in caplog.text


def test_journal_display_values_split_into_entries_oldest_first() -> None:
    from connectors.servicenow import journal_entries

    shown = (
        "2025-03-01 08:00:09 - Casey Caller (Additional comments)\nSecond line one\nline two\n\n"
        "2025-03-01 08:00:05 - Integration User (Additional comments)\n[No-Touch Support TCKT-1 · event 1] hi\n\n"
    )
    assert journal_entries(shown) == [
        ("2025-03-01 08:00:05", "Integration User", "[No-Touch Support TCKT-1 · event 1] hi"),
        ("2025-03-01 08:00:09", "Casey Caller", "Second line one\nline two"),
    ]
    assert journal_entries("") == []
