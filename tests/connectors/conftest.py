"""Emulator fixtures and settings that point the real clients at them; breakers reset between tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from connectors.http import reset_breakers
from engine.core.settings import Settings, load_settings
from tests.emulators.base import running
from tests.emulators.graph import GraphEmulator, IdentityEmulator, graph_values  # noqa: F401 (used by tests)
from tests.emulators.imap import ImapEmulator
from tests.emulators.jira import JiraEmulator
from tests.emulators.mailgun import MailgunEmulator
from tests.emulators.servicenow import ServiceNowEmulator
from tests.emulators.tls import make_certificate

FAST = {
    "CONNECTOR_BACKOFF_SECONDS": 0.0,
    "CONNECTOR_MAX_RETRY_AFTER_SECONDS": 0.01,
    "CONNECTOR_CONNECT_TIMEOUT_SECONDS": 2.0,
    "CONNECTOR_READ_TIMEOUT_SECONDS": 2.0,
    "CONNECTOR_RETRY_ATTEMPTS": 3,
}


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


class Sleeps(list[float]):
    """A stand-in for time.sleep that records what the client would have waited."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def snow() -> Iterator[ServiceNowEmulator]:
    yield from running(ServiceNowEmulator())  # type: ignore[misc]


def with_settings(settings: Settings, **values: object) -> Settings:
    return settings.model_copy(update={**FAST, **values})


@pytest.fixture
def plain_settings(tmp_path: Path) -> Settings:
    """Settings for tests that need no database (so they run once, not once per database)."""
    return load_settings(_env_file=None, DATA_DIR=tmp_path / "data", DEMO_FEED_ENABLED=False, ENGINE_ENABLED=False)


def snow_values(snow: ServiceNowEmulator) -> dict[str, object]:
    return {
        "SNOW_API_URL": f"{snow.url}/api/now/table/incident",
        "SNOW_AUTH_USERNAME": snow.username,
        "SNOW_AUTH_PASSWORD": SecretStr(snow.password),
        "SNOW_START_AT": "2000-01-01 00:00:00",
    }


@pytest.fixture
def mailgun() -> Iterator[MailgunEmulator]:
    yield from running(MailgunEmulator())  # type: ignore[misc]


def mailgun_values(mailgun: MailgunEmulator) -> dict[str, object]:
    return {
        "MAILGUN_API_BASE_URL": mailgun.url,
        "MAILGUN_DOMAIN": mailgun.domain,
        "MAILGUN_API_KEY": SecretStr(mailgun.api_key),
        "MAILGUN_FROM_EMAIL": f"support@{mailgun.domain}",
        "OUTBOX_TRANSPORT": "mailgun",
    }


@pytest.fixture
def identity(tls_files: tuple[Path, Path, Path]) -> Iterator[IdentityEmulator]:
    yield from running(IdentityEmulator(certificate=(tls_files[1], tls_files[2])))  # type: ignore[misc]


@pytest.fixture
def graph(identity: IdentityEmulator) -> Iterator[GraphEmulator]:
    yield from running(GraphEmulator(identity=identity))  # type: ignore[misc]


@pytest.fixture
def jira_server() -> Iterator[JiraEmulator]:
    yield from running(JiraEmulator())  # type: ignore[misc]


def jira_values(jira: JiraEmulator) -> dict[str, object]:
    return {
        "JIRA_SERVER": jira.url,
        "JIRA_USERNAME": jira.username,
        "JIRA_API_TOKEN": SecretStr(jira.token),
        "JIRA_TRANSITIONS": {"Resolved": "Resolve Issue", "Closed": "Close Issue", "Escalated": "Escalate"},
        "JIRA_START_AT": "2025-01-01 00:00",
    }


@pytest.fixture
def imap_server() -> Iterator[ImapEmulator]:
    server = ImapEmulator().start()
    yield server
    server.stop()
