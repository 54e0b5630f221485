"""The seed's health check (§10.2): database, AI, mail transport, vector store, resources, jobs, outbox, sources.

The status says whether the desk can do its work: unhealthy when the database is gone or every configured
ticket source is failing (nothing new can arrive), degraded when a part needs attention (a failing connector,
failed or uncertain mail, a failing job). CPU, memory and disk are reported for information; a busy machine
is not a broken desk.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psutil
from sqlalchemy import func, select, text

from connectors.redaction import redact_url_credentials
from engine.connector_status import ConnectorStatus, check_connectors
from engine.core.enums import OutboxState
from engine.core.models import JobStatus, OutboxMessage, utcnow
from engine.runtime import Runtime

STALE_JOB = timedelta(minutes=10)


def health_report(runtime: Runtime) -> dict[str, Any]:
    """`status` is healthy, degraded (works, with a part needing attention) or unhealthy (cannot work)."""
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
        "analyser": runtime.analyser.name,
    }
    checks["mail_transport"] = {"status": "configured", "transport": runtime.transport.name}
    statuses = [status for status in check_connectors(runtime.settings) if status.configured or status.failing]
    checks["connectors"] = _connectors(statuses)
    checks["sources"] = _sources(statuses)
    if checks["sources"]["status"] == "unhealthy":
        degrade("unhealthy")
    elif checks["connectors"]["failing"]:
        degrade("degraded")
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


def _connectors(statuses: list[ConnectorStatus]) -> dict[str, Any]:
    """Each configured connector's last poll, last error and backlog (no vendor is called from here)."""
    return {
        "failing": [status.name for status in statuses if status.failing],
        "connectors": [
            {
                "name": s.name,
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
    state = "unhealthy" if sources and len(failing) == len(sources) else "degraded" if failing else "healthy"
    return {"status": state, "configured": [status.name for status in sources], "failing": failing}


def _resources(runtime: Runtime) -> dict[str, Any]:
    """The machine's load, for information: it never changes the status."""
    return {
        "cpu_percent": psutil.cpu_percent(interval=0.2),
        "memory_percent": psutil.virtual_memory().percent,
        "disk_percent": psutil.disk_usage(str(runtime.settings.DATA_DIR)).percent,
    }
