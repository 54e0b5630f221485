"""Prometheus metrics for `python -m engine run --metrics-port N`: what the desk holds and how its work goes.

Counts of tickets and outbox messages are read from the database at scrape time (one GROUP BY each),
so they are always current, agree across replicas and cost nothing between scrapes. Job runs, analyses and
deliveries are counters and histograms of this process, fed by one-line calls at the places that do the
work; connector errors are counted where calls are retried (connectors/http.py), in the same default registry
this endpoint serves. Alert rules over these names: deploy/prometheus-alerts.yml.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from engine.core.enums import OutboxState, TicketStatus
from engine.core.models import OutboxMessage, Ticket, utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from connectors.base import TicketSource
    from engine.core.analysis import AnalysisResult
    from engine.core.settings import Settings

log = logging.getLogger(__name__)

# `engine_job`, not `job`: Prometheus owns `job` (the scrape job) and would rename ours to `exported_job`.
JOB_RUNS = Counter("nts_job_runs", "Engine job runs in this process", ["engine_job"])
JOB_FAILURES = Counter("nts_job_failures", "Engine job runs that raised, in this process", ["engine_job"])
JOB_DURATION = Histogram(
    "nts_job_duration_seconds",
    "Wall time of one engine job run",
    ["engine_job"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
ANALYSES = Counter("nts_analyses", "Analyses recorded, by analyser and outcome (ok, error)", ["analyser", "outcome"])
ANALYSIS_DURATION = Histogram(
    "nts_analysis_duration_seconds",
    "Latency of one ticket's analysis: retrieval plus every model request it made",
    ["analyser"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
LLM_TOKENS = Counter("nts_llm_tokens", "Model tokens by analyser and kind (prompt, completion)", ["analyser", "kind"])
LLM_COST = Counter("nts_llm_cost_usd", "Model cost in US dollars at the configured prices", ["analyser"])
TICKET_PROCESSING = Histogram(
    "nts_ticket_processing_seconds",
    "From a ticket needing work to its analysis being recorded (queue wait included)",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600),
)
DELIVERIES = Counter(
    "nts_outbox_deliveries", "Outbox delivery outcomes (sent, retried, failed, uncertain)", ["outcome"]
)
POLL_FAILURES = Counter("nts_source_poll_failures", "Polls of a ticket source that failed as a whole", ["source"])
INGEST_ERRORS = Counter("nts_ingest_errors", "Items from a source that could not be ingested", ["source"])

PollJob = Callable[["Engine", sessionmaker[Session], "Settings", "TicketSource"], dict[str, int]]


def observe_job(job: str, seconds: float, *, failed: bool) -> None:
    """One run of an engine job (engine.jobs.run_job); failures start at 0, so rate() sees the first one."""
    JOB_RUNS.labels(job).inc()
    JOB_FAILURES.labels(job).inc(int(failed))
    JOB_DURATION.labels(job).observe(seconds)


def observe_analysis(result: AnalysisResult, pending_since: datetime | None) -> None:
    """One recorded analysis: its outcome, latency and tokens, and how long the ticket waited for it."""
    ANALYSES.labels(result.analyser, "error" if result.error else "ok").inc()
    ANALYSIS_DURATION.labels(result.analyser).observe(result.latency_ms / 1000)
    LLM_TOKENS.labels(result.analyser, "prompt").inc(result.prompt_tokens)
    LLM_TOKENS.labels(result.analyser, "completion").inc(result.completion_tokens)
    LLM_COST.labels(result.analyser).inc(result.cost_usd)
    if pending_since is not None:
        TICKET_PROCESSING.observe(max((utcnow() - pending_since).total_seconds(), 0.0))


def observe_delivery(counts: Mapping[str, int]) -> None:
    """One run of the outbox job: how its sends went (failed and uncertain ones wait for a person)."""
    for outcome in ("sent", "retried", "failed", "uncertain"):
        DELIVERIES.labels(outcome).inc(counts[outcome])


def observe_poll(poll: PollJob) -> PollJob:
    """Count a poll that fails as a whole, and the items it could not ingest, by source."""

    @functools.wraps(poll)
    def counted(
        engine: Engine, factory: sessionmaker[Session], settings: Settings, source: TicketSource
    ) -> dict[str, int]:
        try:
            counts = poll(engine, factory, settings, source)
        except Exception:
            POLL_FAILURES.labels(source.name).inc()
            raise
        INGEST_ERRORS.labels(source.name).inc(counts.get("errors", 0))
        return counts

    return counted


class DatabaseCollector:
    """Tickets by state, outbox backlog and the connection pool, read when Prometheus scrapes and only then."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def describe(self) -> Iterable[Metric]:
        """The families without a query, so registering the collector does not touch the database."""
        return list(_database_families().values())

    def collect(self) -> Iterator[Metric]:
        families = _database_families()
        self._collect_pool(families["nts_db_pool_connections"])
        try:
            with self.factory() as session:
                self._collect_tickets(session, families)
                self._collect_outbox(session, families)
        except SQLAlchemyError as error:
            log.warning("metrics: database unreachable: %s", type(error).__name__)
            families["nts_database_up"].add_metric([], 0)
            yield from (families["nts_db_pool_connections"], families["nts_database_up"])
            return
        families["nts_database_up"].add_metric([], 1)
        yield from families.values()

    @staticmethod
    def _collect_tickets(session: Session, families: dict[str, GaugeMetricFamily]) -> None:
        rows = session.execute(
            select(Ticket.status, func.count(), func.min(Ticket.pending_since)).group_by(Ticket.status)
        ).all()
        counts = {str(state): 0 for state in TicketStatus} | {state: count for state, count, _ in rows}
        for state, count in sorted(counts.items()):
            families["nts_tickets"].add_metric([state], count)
        families["nts_tickets_oldest_pending_age_seconds"].add_metric([], _age([oldest for *_, oldest in rows]))

    @staticmethod
    def _collect_outbox(session: Session, families: dict[str, GaugeMetricFamily]) -> None:
        rows = session.execute(
            select(OutboxMessage.state, func.count(), func.min(OutboxMessage.created_at)).group_by(OutboxMessage.state)
        ).all()
        counts = {str(state): 0 for state in OutboxState} | {state: count for state, count, _ in rows}
        for state, count in sorted(counts.items()):
            families["nts_outbox_messages"].add_metric([state], count)
        pending = [oldest for state, _, oldest in rows if state == OutboxState.PENDING]
        families["nts_outbox_oldest_pending_age_seconds"].add_metric([], _age(pending))

    def _collect_pool(self, family: GaugeMetricFamily) -> None:
        """Only a QueuePool (PostgreSQL, a SQLite file) has a size to fill up; other pools report nothing."""
        pool = getattr(self.factory.kw.get("bind"), "pool", None)
        if isinstance(pool, QueuePool):
            family.add_metric(["size"], pool.size())
            family.add_metric(["checked_out"], pool.checkedout())


def _database_families() -> dict[str, GaugeMetricFamily]:
    """Fresh, empty families for one scrape, by name."""
    families = [
        GaugeMetricFamily("nts_tickets", "Tickets by status", labels=["state"]),
        GaugeMetricFamily("nts_tickets_oldest_pending_age_seconds", "Age of the oldest ticket awaiting the pipeline"),
        GaugeMetricFamily("nts_outbox_messages", "Outbox messages by state", labels=["state"]),
        GaugeMetricFamily("nts_outbox_oldest_pending_age_seconds", "Age of the oldest outbox message still pending"),
        GaugeMetricFamily("nts_db_pool_connections", "This process's pool: size and checked_out", labels=["state"]),
        GaugeMetricFamily("nts_database_up", "1 when this scrape could read the database, else 0"),
    ]
    return {family.name: family for family in families}


def _age(moments: list[datetime | None]) -> float:
    """Seconds since the earliest of `moments`; 0 when there is none."""
    known = [moment for moment in moments if moment is not None]
    return max((utcnow() - min(known)).total_seconds(), 0.0) if known else 0.0


def start_metrics_server(port: int, factory: sessionmaker[Session], *, address: str = "127.0.0.1") -> WSGIServer:
    """Serve /metrics on `address`:`port` from a daemon thread (once per process); OSError if the port is taken.

    Loopback by default: the scrape shows ticket volumes, so only a container on a private network should open it
    wider (docker-compose.yml does, for a Prometheus on the same network).
    """
    disable_created_metrics()  # a `_created` twin of every counter doubles the series and no rule uses it
    server, _ = start_http_server(port, addr=address)
    REGISTRY.register(DatabaseCollector(factory))
    log.info("metrics on http://%s:%s/metrics", address, port)
    return server
