"""Prometheus metrics: a real `engine run --metrics-port` scraped over HTTP, the database collector, the alert rules."""

from __future__ import annotations

import re
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import PolledPage
from connectors.http import AuthenticationError, RetryPolicy, call_with_retry
from engine.core.db import make_session_factory
from engine.core.enums import MessageKind, OutboxState, TicketStatus
from engine.core.models import OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.delivery.outbox import enqueue_email
from engine.intake.ingest import ingest
from engine.jobs import poll_source, run_job
from engine.ops.observability import DatabaseCollector
from tests.engine_process import start_engine
from tests.factories import ticket_in
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus-alerts.yml"
JOBS = ("reindex", "process_pending", "deliver_outbox")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _by_state(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["state"]: value for (sample, labels), value in samples.items() if sample == name}


@pytest.mark.slow
def test_engine_serves_database_and_job_metrics(
    session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    with session_factory.begin() as session:
        for _ in range(3):
            ingest(session, ticket_in(), settings)
    port = _free_port()
    once_each = {"PROCESS_INTERVAL_SECONDS": 3600, "OUTBOX_INTERVAL_SECONDS": 3600, "KB_INDEX_INTERVAL_SECONDS": 3600}
    worker = start_engine(settings, "run", "--metrics-port", str(port), cwd=tmp_path, **once_each)
    scraped: Samples = {}

    def every_job_ran_once() -> bool:
        assert worker.poll() is None, "the engine process died"
        try:
            response = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=60)
        except requests.ConnectionError:
            return False
        scraped.update(_samples(response.text))
        analysed = _value(scraped, "nts_ticket_processing_seconds_count") == 3  # the pool analyses after its run
        return analysed and all(_value(scraped, "nts_job_runs_total", engine_job=job) == 1 for job in JOBS)

    try:
        wait_until(every_job_ran_once, timeout=90, what="one run of every engine job and 3 analyses on /metrics")
        # Every job has run once, none runs again for an hour, and the analysis pool has finished the 3 tickets
        # it claimed: the database holds still, so a scrape must match what the database says now.
        samples = _samples(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert worker.returncode == 0, output
    with session_factory() as session:
        tickets = Counter(session.scalars(select(Ticket.status)))
        outbox = Counter(session.scalars(select(OutboxMessage.state)))
    assert _by_state(samples, "nts_tickets") == {str(state): float(tickets[state]) for state in TicketStatus}
    assert _by_state(samples, "nts_outbox_messages") == {str(state): float(outbox[state]) for state in OutboxState}
    assert tickets[TicketStatus.NEW] == 0
    assert sum(tickets.values()) == 3
    assert sum(outbox.values()) >= 3, "each ticket's acknowledgement is in the outbox"
    assert _value(samples, "nts_database_up") == 1
    assert _value(samples, "nts_tickets_oldest_pending_age_seconds") == 0
    for job in JOBS:
        assert _value(samples, "nts_job_failures_total", engine_job=job) == 0
        assert _value(samples, "nts_job_duration_seconds_count", engine_job=job) == 1
    assert _value(samples, "nts_analyses_total", analyser="retrieval-only", outcome="ok") == 3
    assert _value(samples, "nts_ticket_processing_seconds_count") == 3
    assert _value(samples, "nts_outbox_deliveries_total", outcome="sent") == outbox[OutboxState.SENT]
    assert _value(samples, "process_resident_memory_bytes"), "the standard process metrics are served too"


def _collected(factory: sessionmaker[Session]) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in DatabaseCollector(factory).collect()
        for sample in family.samples
    }


def test_collector_reads_tickets_and_outbox_by_state_at_scrape_time(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    scrape = utcnow()
    monkeypatch.setattr("engine.ops.observability.utcnow", lambda: scrape)  # the scrape's clock stands still
    with session_factory.begin() as session:
        for _ in range(3):
            ingest(session, ticket_in(), settings)
        first, second, third = session.scalars(select(Ticket).order_by(Ticket.id)).all()
        third.status = TicketStatus.ESCALATED
        third.pending_since = None
        first.pending_since = scrape - timedelta(minutes=2)
        content = acknowledgement(first, settings.SUPPORT_SIGNATURE)
        queued = enqueue_email(session, settings, first, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="a1")
        queued.created_at = scrape - timedelta(minutes=10)
        content = acknowledgement(second, settings.SUPPORT_SIGNATURE)
        sent = enqueue_email(session, settings, second, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="a2")
        sent.state = OutboxState.SENT
    samples = _collected(session_factory)
    assert _by_state(samples, "nts_tickets") == {
        **{str(state): 0.0 for state in TicketStatus},
        TicketStatus.NEW: 2.0,
        TicketStatus.ESCALATED: 1.0,
    }
    assert _by_state(samples, "nts_outbox_messages") == {
        **{str(state): 0.0 for state in OutboxState},
        OutboxState.PENDING: 1.0,
        OutboxState.SENT: 1.0,
    }
    assert _value(samples, "nts_tickets_oldest_pending_age_seconds") == 120
    assert _value(samples, "nts_outbox_oldest_pending_age_seconds") == 600
    assert _value(samples, "nts_database_up") == 1
    size = _value(samples, "nts_db_pool_connections", state="size")
    assert size is not None
    assert size > 0
    assert _value(samples, "nts_db_pool_connections", state="checked_out") == 0
    with session_factory.begin() as session:
        resolved = session.get(Ticket, second.id)
        assert resolved is not None
        resolved.status = TicketStatus.RESOLVED
    assert _value(_collected(session_factory), "nts_tickets", state=TicketStatus.RESOLVED) == 1, "read at each scrape"


def test_collector_reports_an_unreachable_database_instead_of_failing_the_scrape() -> None:
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    samples = _collected(make_session_factory(unreachable))
    assert _value(samples, "nts_database_up") == 0
    assert not _by_state(samples, "nts_tickets")


def _registry_value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _BrokenSource:
    name = "broken-feed"

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        raise RuntimeError("the feed is down")


def test_jobs_polls_and_connector_calls_are_counted(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    before = {
        "runs": _registry_value("nts_job_runs_total", engine_job="poll_broken-feed"),
        "failures": _registry_value("nts_job_failures_total", engine_job="poll_broken-feed"),
        "polls": _registry_value("nts_source_poll_failures_total", source="broken-feed"),
        "calls": _registry_value("nts_connector_errors_total", connector="vendor", kind="AuthenticationError"),
    }

    def poll_broken_feed() -> dict[str, int]:
        return poll_source(engine, session_factory, settings, _BrokenSource())

    assert run_job(session_factory, "test-worker", "poll_broken-feed", poll_broken_feed) is None

    def rejected() -> None:
        raise AuthenticationError("vendor", "GET /api answered 401", status=401)

    with pytest.raises(AuthenticationError):
        call_with_retry(rejected, policy=RetryPolicy(attempts=3), sleep=lambda _: None)
    assert _registry_value("nts_job_runs_total", engine_job="poll_broken-feed") == before["runs"] + 1
    assert _registry_value("nts_job_failures_total", engine_job="poll_broken-feed") == before["failures"] + 1
    assert _registry_value("nts_source_poll_failures_total", source="broken-feed") == before["polls"] + 1
    calls = _registry_value("nts_connector_errors_total", connector="vendor", kind="AuthenticationError")
    assert calls == before["calls"] + 1, "one count per failed call, not per attempt"


PROMQL_WORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "rate",
        "increase",
        "irate",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "histogram_quantile",
        "scalar",
        "clamp_min",
        "clamp_max",
        "abs",
    ]
)


def _exported_sample_names() -> set[str]:
    """Every sample name this process's registry and the database collector can serve."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    families = [*REGISTRY.collect(), *DatabaseCollector(make_session_factory(create_engine("sqlite://"))).describe()]
    return {family.name + suffix for family in families for suffix in suffixes.get(family.type, ("",))}


def _metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers outside label matchers, ranges, strings and groupings."""
    bare = re.sub(r'"[^"]*"|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    return {word for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare) if word not in PROMQL_WORDS}


def test_alert_rules_parse_and_read_only_metrics_we_serve() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert len(rules) >= 7, "the seed's six thresholds (processing time has two rules)"
    exported = _exported_sample_names()
    assert "nts_tickets" in exported
    assert "nts_job_runs_total" in exported
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= rule.keys(), rule
        assert rule["annotations"]["summary"], rule["alert"]
        names = _metric_names(rule["expr"])
        assert names, rule["alert"]
        unknown = {name for name in names if name not in exported and not name.startswith(("process_", "node_"))}
        assert not unknown, f"{rule['alert']} reads metrics nobody serves: {unknown}"
    seed = {"TicketProcessingSlow", "EmailDeliveryRateLow", "AnalysisSuccessRateLow", "DatabasePoolNearlyFull"}
    assert seed | {"MemoryUsageHigh", "EngineCpuHigh"} <= {rule["alert"] for rule in rules}
