"""The registry is the only list of connectors: a vendor registered in one entry is configured from its own
settings, polled by the scheduler's jobs, shown by health and listed on the Settings page, with no other
module touched."""

from __future__ import annotations

import ast
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import pytest
import requests
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.base import (
    ConfigurationError,
    ConnectorSettings,
    PolledPage,
    RejectedWebhookError,
    Required,
    TicketStatus,
    VerifiedWebhook,
    WebhookReceiver,
    WebResult,
    WebSearch,
    setting_problems,
)
from connectors.registry import Connector
from engine.analysers.llm_analyser import web_evidence
from engine.connector_status import check_connectors
from engine.core.enums import TicketStatus as EngineTicketStatus
from engine.core.models import Ticket
from engine.core.settings import Settings, load_settings
from engine.delivery.webhooks import start_webhook_server
from engine.health import health_report
from engine.runtime import build_runtime
from engine.scheduler import engine_jobs, run_all_once
from tests.app_process import free_port
from tests.factories import ticket_in
from tests.pages.conftest import app, embeddings, open_page  # noqa: F401 (fixtures)

FEED = "https://feed.fake-vendor.example/tickets"


class FakeSettings(ConnectorSettings):
    FAKE_FEED_URL: str = ""
    FAKE_POLL_INTERVAL_SECONDS: float = Field(default=7.0, gt=0)


class FakeSource:
    name = "fake"

    def __init__(self, settings: Settings) -> None:
        self.url = settings.FAKE_FEED_URL

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        if cursor is None:
            yield PolledPage(items=[ticket_in(source=self.name, external_id="FAKE-1")], cursor="1")


FAKE = Connector(
    name="fake",
    label="Fake vendor",
    settings=FakeSettings,
    configured=lambda s: bool(s.FAKE_FEED_URL),
    problems=lambda s: [] if s.FAKE_FEED_URL.startswith("https://") else ["FAKE_FEED_URL: must be an https:// URL"],
    poll_interval=lambda s: s.FAKE_POLL_INTERVAL_SECONDS,
    source=FakeSource,
)


@pytest.fixture
def fake_vendor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.CONNECTORS, FAKE.name, FAKE)


def test_a_registered_vendor_is_polled_and_shown_by_health(
    fake_vendor: None, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    configured = load_settings(_env_file=None, **{**settings.model_dump(), "FAKE_FEED_URL": FEED})
    assert configured.FAKE_FEED_URL == FEED
    runtime = build_runtime(configured)
    assert [source.name for source in runtime.sources] == ["fake"]
    interval, _ = engine_jobs(runtime)["poll_fake"]
    assert interval == 7.0

    assert run_all_once(runtime)["poll_fake"] == {"created": 1}
    with session_factory() as session:
        assert session.scalars(select(Ticket.external_id).where(Ticket.source == "fake")).all() == ["FAKE-1"]
    [status] = [status for status in check_connectors(configured) if status.name == "fake"]
    assert status.configured and status.source and status.last_poll is not None and not status.failing
    report = health_report(runtime)
    assert report["checks"]["sources"] == {
        "status": "healthy",
        "configured": ["fake"],
        "failing": [],
        "not_yet_tested": [],
    }

    broken = load_settings(_env_file=None, **{**settings.model_dump(), "FAKE_FEED_URL": "ftp://feed"})
    [status] = [status for status in check_connectors(broken) if status.name == "fake"]
    assert status.failing and status.last_error == "FAKE_FEED_URL: must be an https:// URL"


@pytest.fixture
def fake_feed_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FEED_URL", FEED)


def test_the_settings_page_lists_a_registered_vendor_and_its_variables(
    fake_vendor: None,
    fake_feed_in_environment: None,
    app: Settings,  # noqa: F811 (the pages fixture, after the environment it reads)
) -> None:
    at = open_page("pages/5_Settings.py", "ada")
    assert "**Fake vendor** :green-badge[configured]" in [markdown.value for markdown in at.markdown]
    variables = next(frame.value for frame in at.dataframe if "variable" in frame.value.columns)
    mine = variables[variables["connector"] == "Fake vendor"]
    assert dict(zip(mine["variable"], mine["set"], strict=True)) == {
        "FAKE_FEED_URL": True,
        "FAKE_POLL_INTERVAL_SECONDS": False,
    }


def test_connectors_import_no_engine_code() -> None:
    """Connectors are the bottom of the stack: no module in connectors/ imports engine code anywhere, also not inside
    a function or under TYPE_CHECKING."""
    offenders = []
    for path in sorted(Path(registry.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.name}:{node.lineno} {name}" for name in names if name.split(".")[0] == "engine"]
    assert offenders == []


def test_the_engine_and_the_connectors_share_one_status_vocabulary() -> None:
    assert EngineTicketStatus is TicketStatus
    assert {status.name: status.value for status in TicketStatus} == {
        "NEW": "New",
        "ANALYZING": "Analyzing",
        "AWAITING_APPROVAL": "AwaitingApproval",
        "AWAITING_CUSTOMER": "AwaitingCustomer",
        "IN_PROGRESS": "InProgress",
        "ESCALATED": "Escalated",
        "RESOLVED": "Resolved",
        "CLOSED": "Closed",
    }


class FakeSearch:
    name = "fake-search"

    def __init__(self, settings: Settings) -> None:
        self.key = settings.FAKE_SEARCH_KEY

    def search(self, query: str, *, count: int = 5) -> list[WebResult]:
        return [WebResult(title=f"About {query}", url="https://docs.example/a", snippet="the answer", position=1)]


class FakeSearchSettings(ConnectorSettings):
    FAKE_SEARCH_KEY: Annotated[str, Required("the search key")] = ""


FAKE_SEARCH = Connector(
    name="fake-search",
    label="Fake search",
    settings=FakeSearchSettings,
    configured=lambda s: bool(s.FAKE_SEARCH_KEY),
    problems=lambda s: setting_problems(s, FakeSearchSettings),
    web_search=FakeSearch,
)


def test_the_web_search_slot_serves_the_configured_search(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    monkeypatch.setitem(registry.CONNECTORS, FAKE_SEARCH.name, FAKE_SEARCH)
    assert registry.web_search(load_settings(_env_file=None, **settings.model_dump())) is None
    assert FAKE_SEARCH.problems(load_settings(_env_file=None, **settings.model_dump())) == [
        "FAKE_SEARCH_KEY: not set (the search key)"
    ]

    configured = load_settings(_env_file=None, **{**settings.model_dump(), "FAKE_SEARCH_KEY": "k-1"})
    searcher = registry.web_search(configured)
    assert isinstance(searcher, FakeSearch) and isinstance(searcher, WebSearch) and searcher.key == "k-1"
    [evidence] = web_evidence(searcher)(configured, "vpn")
    assert (evidence["source_kind"], evidence["title"], evidence["location"]) == (
        "web",
        "About vpn",
        "https://docs.example/a",
    )


class FakeReceiver:
    name = "fake-hooks"
    content_type = "application/json"
    max_age = 300.0

    def __init__(self, settings: Settings) -> None:
        if not settings.FAKE_HOOK_KEY:
            raise ConfigurationError("FAKE_HOOK_KEY is not set (webhooks cannot be verified)")

    def verify(self, payload: bytes) -> VerifiedWebhook:
        if payload != b'{"ok": true}':
            raise RejectedWebhookError("not the provider's body")
        return VerifiedWebhook(uuid.uuid4().hex, datetime.now(UTC), "ev-1", "opened", delivery=None)


class FakeHookSettings(ConnectorSettings):
    FAKE_HOOK_KEY: str = ""


FAKE_HOOKS = Connector(
    name="fake-hooks",
    label="Fake webhooks",
    settings=FakeHookSettings,
    configured=lambda s: bool(s.FAKE_HOOK_KEY),
    problems=lambda s: [],
    webhook=FakeReceiver,
)


def test_the_webhook_slot_routes_each_receiver_by_its_path(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    monkeypatch.setitem(registry.CONNECTORS, FAKE_HOOKS.name, FAKE_HOOKS)
    receivers, unavailable = registry.webhook_receivers(load_settings(_env_file=None, **settings.model_dump()))
    assert receivers == {}
    assert "FAKE_HOOK_KEY is not set (webhooks cannot be verified)" in unavailable

    keyed = load_settings(_env_file=None, **{**settings.model_dump(), "FAKE_HOOK_KEY": "k"})
    receivers, _ = registry.webhook_receivers(keyed)
    assert isinstance(receivers["/webhooks/fake-hooks"], FakeReceiver)
    assert isinstance(receivers["/webhooks/fake-hooks"], WebhookReceiver)
    server = start_webhook_server(free_port(), session_factory, keyed)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        accepted = requests.post(f"{base}/webhooks/fake-hooks", data=b'{"ok": true}', headers=JSON, timeout=10)
        refused = requests.post(f"{base}/webhooks/fake-hooks", data=b'{"ok": 1}', headers=JSON, timeout=10)
        elsewhere = requests.post(f"{base}/webhooks/other", data=b'{"ok": true}', headers=JSON, timeout=10)
    finally:
        server.shutdown()
    assert (accepted.status_code, accepted.text) == (200, "ignored")
    assert (refused.status_code, refused.text) == (406, "not the provider's body")
    assert elsewhere.status_code == 404


JSON = {"Content-Type": "application/json"}


def test_the_settings_page_reads_connectors_through_connector_status() -> None:
    """pages/ and ui/ learn about connectors from engine/connector_status.py, never from the registry itself."""
    root = Path(registry.__file__).parents[1]
    readers = [
        str(path.relative_to(root))
        for folder in ("pages", "ui")
        for path in sorted((root / folder).rglob("*.py"))
        if "registry" in path.read_text(encoding="utf-8")
    ]
    assert readers == []
