"""Jira connector with the real `jira` library against the REST v2 emulator (Server and Cloud paging)."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from connectors.base import SourceUpdate
from connectors.http import AuthenticationError, ConnectorError, NotFoundError
from connectors.jira import JiraSource, configuration_problems
from engine.settings import Settings
from tests.connectors.conftest import Sleeps, jira_values, with_settings
from tests.emulators.base import Response
from tests.emulators.jira import JiraEmulator


def source(settings: Settings, jira: JiraEmulator, sleeps: Sleeps | None = None, **values: object) -> JiraSource:
    return JiraSource(
        with_settings(settings, **{**jira_values(jira), **values}), sleep=sleeps if sleeps is not None else Sleeps()
    )


@pytest.mark.parametrize("deployment", ["Server", "Cloud"])
def test_pages_and_resumes_without_duplicates(
    plain_settings: Settings, jira_server: JiraEmulator, deployment: str
) -> None:
    jira_server.deployment = deployment
    issues = [jira_server.add_issue(f"Laptop {n}") for n in range(23)]
    pages = list(source(plain_settings, jira_server, CONNECTOR_PAGE_SIZE=5).poll(None))
    keys = [item.external_id for page in pages for item in page.items]
    assert keys == [issue["key"] for issue in issues]
    later = jira_server.add_issue("Later one")
    again = [i.external_id for p in source(plain_settings, jira_server).poll(pages[-1].cursor) for i in p.items]
    assert again == [later["key"]], "same-minute issues already passed are skipped"


def test_fields_attachments_and_hidden_reporters(plain_settings: Settings, jira_server: JiraEmulator) -> None:
    issue = jira_server.add_issue("VPN", description="Cannot connect")
    jira_server.attach(issue["key"], "trace.txt", b"trace")
    jira_server.add_issue("Private", reporter=None)
    [page] = list(source(plain_settings, jira_server).poll(None))
    [item] = page.items
    assert item.requester_email == "rita@example.com" and item.body == "Cannot connect"
    assert item.external_url == f"{jira_server.url}/browse/SUP-1"
    assert [(a.filename, a.data) for a in item.attachments] == [("trace.txt", b"trace")]
    assert "profile privacy" in page.rejected[0].error
    assert json.loads(page.cursor)["keys"] == ["SUP-2"]


def test_write_back_comments_and_named_transitions(plain_settings: Settings, jira_server: JiraEmulator) -> None:
    jira_server.add_issue("VPN")
    connector = source(plain_settings, jira_server)
    connector.push(SourceUpdate(1, "SUP-1", "note", "Acknowledged"))
    connector.push(SourceUpdate(2, "SUP-1", "status", "Resolved", status="Resolved", resolution="fixed"))
    assert jira_server.comments == [("SUP-1", "Acknowledged"), ("SUP-1", "Resolved")]
    assert jira_server.transitions_done == [("SUP-1", "Resolve Issue")]
    with pytest.raises(ConnectorError, match=r"no transition named 'Escalate'.*Close Issue, Resolve Issue"):
        connector.push(SourceUpdate(3, "SUP-1", "status", "", status="Escalated"))
    with pytest.raises(NotFoundError, match="does not exist"):
        connector.push(SourceUpdate(4, "SUP-99", "note", "hello"))


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
    assert configuration_problems(with_settings(plain_settings, JIRA_SERVER="x", JIRA_TIMEZONE="Mars/Base")) == [
        "JIRA_SERVER: must start with https://",
        "JIRA_USERNAME: not set (the account's e-mail address)",
        "JIRA_API_TOKEN: not set (Atlassian account → Security → API tokens)",
        "JIRA_TIMEZONE: unknown time zone 'Mars/Base' (e.g. UTC, Europe/Berlin)",
    ]
