"""The engine's timer: a dashboard's own engine lets the first page after a restart go first."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from engine.core.models import JobStatus, utcnow
from engine.core.settings import Settings
from engine.runtime import build_runtime
from engine.scheduler import engine_jobs, start_scheduler, stop_scheduler


def test_every_job_first_runs_when_asked_and_not_before(settings: Settings) -> None:
    runtime = build_runtime(settings)
    asked = utcnow() + timedelta(days=1)  # far enough that no job can have run when the scheduler stops
    scheduler = start_scheduler(runtime, first_run_at=asked)
    try:
        jobs = scheduler.get_jobs()
        assert {job.id for job in jobs} == set(engine_jobs(runtime))
        assert {job.next_run_time for job in jobs} == {asked}
    finally:
        stop_scheduler(scheduler)
    with runtime.factory() as session:
        assert session.scalar(select(func.count()).select_from(JobStatus)) == 0
    runtime.engine.dispose()
