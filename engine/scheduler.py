"""APScheduler wiring: one BackgroundScheduler per process, one interval job per engine job.

Jobs are safe to run in several processes at once (row claims, advisory locks), so app replicas and
`python -m engine run` workers can all carry a scheduler.
"""

from __future__ import annotations

from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from engine.jobs import poll_source, run_job
from engine.models import utcnow
from engine.outbox import deliver_outbox
from engine.pipeline import process_pending
from engine.runtime import Runtime


def engine_jobs(runtime: Runtime) -> dict[str, tuple[float, Callable[[], object]]]:
    """Each job's name, interval and zero-argument callable."""
    settings = runtime.settings
    jobs: dict[str, tuple[float, Callable[[], object]]] = {}
    for source in runtime.sources:
        interval = settings.DEMO_FEED_INTERVAL_SECONDS if source.name == "demo" else settings.POLL_INTERVAL_SECONDS
        jobs[f"poll_{source.name}"] = (
            interval,
            lambda source=source: poll_source(runtime.engine, runtime.factory, settings, source),
        )
    jobs["process_pending"] = (
        settings.PROCESS_INTERVAL_SECONDS,
        lambda: process_pending(runtime.factory, settings, runtime.analyser, worker=runtime.worker),
    )
    jobs["deliver_outbox"] = (
        settings.OUTBOX_INTERVAL_SECONDS,
        lambda: deliver_outbox(runtime.factory, settings, runtime.transport),
    )
    return jobs


def run_all_once(runtime: Runtime) -> dict[str, object]:
    """Every job once, in pipeline order: what a CLI `--once` run or a test does."""
    return {
        name: run_job(runtime.factory, runtime.worker, name, job) for name, (_, job) in engine_jobs(runtime).items()
    }


def start_scheduler(runtime: Runtime) -> BackgroundScheduler:
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
