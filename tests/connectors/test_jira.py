"""Jira connector with the real `jira` library against the emulator: Server (REST v2, wiki markup) and Cloud
(REST v3, Atlassian Document Format) paging, reporter comments, history, time zones and write-back."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import SourceUpdate
from connectors.http import AuthenticationError, ConnectorError, NotFoundError
from connectors.jira import JiraSource, configuration_problems, readable_text, wiki_literal
from engine.core.enums import TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import Attachment, EmailInteraction, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.delivery.sync import sync_back
from engine.jobs import poll_source
from tests.connectors.conftest import Sleeps, jira_values, with_settings
from tests.emulators.base import Response
from tests.emulators.jira import JiraEmulator, adf


def source(settings: Settings, jira: JiraEmulator, sleeps: Sleeps | None = None, **values: object) -> JiraSource:
    return JiraSource(
        with_settings(settings, **{**jira_values(jira), **values}), sleep=sleeps if sleeps is not None else Sleeps()
    )


def items_of(pages: list) -> list:
    return [item for page in pages for item in page.items]


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_pages_and_resumes_without_duplicates(
    plain_settings: Settings, jira_server: JiraEmulator, deployment: str
) -> None:
    jira_server.deployment = deployment
    issues = [jira_server.add_issue(f"Laptop {n}") for n in range(23)]
    pages = list(source(plain_settings, jira_server, CONNECTOR_PAGE_SIZE=5).poll(None))
    keys = [item.external_id for item in items_of(pages)]
    assert keys == [issue["key"] for issue in issues]
    later = jira_server.add_issue("Later one")
    again = [i.external_id for i in items_of(list(source(plain_settings, jira_server).poll(pages[-1].cursor)))]
    assert again == [later["key"]], "same-minute issues already passed are skipped"


def test_fields_hidden_reporters_and_attachments_fetched_once(
    plain_settings: Settings, jira_server: JiraEmulator
) -> None:
    issue = jira_server.add_issue("VPN", description="Cannot connect")
    jira_server.attach(issue["key"], "trace.txt", b"trace")
    jira_server.add_issue("Private", reporter=None)
    connector = source(plain_settings, jira_server)
    [page] = list(connector.poll(None))
    [item] = page.items
    assert item.requester_email == "rita@example.com" and item.body == "Cannot connect" and not item.history
    assert item.external_url == f"{jira_server.url}/browse/SUP-1"
    assert [(a.filename, a.data) for a in item.attachments] == [("trace.txt", b"trace")]
    assert "profile privacy" in page.rejected[0].error
    assert json.loads(page.cursor)["keys"] == ["SUP-2"]
    connector.push(SourceUpdate(1, "SUP-1", "note", "We replied", public=True))  # bumps `updated`
    jira_server.attach(issue["key"], "second.txt", b"more")
    [again] = [i for i in items_of(list(connector.poll(page.cursor))) if i.kind == "ticket"]
    assert [a.filename for a in again.attachments] == ["second.txt"]
    assert jira_server.downloads == ["20000", "20001"], "each attachment downloaded once"


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_attachments_come_only_from_the_jira_server_and_never_past_the_limit(
    plain_settings: Settings, jira_server: JiraEmulator, deployment: str
) -> None:
    """The Jira credentials go only to JIRA_SERVER's origin (scheme, host and port, parsed): another port, user-info
    and backslash tricks are refused; a file is cut off past MAX_ATTACHMENT_BYTES whatever its metadata says."""
    jira_server.deployment = deployment
    with running_other_server() as other:
        other.files["20000"] = b"not ours"
        jira = jira_server.url.removeprefix("http://")
        issue = jira_server.add_issue("Printer", description="See the files")
        key = issue["key"]
        jira_server.attach(key, "other-port.txt", b"", content=f"{other.url}/secure/attachment/20000/x")
        jira_server.attach(key, "userinfo.txt", b"", content=f"http://{jira}@{other.url[7:]}/secure/attachment/20000/x")
        jira_server.attach(key, "backslash.txt", b"", content=f"{other.url}\\@{jira}/secure/attachment/20000/x")
        jira_server.attach(key, "relative.txt", b"", content="//127.0.0.1/secure/attachment/20000/x")
        jira_server.attach(key, "declared-small.txt", b"x" * 5000, size=10)
        jira_server.attach(key, "streamed.txt", b"y" * 300_000, size=10, chunked=True)
        jira_server.attach(key, "declared-large.txt", b"z", size=10**12)
        jira_server.attach(key, "fine.txt", b"fine")
        [page] = list(source(plain_settings, jira_server, MAX_ATTACHMENT_BYTES=1000).poll(None))
        assert other.requests == [], "nothing, least of all the Jira credentials, went to another server"
    files = {a.filename: a for a in page.items[0].attachments}
    assert files["fine.txt"].data == b"fine" and files["fine.txt"].left_at_source is None
    for name in ("other-port.txt", "userinfo.txt", "backslash.txt", "relative.txt"):
        assert files[name].left_at_source == "not_fetched" and files[name].data == b"", name
        assert "not on the Jira server (JIRA_SERVER)" in files[name].reason
    for name in ("declared-small.txt", "streamed.txt", "declared-large.txt"):
        assert files[name].left_at_source == "too_large" and files[name].data == b"", name
        assert "1000-byte limit (MAX_ATTACHMENT_BYTES)" in files[name].reason
    assert "20006" not in jira_server.downloads, "a declared size over the limit is not even asked for"


def test_an_attachment_left_at_the_source_shows_on_the_ticket_with_its_reason(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, jira_server: JiraEmulator
) -> None:
    issue = jira_server.add_issue("Printer", description="See the files")
    jira_server.attach(issue["key"], "elsewhere.txt", b"", content="https://files.example.net/a/1")
    jira_server.attach(issue["key"], "huge.log", b"x" * 5000, size=10)
    jira_server.attach(issue["key"], "fine.txt", b"fine")
    configured = with_settings(settings, **jira_values(jira_server), MAX_ATTACHMENT_BYTES=1000)
    assert poll_source(engine, session_factory, configured, JiraSource(configured, sleep=Sleeps())) == {"created": 1}
    with session_factory() as session:
        ticket = session.scalars(select(Ticket)).one()
        rows = {a.filename: a for a in session.scalars(select(Attachment).where(Attachment.ticket_id == ticket.id))}
        events = [e.title for e in session.scalars(select(TimelineEvent).where(TimelineEvent.ticket_id == ticket.id))]
    assert (rows["fine.txt"].status, rows["fine.txt"].size) == ("stored", 4)
    assert rows["elsewhere.txt"].status == "not_fetched" and "files.example.net:443" in rows["elsewhere.txt"].error
    assert (rows["huge.log"].status, rows["huge.log"].size) == ("too_large", 10)
    assert "MAX_ATTACHMENT_BYTES" in rows["huge.log"].error
    warnings = ticket.additional_info["input_warnings"]
    assert any(w.startswith("attachment elsewhere.txt was not fetched: its download address is on") for w in warnings)
    assert "attachment huge.log was too large to examine" in warnings
    assert any(t.startswith("Attachment elsewhere.txt not fetched from jira:") for t in events)


@contextmanager
def running_other_server() -> Iterator[JiraEmulator]:
    """Another server on the same host: a different port is a different origin."""
    other = JiraEmulator().start()
    try:
        yield other  # type: ignore[misc]
    finally:
        other.stop()


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_reporter_comments_are_replies_ours_are_not(
    plain_settings: Settings, jira_server: JiraEmulator, deployment: str
) -> None:
    jira_server.deployment, jira_server.service_desk = deployment, True
    jira_server.add_issue("Printer offline")
    jira_server.add_comment("SUP-1", "[No-Touch Support TCKT-1 · event 4] Acknowledged", by_reporter=False)
    for n in range(4):
        jira_server.add_comment("SUP-1", f"Still offline, try {n}")
    jira_server.add_comment("SUP-1", "Our own words, by the integration account", by_reporter=False)
    jira_server.add_comment("SUP-1", "Quoting: [No-Touch Support TCKT-1 · event 9] Resolved")
    items = items_of(list(source(plain_settings, jira_server).poll(None)))
    ticket, *comments = items
    assert ticket.kind == "ticket"
    assert [(c.kind, c.parent_external_id, c.body) for c in comments] == [
        ("comment", "SUP-1", f"Still offline, try {n}") for n in range(4)
    ], "paged past the three embedded in the search answer"
    assert comments[0].external_id == "SUP-1#comment-30001"
    assert comments[0].requester_email == "rita@example.com" and comments[0].subject == "Re: Printer offline"
    assert comments[0].updated_at is not None


def test_issues_done_when_first_seen_are_history_without_replies(
    plain_settings: Settings, jira_server: JiraEmulator
) -> None:
    jira_server.add_issue("Old question", done=True, resolution={"name": "Fixed"})
    jira_server.add_comment("SUP-1", "Thanks, works now")
    [item] = items_of(list(source(plain_settings, jira_server).poll(None)))
    assert item.history and item.additional_info["resolution"] == "Fixed"


def test_start_window_defaults_to_the_first_poll_and_is_kept(
    plain_settings: Settings, jira_server: JiraEmulator
) -> None:
    jira_server.clock = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    jira_server.add_issue("Backlog from before")
    first = list(source(plain_settings, jira_server, JIRA_START_AT="").poll(None))
    assert items_of(first) == [] and len(first) == 1, "an empty first page still stores the start"
    start = json.loads(first[0].cursor)["start"]
    jira_server.clock = datetime.now(UTC) + timedelta(minutes=2)
    jira_server.add_issue("New after configuring")
    later = items_of(list(source(plain_settings, jira_server, JIRA_START_AT="").poll(first[0].cursor)))
    assert [i.subject for i in later] == ["New after configuring"]
    assert json.loads(first[0].cursor)["start"] == start


def test_jql_dates_are_read_in_the_accounts_time_zone(plain_settings: Settings, jira_server: JiraEmulator) -> None:
    jira_server.time_zone = "Etc/GMT+5"  # UTC-5: "10:00" in a JQL date means 15:00 UTC
    jira_server.clock = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
    jira_server.add_issue("Seen first")
    [page] = list(source(plain_settings, jira_server).poll(None))
    jira_server.add_issue("Same minute, later")
    found = items_of(list(source(plain_settings, jira_server).poll(page.cursor)))
    assert [i.subject for i in found] == ["Same minute, later"]
    assert any('updated >= "2026/11/27 05:00"' in (r.arg("jql") or "") for r in jira_server.requests)
    overridden = items_of(list(source(plain_settings, jira_server, JIRA_TIMEZONE="UTC").poll(page.cursor)))
    assert overridden == [], "JIRA_TIMEZONE overrides the account's zone (here wrongly: it loses the issue)"


def test_cloud_bodies_in_document_format_become_readable_text(
    plain_settings: Settings, jira_server: JiraEmulator
) -> None:
    jira_server.deployment = "Cloud"
    document = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Symptoms"}]},
            {
                "type": "paragraph",
                "content": [
                    {"type": "mention", "attrs": {"id": "5b10-ann", "text": "@Ann Agent"}},
                    {"type": "text", "text": " the VPN drops "},
                    {"type": "emoji", "attrs": {"shortName": ":disappointed:", "text": "😞"}},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "see "},
                    {"type": "inlineCard", "attrs": {"url": "https://status.example.com/vpn"}},
                ],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "a"}]}],
                    },
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "b"}]}],
                    },
                ],
            },
            {"type": "codeBlock", "content": [{"type": "text", "text": "ping -c 3 vpn"}]},
            {
                "type": "table",
                "content": [
                    {
                        "type": "tableRow",
                        "content": [
                            {
                                "type": "tableHeader",
                                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Host"}]}],
                            },
                            {
                                "type": "tableCell",
                                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "vpn1"}]}],
                            },
                        ],
                    }
                ],
            },
        ],
    }
    jira_server.add_issue("VPN", description=document)
    jira_server.add_comment("SUP-1", adf("It happened again", "at 9:00"))
    ticket, comment = items_of(list(source(plain_settings, jira_server).poll(None)))
    assert ticket.body == (
        "Symptoms\n\n@Ann Agent the VPN drops 😞\nsee https://status.example.com/vpn\n\n- a\n- b\n\n"
        "```\nping -c 3 vpn\n```\n\nHost | vpn1"
    )
    assert comment.body == "It happened again\n\nat 9:00"


def test_wiki_markup_becomes_readable_text() -> None:
    markup = (
        "h2. Symptoms\n*Printer* is _offline_ since [~accountid:5b10-rita] restarted it, "
        "see [the runbook|https://wiki.example.com/printers] or [https://status.example.com].\n"
        "{code:bash}lpstat -p *all*{code}\n{noformat}raw [text|x]{noformat}\n* one\n* two\n"
        "||Host||State||\n|prn1|down|\nline\\\\break"
    )
    assert readable_text(markup, {"5b10-rita": "Rita Reporter"}) == (
        "Symptoms\nPrinter is offline since @Rita Reporter restarted it, see the runbook "
        "(https://wiki.example.com/printers) or https://status.example.com.\n\n```\nlpstat -p *all*\n```\n\n"
        "```\nraw [text|x]\n```\n- one\n- two\nHost | State\nprn1 | down\nline\nbreak"
    )


@pytest.mark.parametrize(
    ("mode", "expected", "path"),
    [
        ("none", [("SUP-1", "Sent: resolution", "public")], "/rest/api/2/issue/SUP-1/comment"),
        (
            "property",
            [("SUP-1", "Status changed", "internal"), ("SUP-1", "Sent: resolution", "public")],
            "/rest/api/2/issue/SUP-1/comment",
        ),
        (
            "jsm",
            [("SUP-1", "Status changed", "internal"), ("SUP-1", "Sent: resolution", "public")],
            "/rest/servicedeskapi/request/SUP-1/comment",
        ),
    ],
)
def test_internal_notes_stay_internal(
    plain_settings: Settings, jira_server: JiraEmulator, mode: str, expected: list, path: str
) -> None:
    jira_server.service_desk = True
    jira_server.add_issue("VPN")
    connector = source(plain_settings, jira_server, JIRA_INTERNAL_NOTES=mode)
    connector.push(SourceUpdate(1, "SUP-1", "status", "Status changed", status="Resolved", resolution="fixed"))
    connector.push(SourceUpdate(2, "SUP-1", "note", "Sent: resolution", public=True))
    assert jira_server.comments == expected
    assert jira_server.transitions_done == [("SUP-1", "Resolve Issue")]
    assert {r.path for r in jira_server.requests if r.method == "POST" and "comment" in r.path} == {path}


def test_refused_transition_fails_the_event_before_writing(plain_settings: Settings, jira_server: JiraEmulator) -> None:
    jira_server.add_issue("VPN")
    jira_server.workflows["SUP-1"] = [{"id": "11", "name": "Start Progress"}]
    connector = source(plain_settings, jira_server, JIRA_INTERNAL_NOTES="property")
    with pytest.raises(
        ConnectorError, match=r"offers no transition named 'Resolve Issue'.*: Start Progress"
    ) as refused:
        connector.push(SourceUpdate(3, "SUP-1", "status", "Resolved", status="Resolved"))
    assert not refused.value.retryable and jira_server.comments == []
    with pytest.raises(NotFoundError, match="does not exist"):
        connector.push(SourceUpdate(4, "SUP-99", "note", "hello", public=True))


def test_lost_answer_is_not_written_twice(plain_settings: Settings, jira_server: JiraEmulator) -> None:
    jira_server.deployment = "Cloud"
    jira_server.add_issue("VPN")
    connector = source(plain_settings, jira_server, JIRA_INTERNAL_NOTES="property")
    update = SourceUpdate(7, "SUP-1", "note", "[No-Touch Support TCKT-1 · event 7] Approved")
    connector.push(update)
    connector.push(update, check_first=True)
    assert len(jira_server.comments) == 1


def test_errors_rate_limits_and_secrets(
    plain_settings: Settings, jira_server: JiraEmulator, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    jira_server.add_issue("VPN")
    wrong = "wrong-token-abcdef"
    with pytest.raises(AuthenticationError, match=r"401.*JIRA_API_TOKEN") as raised:
        list(source(plain_settings, jira_server, JIRA_API_TOKEN=SecretStr(wrong)).poll(None))
    assert wrong not in str(raised.value) and wrong not in caplog.text
    jira_server.fail(
        Response.json({"errorMessages": ["Rate limit exceeded."]}, 429, **{"Retry-After": "5"}),
        path="/rest/api/2/search",
    )
    items = list(source(plain_settings, jira_server, sleeps, CONNECTOR_MAX_RETRY_AFTER_SECONDS=60).poll(None))
    assert sleeps == [5.0] and len(items) == 1


def test_configuration_problems(plain_settings: Settings) -> None:
    settings = with_settings(plain_settings, JIRA_SERVER="x", JIRA_TIMEZONE="Mars/Base", JIRA_START_AT="yesterday")
    assert configuration_problems(settings) == [
        "JIRA_SERVER: must start with https://",
        "JIRA_USERNAME: not set (the account's e-mail address)",
        "JIRA_API_TOKEN: not set (Atlassian account → Security → API tokens)",
        "JIRA_TIMEZONE: unknown time zone 'Mars/Base' (e.g. Europe/Berlin; leave empty to use the Jira account's own)",
        "JIRA_START_AT: must look like 2026-01-31 23:59 (UTC)",
    ]


def test_poll_and_write_back_through_the_engine(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, jira_server: JiraEmulator
) -> None:
    """Reporter comments reach their ticket as replies, Done issues arrive as history, and one transition
    the workflow refuses fails only its own event."""
    jira_server.add_issue("Printer offline")
    jira_server.add_issue("Old and done", done=True)
    jira_server.add_issue("VPN drops")
    jira_server.workflows["SUP-1"] = [{"id": "11", "name": "Start Progress"}]
    configured = with_settings(settings, **jira_values(jira_server), JIRA_INTERNAL_NOTES="property")
    connector = JiraSource(configured, sleep=Sleeps())
    assert poll_source(engine, session_factory, configured, connector) == {"created": 2, "history": 1}
    jira_server.add_comment("SUP-1", "It is still offline")
    assert poll_source(engine, session_factory, configured, connector) == {"duplicate": 1, "reply": 1}
    assert poll_source(engine, session_factory, configured, connector) == {}
    with session_factory() as session, session.begin():
        tickets = {t.external_id: t for t in session.scalars(select(Ticket))}
        assert tickets["SUP-2"].status == TicketStatus.CLOSED and tickets["SUP-2"].pending_since is None
        [reply] = session.scalars(select(EmailInteraction)).all()
        assert reply.ticket_id == tickets["SUP-1"].id and reply.body == "It is still offline"
        for key in ("SUP-1", "SUP-3"):
            tickets[key].resolution = "Fixed"
            transition(session, tickets[key], TicketStatus.RESOLVED, reason="fixed")
    report = sync_back(engine, session_factory, configured, [connector])
    assert report.failed == 1 and report.pushed >= 1
    assert jira_server.transitions_done == [("SUP-3", "Resolve Issue")]
    assert "SUP-2" not in {key for key, _, _ in jira_server.comments}, "history is never written back"


def outside_noformat(text: str) -> str:
    return "".join(text.split("{noformat}")[0::2])


def test_a_customers_words_in_a_note_arrive_as_inert_wiki_text(
    plain_settings: Settings, jira_server: JiraEmulator
) -> None:
    """Jira renders v2 comment bodies as wiki markup: links, mentions, macros and images in the customer's words, or
    in a bounce reason inside our own text, must not become markup; the note is still found again by its tag."""
    jira_server.add_issue("VPN")
    words = (
        "Nope. [~accountid:5b10-admin] see [here|https://evil.example/login] {html}<b>x</b>{html} "
        "!https://evil.example/pixel.png! {noformat} |cell| C:\\temp\\[x]"
    )
    text = "[No-Touch Support TCKT-1 · event 9] Reply bounced: see [this|https://evil.example] {color:red}x{color}"
    connector = source(plain_settings, jira_server, JIRA_INTERNAL_NOTES="property")
    connector.push(SourceUpdate(9, "SUP-1", "note", text, quote=words))
    [(key, body, visibility)] = jira_server.comments
    assert (key, visibility) == ("SUP-1", "internal")
    assert body.startswith("[No-Touch Support TCKT-1 · event 9] Reply bounced")
    assert body.count("{noformat}") == 2 and body.endswith("\n{noformat}")
    quoted = body.split("{noformat}")[1]
    assert "[~accountid:5b10-admin]" in quoted and "｛html｝" in quoted and "｛noformat｝" in quoted
    prose = outside_noformat(body)[len("[No-Touch Support TCKT-1 · event 9]") :]
    assert re.findall(r"(?<!\\)[\[\]{}!|]", prose) == [], "every link, macro, image and table mark is escaped"
    assert "\\[this\\|https://evil.example\\] \\{color:red\\}" in prose
    written = SourceUpdate(9, "SUP-1", "note", text, quote=words)
    connector.push(written, check_first=True)
    assert len(jira_server.comments) == 1, "the tag still finds the note: it is not written twice"
    assert wiki_literal("a \\ b [x]") == "a ＼ b \\[x\\]", "a backslash of the text cannot pair with an escape"
