"""The seed's health check (§10.2): database, AI, mail transport, vector store, resources, jobs, outbox, sources.

The status says whether the desk can do its work: unhealthy when the database is gone or every configured
ticket source is failing (nothing new can arrive), degraded when a part needs attention (a failing connector,
failed or uncertain mail, a failing job). Bounced mail is counted, not degrading: the recipient's server refused an
address, the desk works (each bounce is on its ticket for a person). CPU, memory and disk are reported for
information; a busy machine is not a broken desk.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psutil
from sqlalchemy import func, select, text

from connectors.redaction import redact_url_credentials
from engine.connector_status import ConnectorStatus, check_connectors, test_connection, testable_connectors
from engine.core.enums import OutboxState
from engine.core.models import JobStatus, OutboxMessage, utcnow
from engine.runtime import Runtime

STALE_JOB = timedelta(minutes=10)


CONNECTION_TEST_SECONDS = 20.0
"""How long `engine health` waits for all connection tests together."""


def health_report(runtime: Runtime, *, test_connections: bool = False) -> dict[str, Any]:
    """`status` is healthy, degraded (works, with a part needing attention), unhealthy (cannot work), or not yet
    tested (nothing wrong seen, but a configured connector was never used or tested).

    A connector never used since it was configured has no run to judge it by: with `test_connections` each
    configured one is called once now (in parallel, bounded in time), else it says "not yet tested"."""
    report: dict[str, Any] = {
        "status": "healthy",
        "timestamp": utcnow().isoformat(),
        "worker": runtime.worker,
        "checks": {},
    }
    checks = report["checks"]

    def degrade(level: str) -> None:
        if report["status"] != "unhealthy":
            report["status"] = level

    try:
        with runtime.factory() as session:
            session.execute(text("SELECT 1"))
            checks["database"] = {"status": "healthy", "dialect": runtime.engine.dialect.name}
            checks["outbox"] = _outbox(session)
            checks["jobs"] = _jobs(session)
    except Exception as error:
        reason = redact_url_credentials(f"{type(error).__name__}: {error}")
        checks["database"] = {"status": "unhealthy", "error": reason[:500]}
        degrade("unhealthy")
    else:
        if checks["outbox"]["failed"] or checks["outbox"]["uncertain"] or checks["jobs"]["failing"]:
            degrade("degraded")
    checks["llm"] = {
        "status": "disabled" if runtime.settings.LLM_PROVIDER == "none" else "configured",
        "provider": runtime.settings.LLM_PROVIDER,
        "analyser": runtime.analyser_name,
    }
    checks["mail_transport"] = {"status": "configured", "transport": runtime.transport.name}
    statuses = [status for status in check_connectors(runtime.settings) if status.configured or status.failing]
    if test_connections:
        statuses = _tested(runtime, statuses)
    checks["connectors"] = _connectors(statuses)
    checks["sources"] = _sources(statuses)
    if checks["sources"]["status"] == "unhealthy":
        degrade("unhealthy")
    elif checks["connectors"]["failing"]:
        degrade("degraded")
    elif checks["connectors"]["not_yet_tested"] and report["status"] == "healthy":
        report["status"] = "not yet tested"
    checks["resources"] = _resources(runtime)
    return report


def _outbox(session: Any) -> dict[str, Any]:
    counts = dict(session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())
    oldest = session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.state == OutboxState.PENDING)
    )
    return {
        "pending": counts.get(OutboxState.PENDING, 0),
        "sending": counts.get(OutboxState.SENDING, 0),
        "sent": counts.get(OutboxState.SENT, 0),
        "failed": counts.get(OutboxState.FAILED, 0),
        "uncertain": counts.get(OutboxState.UNCERTAIN, 0),
        "suppressed": counts.get(OutboxState.SUPPRESSED, 0),
        "bounced": counts.get(OutboxState.BOUNCED, 0),
        "oldest_pending_seconds": round((utcnow() - oldest).total_seconds()) if oldest else 0,
    }


def _jobs(session: Any) -> dict[str, Any]:
    rows = session.scalars(select(JobStatus).order_by(JobStatus.job, JobStatus.worker)).all()
    recent = utcnow() - STALE_JOB
    jobs = [
        {
            "job": row.job,
            "worker": row.worker,
            "ok": row.last_ok,
            "runs": row.runs,
            "failures": row.failures,
            "last_finished_at": row.last_finished_at.isoformat() if row.last_finished_at else None,
            "last_error": None if row.last_ok or row.last_error is None else redact_url_credentials(row.last_error),
        }
        for row in rows
    ]
    failing = [
        job["job"]
        for job, row in zip(jobs, rows, strict=True)
        if not row.last_ok and row.last_finished_at and row.last_finished_at > recent
    ]
    return {"failing": failing, "runs": jobs}


def _tested(runtime: Runtime, statuses: list[ConnectorStatus]) -> list[ConnectorStatus]:
    """Each configured connector's state with one live call each, all at once, for at most CONNECTION_TEST_SECONDS;
    one that does not answer in time keeps its recorded state."""
    testable = set(testable_connectors())
    chosen = [status for status in statuses if status.configured and status.name in testable]
    if not chosen:
        return statuses
    pool = ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="health")
    futures = {status.name: pool.submit(test_connection, status.name, runtime.settings) for status in chosen}
    wait(futures.values(), timeout=CONNECTION_TEST_SECONDS)
    pool.shutdown(wait=False, cancel_futures=True)
    tested = []
    for status in statuses:
        future = futures.get(status.name)
        if future is None or not future.done() or future.exception() is not None:
            tested.append(status)
            continue
        live = future.result()
        failing = live.reachable is False or live.authenticated is False
        tested.append(
            replace(
                status,
                reachable=live.reachable,
                authenticated=live.authenticated,
                last_error=live.last_error or (status.last_error if not failing else None),
                failing=failing or (status.failing and live.authenticated is not True),
                tested=True,
            )
        )
    return tested


def _state(status: ConnectorStatus) -> str:
    """failing, not yet tested (configured, with something to connect to, and neither used nor tested), ok."""
    if status.failing:
        return "failing"
    untouched = status.reachable is None and status.authenticated is None and status.last_poll is None
    if untouched and status.name in testable_connectors():
        return "not yet tested"
    return "ok" if status.authenticated or status.reachable else "configured"


def _connectors(statuses: list[ConnectorStatus]) -> dict[str, Any]:
    """Each configured connector's state, last poll, last error and backlog; "tested" when it was called just now."""
    return {
        "failing": [status.name for status in statuses if status.failing],
        "not_yet_tested": [status.name for status in statuses if _state(status) == "not yet tested"],
        "connectors": [
            {
                "name": s.name,
                "status": _state(s),
                "tested": s.tested,
                "configured": s.configured,
                "reachable": s.reachable,
                "authenticated": s.authenticated,
                "last_poll": s.last_poll.isoformat() if s.last_poll else None,
                "last_error": s.last_error,
                "backlog": s.backlog,
            }
            for s in statuses
        ],
    }


def _sources(statuses: list[ConnectorStatus]) -> dict[str, Any]:
    """The ticket sources: unhealthy when every one is failing (the desk hears nothing), degraded when some are."""
    sources = [status for status in statuses if status.source]
    failing = [status.name for status in sources if status.failing]
    untested = [status.name for status in sources if _state(status) == "not yet tested"]
    state = "unhealthy" if sources and len(failing) == len(sources) else "degraded" if failing else "healthy"
    if state == "healthy" and untested:
        state = "not yet tested"
    return {"status": state, "configured": [s.name for s in sources], "failing": failing, "not_yet_tested": untested}


def _resources(runtime: Runtime) -> dict[str, Any]:
    """The machine's load, for information: it never changes the status."""
    return {
        "cpu_percent": psutil.cpu_percent(interval=0.2),
        "memory_percent": psutil.virtual_memory().percent,
        "disk_percent": psutil.disk_usage(str(runtime.settings.DATA_DIR)).percent,
    }
