"""The numbers on the Metrics page, aggregated in the database for one date range and set of sources.

Counts are grouped in SQL; distributions fetch at most SAMPLE rows (the newest), so the page stays fast
whatever the size of the desk.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from engine.core.enums import ActionKind, ActionState, TicketStatus
from engine.core.models import Action, Analysis, IngestError, JobStatus, Ticket
from engine.core.settings import Settings

SAMPLE = 5_000
DRAFT_KINDS = (ActionKind.PROPOSE_RESOLUTION, ActionKind.REQUEST_INFO)


@dataclass(frozen=True)
class MetricsFilter:
    start: datetime
    end: datetime
    sources: tuple[str, ...] = ()


def _in_range(column: Any, metrics: MetricsFilter) -> list[Any]:
    conditions = [column >= metrics.start, column < metrics.end]
    if metrics.sources:
        conditions.append(Ticket.source.in_(metrics.sources))
    return conditions


def _day(value: Any) -> str:
    return value if isinstance(value, str) else value.isoformat()


def tickets_per_day(session: Session, metrics: MetricsFilter) -> list[dict[str, Any]]:
    """Tickets received and resolved each day, per source."""
    received = session.execute(
        select(func.date(Ticket.created_at), Ticket.source, func.count())
        .where(*_in_range(Ticket.created_at, metrics))
        .group_by(func.date(Ticket.created_at), Ticket.source)
    ).all()
    resolved = session.execute(
        select(func.date(Ticket.resolved_at), Ticket.source, func.count())
        .where(*_in_range(Ticket.resolved_at, metrics))
        .group_by(func.date(Ticket.resolved_at), Ticket.source)
    ).all()
    return [{"day": _day(day), "source": source, "direction": "in", "tickets": n} for day, source, n in received] + [
        {"day": _day(day), "source": source, "direction": "out", "tickets": n} for day, source, n in resolved
    ]


@dataclass(frozen=True)
class Outcomes:
    received: int
    resolved: int
    automated: int
    """Resolved with no human touch at all."""
    deflected: int
    """Resolved with no human touch and no follow-up question: answered right the first time."""
    escalated: int

    def rate(self, part: int, whole: int) -> float | None:
        return part / whole if whole else None


def outcomes(session: Session, metrics: MetricsFilter) -> Outcomes:
    received = session.scalar(select(func.count()).select_from(Ticket).where(*_in_range(Ticket.created_at, metrics)))
    resolved, automated, deflected = session.execute(
        select(
            func.count(),
            func.count().filter(Ticket.human_touched_at.is_(None)),
            func.count().filter(Ticket.human_touched_at.is_(None), Ticket.follow_up_count == 0),
        ).where(*_in_range(Ticket.resolved_at, metrics))
    ).one()
    escalated = session.scalar(
        select(func.count(func.distinct(Action.ticket_id)))
        .join(Ticket, Ticket.id == Action.ticket_id)
        .where(Action.kind == ActionKind.ESCALATE, *_in_range(Action.created_at, metrics))
    )
    return Outcomes(received or 0, resolved or 0, automated or 0, deflected or 0, escalated or 0)


def response_times(session: Session, metrics: MetricsFilter) -> list[dict[str, Any]]:
    """Minutes to first response and hours to resolution, for the newest tickets received in the range."""
    rows = session.execute(
        select(Ticket.source, Ticket.created_at, Ticket.first_response_at, Ticket.resolved_at)
        .where(*_in_range(Ticket.created_at, metrics))
        .order_by(Ticket.created_at.desc())
        .limit(SAMPLE)
    ).all()
    return [
        {
            "source": row.source,
            "first_response_minutes": (row.first_response_at - row.created_at).total_seconds() / 60
            if row.first_response_at
            else None,
            "resolution_hours": (row.resolved_at - row.created_at).total_seconds() / 3600 if row.resolved_at else None,
        }
        for row in rows
    ]


_MEASURED = re.compile(r"\s*\([^)]*\d[^)]*\)|\s*\b\d+(?:\.\d+)?\b")
"""Figures inside a reason ("confidence 0.42", "(score 71)") that make each ticket's reason unique."""


def reason_group(reason: str | None) -> str:
    """One label for the reasons that differ only in their figures: "no strong evidence (confidence 0.31)" and
    "... (confidence 0.42)" are the same reason."""
    return " ".join(_MEASURED.sub("", reason or "").split()).strip(" :;,-") or "(none given)"


def escalation_reasons(session: Session, metrics: MetricsFilter, limit: int = 10) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Action.reason, func.count().label("tickets"))
        .join(Ticket, Ticket.id == Action.ticket_id)
        .where(Action.kind == ActionKind.ESCALATE, *_in_range(Action.created_at, metrics))
        .group_by(Action.reason)
    ).all()
    grouped: Counter[str] = Counter()
    for reason, n in rows:
        grouped[reason_group(reason)] += n
    return [{"reason": reason, "tickets": n} for reason, n in grouped.most_common(limit)]


def _outcome_case() -> Any:
    """approved as-is / edited / rejected / auto-sent / voided / pending, from an action's state and history."""
    return case(
        (Action.state == ActionState.REJECTED, "rejected"),
        (Action.state == ActionState.VOIDED, "voided"),
        (Action.state == ActionState.AWAITING_APPROVAL, "pending"),
        (Action.decided_by == "engine", "auto-sent"),
        (Action.version > 1, "edited"),
        else_="approved as-is",
    )


def approval_outcomes(session: Session, metrics: MetricsFilter) -> list[dict[str, Any]]:
    """What happened to each AI draft, per ticket category."""
    outcome = _outcome_case()
    category = func.coalesce(Ticket.category, "uncategorised")
    rows = session.execute(
        select(category, outcome, func.count())
        .join(Ticket, Ticket.id == Action.ticket_id)
        .where(Action.kind.in_(DRAFT_KINDS), Action.created_by == "engine", *_in_range(Action.created_at, metrics))
        .group_by(category, outcome)
    ).all()
    return [{"category": category, "outcome": result, "drafts": n} for category, result, n in rows]


def confidence_vs_outcome(session: Session, metrics: MetricsFilter) -> list[dict[str, Any]]:
    """AI drafts per confidence band (0.0, 0.1, … 1.0) and what became of them: is confidence calibrated?"""
    band = func.round(Analysis.confidence * 10)
    outcome = _outcome_case()
    rows = session.execute(
        select(band, outcome, func.count())
        .join(Action, Action.analysis_id == Analysis.id)
        .join(Ticket, Ticket.id == Action.ticket_id)
        .where(Action.kind.in_(DRAFT_KINDS), *_in_range(Action.created_at, metrics))
        .group_by(band, outcome)
    ).all()
    return [{"confidence": float(b or 0) / 10, "outcome": result, "drafts": n} for b, result, n in rows]


def connector_errors(session: Session, metrics: MetricsFilter) -> list[dict[str, Any]]:
    """Items sources delivered that could not become tickets, per day and source."""
    conditions = [IngestError.created_at >= metrics.start, IngestError.created_at < metrics.end]
    if metrics.sources:
        conditions.append(IngestError.source.in_(metrics.sources))
    rows = session.execute(
        select(func.date(IngestError.created_at), IngestError.source, func.count())
        .where(*conditions)
        .group_by(func.date(IngestError.created_at), IngestError.source)
    ).all()
    return [{"day": _day(day), "source": source, "errors": n} for day, source, n in rows]


def poll_failures(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(JobStatus).where(JobStatus.job.like("poll_%")).order_by(JobStatus.job)).all()
    return [
        {
            "connector": row.job.removeprefix("poll_"),
            "worker": row.worker,
            "runs": row.runs,
            "failures": row.failures,
            "last error": "" if row.last_ok else (row.last_error or ""),
        }
        for row in rows
    ]


def status_mix(session: Session, metrics: MetricsFilter) -> dict[str, int]:
    rows = dict(
        session.execute(
            select(Ticket.status, func.count()).where(*_in_range(Ticket.created_at, metrics)).group_by(Ticket.status)
        ).all()
    )
    return {status.value: rows.get(status.value, 0) for status in TicketStatus}


def evaluation_report(settings: Settings) -> dict[str, Any] | None:
    """The newest offline evaluation report (written by the AI evaluation run); None when absent or unreadable."""
    path = Path(settings.DATA_DIR) / "evaluation" / "latest.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


class Scored(Protocol):
    """A decision that a minimum confidence sends or holds, and whether sending it was right (None: not known)."""

    def auto_sent(self, threshold: float) -> bool: ...

    def right_resolution(self) -> bool | None: ...


def auto_send_at(items: Sequence[Scored], threshold: float) -> dict[str, Any]:
    """What a minimum confidence sends: how many, the precision on those whose rightness is known, and the
    coverage (the share of all items sent). Offline cases and the desk's own history
    (engine/outcomes/threshold_history.py)
    are measured alike."""
    sent = [item for item in items if item.auto_sent(threshold)]
    known = [right for item in sent if (right := item.right_resolution()) is not None]
    return {
        "auto_sent": len(sent),
        "auto_send_precision": ratio(sum(known), len(known)),
        "coverage": ratio(len(sent), len(items)),
    }


def ratio(part: float, whole: int) -> float | None:
    """part / whole to four places; None when there is nothing to divide by."""
    return round(part / whole, 4) if whole else None
