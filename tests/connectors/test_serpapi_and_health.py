"""SerpAPI search and the connector health functions the Settings page and `engine health` use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from connectors.http import AuthenticationError
from connectors.serpapi import SerpApiClient
from engine.connector_status import ConnectorStatus, check_connectors, test_connection
from engine.core.settings import Settings
from engine.jobs import run_job
from tests.connectors.conftest import snow_values, with_settings
from tests.emulators.base import running
from tests.emulators.serpapi import SerpApiEmulator
from tests.emulators.servicenow import ServiceNowEmulator


@pytest.fixture
def serp() -> Iterator[SerpApiEmulator]:
    yield from running(SerpApiEmulator())  # type: ignore[misc]


def serp_settings(settings: Settings, serp: SerpApiEmulator, key: str | None = None) -> Settings:
    return with_settings(settings, SERPAPI_BASE_URL=serp.url, SERPAPI_API_KEY=SecretStr(key or serp.api_key))


def test_search_results_and_key_never_in_errors(
    plain_settings: Settings, serp: SerpApiEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    results = SerpApiClient(serp_settings(plain_settings, serp)).search("outlook profile repair", count=3)
    assert [r.position for r in results] == [1, 2, 3] and results[0].url == "https://example.com/1"
    assert SerpApiClient(serp_settings(plain_settings, serp)).search("nothing at all") == []
    wrong = "serp-WRONG-key-000"
    with pytest.raises(AuthenticationError, match="Invalid API key") as raised:
        SerpApiClient(serp_settings(plain_settings, serp, wrong)).search("x")
    assert wrong not in str(raised.value) and wrong not in caplog.text


def test_test_connection_reports_each_state(
    plain_settings: Settings, snow: ServiceNowEmulator, serp: SerpApiEmulator
) -> None:
    good = test_connection("servicenow", with_settings(plain_settings, **snow_values(snow)))
    assert (good.configured, good.reachable, good.authenticated, good.last_error) == (True, True, True, None)
    wrong = with_settings(plain_settings, **{**snow_values(snow), "SNOW_AUTH_PASSWORD": SecretStr("nope-nope")})
    refused = test_connection("servicenow", wrong)
    assert (refused.reachable, refused.authenticated) == (True, False) and "401" in (refused.last_error or "")
    snow.stop()
    down = test_connection("servicenow", with_settings(plain_settings, **snow_values(snow), CONNECTOR_RETRY_ATTEMPTS=1))
    assert down.reachable is False and "connection failed" in (down.last_error or "")
    missing = test_connection("jira", plain_settings)
    assert not missing.configured and "JIRA_SERVER: not set" in (missing.last_error or "")
    assert test_connection("serpapi", serp_settings(plain_settings, serp)).authenticated is True


def test_check_connectors_reads_jobs_and_backlog(
    session_factory: sessionmaker[Session], settings: Settings, snow: ServiceNowEmulator
) -> None:
    configured = with_settings(settings, **snow_values(snow))

    def failing() -> None:
        raise RuntimeError("servicenow: GET host/api answered 401: User Not Authenticated (check the credentials)")

    run_job(session_factory, "w1", "poll_servicenow", failing)
    statuses = {status.name: status for status in check_connectors(configured)}
    assert set(statuses) == {"demo", "servicenow", "jira", "outlook", "imap", "mailgun", "smtp", "serpapi"}
    snow_status = statuses["servicenow"]
    assert isinstance(snow_status, ConnectorStatus)
    assert snow_status.configured and snow_status.authenticated is False and snow_status.last_poll is not None
    assert "401" in (snow_status.last_error or "") and snow_status.backlog == 0
    assert statuses["jira"] == ConnectorStatus("jira", "Jira", False, None, None, None, None, None, source=True)
    run_job(session_factory, "w1", "poll_servicenow", lambda: {"created": 1})
    healthy = {s.name: s for s in check_connectors(configured)}["servicenow"]
    assert (healthy.reachable, healthy.authenticated, healthy.last_error) == (True, True, None)
