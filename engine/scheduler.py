"""APScheduler wiring: one BackgroundScheduler per process, one interval job per engine job.

Jobs are safe to run in several processes at once (row claims, advisory locks), so app replicas and
`python -m engine run` workers can all carry a scheduler.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.background import BackgroundScheduler

from connectors import registry
from engine.analysers.routing import train_routing
from engine.core.models import utcnow
from engine.core.settings import Settings
from engine.delivery.delivery_events import poll_delivery_events
from engine.delivery.outbox import deliver_outbox
from engine.delivery.sync import sync_back
from engine.jobs import calibrate_knowledge_if_changed, index_knowledge, poll_source, run_job, seed_knowledge
from engine.ops.engine_lock import claim_engine
from engine.outcomes.outcomes import advance_outcomes
from engine.pipeline import AnalysisPool, process_pending
from engine.runtime import Runtime
from kb.sandbox import stop_extractions

log = logging.getLogger(__name__)


SKIPPED_WORDS = ("maximum number of running instances", "was missed by")
"""APScheduler's two warnings for a run that did not happen: the job was still running, or its time passed while
every worker thread was busy."""
SCHEDULER_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")


class SkippedRuns(logging.Filter):
    """APScheduler warns at every tick a job is still running ("skipped: maximum number of running instances") and
    for every run time a busy pool missed ("was missed by"): dozens of lines for one slow run. Count them per job
    instead; the run says how many once it ends."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(words in str(record.msg) for words in SKIPPED_WORDS):
            return True
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        with self._lock:
            self.counts[str(getattr(job, "id", job))] += 1
        return False

    def take(self, name: str) -> int:
        with self._lock:
            return self.counts.pop(name, 0)


SKIPPED = SkippedRuns()


def count_skipped_runs() -> None:
    """Put APScheduler's skipped-run warnings through SKIPPED (once per process)."""
    for name in SCHEDULER_LOGGERS:
        if SKIPPED not in (scheduler_log := logging.getLogger(name)).filters:
            scheduler_log.addFilter(SKIPPED)


def run_scheduled(runtime: Runtime, name: str, interval: float, job: Callable[[], object]) -> object:
    """One timed run; a run that outlasted its interval says once how many runs it made the scheduler skip."""
    SKIPPED.take(name)
    began = utcnow()
    result = run_job(runtime.factory, runtime.worker, name, job)
    if skipped := SKIPPED.take(name):
        seconds = (utcnow() - began).total_seconds()
        log.warning(
            "job %s took %.0fs, longer than its %.0fs interval: %s run(s) skipped meanwhile",
            name,
            seconds,
            interval,
            skipped,
        )
    return result


def engine_jobs(runtime: Runtime, pool: AnalysisPool | None = None) -> dict[str, tuple[float, Callable[[], object]]]:
    """Each job's name, interval and zero-argument callable, in pipeline order. With `pool`, the processing job hands
    tickets to it and returns; without, it waits for the tickets it claimed."""
    settings = runtime.settings
    jobs: dict[str, tuple[float, Callable[[], object]]] = {}
    if any(entry.knowledge is not None and entry.configured(settings) for entry in registry.connectors()):
        jobs["seed_knowledge"] = (settings.KB_INDEX_INTERVAL_SECONDS, lambda: seed_knowledge(runtime.factory, settings))
    for source in runtime.sources:
        jobs[f"poll_{source.name}"] = (
            poll_interval(settings, source.name),
            lambda source=source: poll_source(runtime.engine, runtime.factory, settings, source),
        )
    jobs["reindex"] = (settings.KB_INDEX_INTERVAL_SECONDS, lambda: index_knowledge(runtime.factory, settings))
    jobs["calibrate"] = (
        settings.KB_CALIBRATE_INTERVAL_SECONDS,
        lambda: calibrate_knowledge_if_changed(runtime.factory, settings),
    )
    jobs["process_pending"] = (
        settings.PROCESS_INTERVAL_SECONDS,
        lambda: process_pending(runtime.factory, settings, runtime.analyser, worker=runtime.worker, pool=pool),
    )
    jobs["deliver_outbox"] = (
        settings.OUTBOX_INTERVAL_SECONDS,
        lambda: deliver_outbox(runtime.factory, settings, runtime.transport),
    )
    jobs["advance_outcomes"] = (
        settings.OUTCOME_INTERVAL_SECONDS,
        lambda: advance_outcomes(runtime.factory, settings),
    )
    if settings.LLM_PROVIDER != "none":
        from engine.intake.llm_reply_classifier import (
            read_unclear_replies,  # langchain only where a model is configured
        )

        jobs["read_unclear_replies"] = (
            settings.OUTCOME_INTERVAL_SECONDS,
            lambda: read_unclear_replies(runtime.factory, settings),
        )
    if settings.ROUTING_ENABLED:
        jobs["train_routing"] = (settings.ROUTING_INTERVAL_SECONDS, lambda: train_routing(runtime.factory, settings))
    for events in runtime.delivery_events:
        jobs[f"poll_{events.name}_events"] = (
            poll_interval(settings, events.name),
            lambda events=events: poll_delivery_events(runtime.engine, runtime.factory, events),
        )
    if runtime.sync_targets:
        jobs["sync_back"] = (
            settings.SYNC_BACK_INTERVAL_SECONDS,
            lambda: sync_back(runtime.engine, runtime.factory, settings, runtime.sync_targets),
        )
    return jobs


def poll_interval(settings: Settings, name: str) -> float:
    """How often connector `name` is read: its own interval setting, else POLL_INTERVAL_SECONDS."""
    entry = registry.CONNECTORS.get(name)
    if entry is None or entry.poll_interval is None:
        return settings.POLL_INTERVAL_SECONDS
    return entry.poll_interval(settings)


def run_all_once(runtime: Runtime) -> dict[str, object]:
    """Every job once, in pipeline order: what a CLI `--once` run or a test does."""
    return {
        name: run_job(runtime.factory, runtime.worker, name, job) for name, (_, job) in engine_jobs(runtime).items()
    }


def start_scheduler(runtime: Runtime, *, first_run_at: datetime | None = None) -> BackgroundScheduler:
    """The engine's jobs on a timer, each first run at `first_run_at` (now when None); EngineAlreadyRunningError
    when another process runs them on this SQLite file.

    Tickets are analysed by one long-lived pool, stopped with the scheduler (its claims given back)."""
    claim_engine(runtime.settings)
    scheduler = BackgroundScheduler(
        daemon=True, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    )
    count_skipped_runs()
    pool = AnalysisPool(runtime.factory, runtime.settings.ANALYSIS_CONCURRENCY, runtime.settings.PROCESS_BATCH_SIZE)
    scheduler.add_listener(lambda _: pool.stop(), EVENT_SCHEDULER_SHUTDOWN)
    first_run_at = first_run_at or utcnow()
    for name, (interval, job) in engine_jobs(runtime, pool).items():
        scheduler.add_job(
            run_scheduled,
            "interval",
            seconds=interval,
            args=(runtime, name, interval, job),
            id=name,
            name=name,
            next_run_time=first_run_at,
        )
    scheduler.start()
    return scheduler


def stop_scheduler(scheduler: BackgroundScheduler) -> None:
    """Stop promptly: the children reading files are killed first (a job waiting on one ends at once), then the jobs
    are waited for and the analysis pool gives its tickets back."""
    stop_extractions()
    scheduler.shutdown(wait=True)
