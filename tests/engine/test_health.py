"""`engine health` tells the truth: a busy machine is healthy, failing sources degrade, all failing is unhealthy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from connectors.http import reset_breakers
from engine.connector_status import check_connectors
from engine.core.enums import OutboxState
from engine.core.models import OutboxMessage
from engine.core.settings import Settings
from engine.health import health_report
from engine.jobs import run_job
from engine.runtime import build_runtime
from tests.engine_process import run_engine
from tests.factories import queue

SOURCES = {
    "SNOW_API_URL": "https://acme.service-now.example/api/now/table/incident",
    "SNOW_AUTH_USERNAME": "integration",
    "SNOW_AUTH_PASSWORD": "snow-password-1",
    "IMAP_HOST": "imap.example.test",
    "IMAP_USERNAME": "desk@example.test",
    "IMAP_PASSWORD": "imap-password-1",
}


@pytest.fixture(autouse=True)
def _fresh_breakers() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def two_sources(settings: Settings) -> Settings:
    secret = {key: SecretStr(value) if "PASSWORD" in key else value for key, value in SOURCES.items()}
    return settings.model_copy(update=secret)


def record_poll(factory: sessionmaker[Session], source: str, *, ok: bool) -> None:
    def poll() -> dict[str, int]:
        if not ok:
            raise RuntimeError(f"{source}: answered 500 Internal Server Error")
        return {"created": 0}

    run_job(factory, "test-worker", f"poll_{source}", poll)


def test_a_busy_machine_is_information_not_degradation(
    settings: Settings, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 99.0)
    report = health_report(build_runtime(settings))
    assert report["status"] == "healthy"
    assert report["checks"]["resources"]["cpu_percent"] == 99.0
    assert "status" not in report["checks"]["resources"]


def test_some_failing_sources_degrade_and_all_failing_is_unhealthy(
    two_sources: Settings, session_factory: sessionmaker[Session]
) -> None:
    runtime = build_runtime(two_sources)
    assert sorted(source.name for source in runtime.sources) == ["imap", "servicenow"]
    record_poll(session_factory, "servicenow", ok=True)
    record_poll(session_factory, "imap", ok=True)
    assert health_report(runtime)["status"] == "healthy"

    record_poll(session_factory, "servicenow", ok=False)
    report = health_report(runtime)
    assert report["status"] == "degraded"
    assert report["checks"]["sources"] == {
        "status": "degraded",
        "configured": ["servicenow", "imap"],
        "failing": ["servicenow"],
        "not_yet_tested": [],
    }

    record_poll(session_factory, "imap", ok=False)
    report = health_report(runtime)
    assert report["status"] == "unhealthy"
    assert report["checks"]["sources"]["failing"] == ["servicenow", "imap"]


def test_health_cli_exits_1_only_when_every_source_fails(
    two_sources: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    record_poll(session_factory, "servicenow", ok=False)
    record_poll(session_factory, "imap", ok=True)
    degraded = run_engine(two_sources, "health", "--no-test", cwd=tmp_path, **SOURCES)
    assert degraded.returncode == 0, degraded.stderr
    assert json.loads(degraded.stdout)["status"] == "degraded"

    record_poll(session_factory, "imap", ok=False)
    unhealthy = run_engine(two_sources, "health", "--no-test", cwd=tmp_path, **SOURCES)
    assert unhealthy.returncode == 1, unhealthy.stderr
    report = json.loads(unhealthy.stdout)
    assert report["status"] == "unhealthy"
    assert report["checks"]["sources"]["failing"] == ["servicenow", "imap"]
    assert "snow-password-1" not in unhealthy.stdout and "imap-password-1" not in unhealthy.stdout


def test_a_connection_never_used_is_not_yet_tested_and_health_tests_it(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Right after configuration nothing has run: without calls the report says "not yet tested", never
    "healthy"; by default each configured connection is called once, and a refused sign-in shows."""
    from tests.emulators.base import running
    from tests.emulators.servicenow import ServiceNowEmulator

    for snow in running(ServiceNowEmulator()):
        values = {
            "SNOW_API_URL": f"{snow.url}/api/now/table/incident",
            "SNOW_AUTH_USERNAME": snow.username,
            "SNOW_AUTH_PASSWORD": snow.password,
        }
        untested = run_engine(settings, "health", "--no-test", cwd=tmp_path, **values)
        report = json.loads(untested.stdout)
        assert untested.returncode == 0, untested.stderr
        assert report["status"] == "not yet tested" and report["checks"]["sources"]["not_yet_tested"] == ["servicenow"]

        tested = json.loads(run_engine(settings, "health", cwd=tmp_path, **values).stdout)
        [servicenow] = tested["checks"]["connectors"]["connectors"]
        assert tested["status"] == "healthy" and servicenow["tested"] and servicenow["status"] == "ok"

        refused = run_engine(settings, "health", cwd=tmp_path, **{**values, "SNOW_AUTH_PASSWORD": "wrong"})
        report = json.loads(refused.stdout)
        assert report["status"] == "unhealthy" and report["checks"]["sources"]["failing"] == ["servicenow"]
        assert "wrong" not in refused.stdout


def test_bounced_mail_is_counted_in_health_and_on_the_transport_card_without_degrading(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    smtp = settings.model_copy(update={"OUTBOX_TRANSPORT": "smtp", "SMTP_HOST": "mail.example.test"})
    with session_factory.begin() as session:
        session.get(OutboxMessage, queue(session_factory, smtp)).state = OutboxState.BOUNCED
    report = health_report(build_runtime(smtp))
    assert report["checks"]["outbox"]["bounced"] == 1
    assert report["status"] in ("healthy", "not yet tested")
    [card] = [status for status in check_connectors(smtp) if status.name == "smtp"]
    assert card.bounced == 1
    assert all(status.bounced is None for status in check_connectors(smtp) if status.name != "smtp")
