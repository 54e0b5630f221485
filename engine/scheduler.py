"""APScheduler wiring: one BackgroundScheduler per process, one interval job per engine job.

Jobs are safe to run in several processes at once (row claims, advisory locks), so app replicas and
`python -m engine run` workers can all carry a scheduler.
"""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from connectors.base import TicketSource
from connectors.demo import seed_demo_knowledge
from engine.engine_lock import claim_engine
from engine.jobs import index_knowledge, poll_source, run_job
from engine.models import utcnow
from engine.outbox import deliver_outbox
from engine.pipeline import process_pending
from engine.routing import train_routing
from engine.runtime import Runtime
from engine.sync import poll_mailgun_events, sync_back


def engine_jobs(runtime: Runtime) -> dict[str, tuple[float, Callable[[], object]]]:
    """Each job's name, interval and zero-argument callable."""
    settings = runtime.settings
    jobs: dict[str, tuple[float, Callable[[], object]]] = {}
    intervals = {
        "demo": settings.DEMO_FEED_INTERVAL_SECONDS,
        "servicenow": settings.SNOW_POLL_INTERVAL_SECONDS,
        "jira": settings.JIRA_POLL_INTERVAL_SECONDS,
        "outlook": settings.MS_GRAPH_POLL_INTERVAL_SECONDS,
        "imap": settings.IMAP_POLL_INTERVAL_SECONDS,
    }
    for source in runtime.sources:
        interval = intervals.get(source.name, settings.POLL_INTERVAL_SECONDS)
        jobs[f"poll_{source.name}"] = (interval, lambda source=source: _poll(runtime, source))
    jobs["reindex"] = (settings.KB_INDEX_INTERVAL_SECONDS, lambda: index_knowledge(runtime.factory, settings))
    jobs["process_pending"] = (
        settings.PROCESS_INTERVAL_SECONDS,
        lambda: process_pending(runtime.factory, settings, runtime.analyser, worker=runtime.worker),
    )
    jobs["deliver_outbox"] = (
        settings.OUTBOX_INTERVAL_SECONDS,
        lambda: deliver_outbox(runtime.factory, settings, runtime.transport),
    )
    if settings.ROUTING_ENABLED:
        jobs["train_routing"] = (settings.ROUTING_INTERVAL_SECONDS, lambda: train_routing(runtime.factory, settings))
    if runtime.delivery_events is not None:
        jobs["poll_mailgun_events"] = (
            settings.MAILGUN_EVENTS_INTERVAL_SECONDS,
            lambda: poll_mailgun_events(runtime.engine, runtime.factory, runtime.delivery_events),
        )
    if settings.SYNC_BACK_ENABLED and runtime.sync_targets:
        jobs["sync_back"] = (
            settings.SYNC_BACK_INTERVAL_SECONDS,
            lambda: sync_back(runtime.engine, runtime.factory, settings, runtime.sync_targets),
        )
    return jobs


def _poll(runtime: Runtime, source: TicketSource) -> dict[str, int]:
    """Poll one source; the demo feed first puts its articles in the knowledge base, so its tickets get answers."""
    if source.name == "demo":
        seed_demo_knowledge(runtime.factory, runtime.settings)
    return poll_source(runtime.engine, runtime.factory, runtime.settings, source)


def run_all_once(runtime: Runtime) -> dict[str, object]:
    """Every job once, in pipeline order: what a CLI `--once` run or a test does."""
    return {
        name: run_job(runtime.factory, runtime.worker, name, job) for name, (_, job) in engine_jobs(runtime).items()
    }


def start_scheduler(runtime: Runtime) -> BackgroundScheduler:
    """The engine's jobs on a timer; EngineAlreadyRunningError when another process runs them on this SQLite file."""
    claim_engine(runtime.settings)
    scheduler = BackgroundScheduler(
        daemon=True, job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    )
    for name, (interval, job) in engine_jobs(runtime).items():
        scheduler.add_job(
            run_job,
            "interval",
            seconds=interval,
            args=(runtime.factory, runtime.worker, name, job),
            id=name,
            name=name,
            next_run_time=utcnow(),
        )
    scheduler.start()
    return scheduler
