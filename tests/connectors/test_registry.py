"""The registry is the only list of connectors: a vendor registered in one entry is configured from its own
settings, polled by the scheduler's jobs, shown by health and listed on the Settings page, with no other
module touched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.base import ConnectorSettings, PolledPage
from connectors.registry import Connector
from engine.connector_status import check_connectors
from engine.core.models import Ticket
from engine.core.settings import Settings, load_settings
from engine.health import health_report
from engine.runtime import build_runtime
from engine.scheduler import engine_jobs, run_all_once
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
    assert report["checks"]["sources"] == {"status": "healthy", "configured": ["fake"], "failing": []}

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
