"""What another auto-send minimum would have done on this desk's own history (the Metrics page).

Every stored analysis in the range is replayed at each minimum confidence: a resolution proposal that nothing else
held (guards, missing evidence, an incomplete analysis: `analysis_holds`) is sent when its confidence reaches the
minimum. What became of the draft says whether sending it unchanged was right: a person approved it as-is or the
customer confirmed it (or it lasted: durable) — right; a person edited or rejected it, or the customer re-opened
it — wrong; still waiting, withdrawn, or sent with no word from the customer yet — not known. Precision counts only
the known ones; coverage is the share of all analyses in the range that would have been answered automatically.
Autopilot switches are left out: the question is the threshold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, select
from sqlalchemy.orm import Session

from engine.core.desk_policy import current_policy
from engine.core.enums import ActionKind, ActionState, OutcomeState
from engine.core.models import Action, Analysis, ResolutionOutcome, Ticket
from engine.core.settings import Settings
from engine.outcomes.metrics import SAMPLE, MetricsFilter, auto_send_at
from engine.trust.decision import analysis_holds

THRESHOLDS = tuple(round(0.5 + step * 0.05, 2) for step in range(10))
"""The minimums shown: 0.50, 0.55 … 0.95, with the desk's current one added."""
APPROVED = "approved as-is"
EDITED = "edited"
REJECTED = "rejected"
CONFIRMED = "confirmed by the customer"
REOPENED = "re-opened by the customer"
UNKNOWN = "not known yet"
VERDICTS = (APPROVED, EDITED, REJECTED, CONFIRMED, REOPENED, UNKNOWN)
RIGHT: dict[str, bool | None] = {APPROVED: True, CONFIRMED: True, EDITED: False, REJECTED: False, REOPENED: False}


@dataclass(frozen=True)
class PastAnalysis:
    """One stored analysis: its confidence, whether anything but the threshold held it, and what became of it."""

    confidence: float
    held: bool
    verdict: str = UNKNOWN

    def auto_sent(self, threshold: float) -> bool:
        return not self.held and self.confidence >= threshold

    def right_resolution(self) -> bool | None:
        return RIGHT.get(self.verdict)


@dataclass(frozen=True)
class ThresholdHistory:
    """The what-if table (one row per minimum, plain column names) and what it was computed from."""

    rows: list[dict[str, Any]]
    current: float
    analysed: int
    eligible: int
    """Resolution proposals that nothing but the minimum confidence could hold."""


def verdict(
    state: str | None, version: int | None, decided_by: str | None, outcome: str | None, answer: str | None
) -> str:
    """What became of a resolution draft, person first: a draft a person changed or refused says so whatever
    followed; a draft sent unchanged is judged by the customer, else by the person who approved it."""
    if state == ActionState.REJECTED:
        return REJECTED
    if state != ActionState.EXECUTED:
        return UNKNOWN
    if (version or 1) > 1:
        return EDITED
    if outcome == OutcomeState.REOPENED:
        return REOPENED
    if answer == "yes" or outcome in (OutcomeState.CONFIRMED, OutcomeState.DURABLE):
        return CONFIRMED
    return APPROVED if decided_by and decided_by != "engine" else UNKNOWN


def past_analyses(session: Session, metrics: MetricsFilter) -> list[PastAnalysis]:
    """The newest SAMPLE analyses created in the range (and sources), each with its draft's verdict."""
    conditions = [Analysis.created_at >= metrics.start, Analysis.created_at < metrics.end]
    if metrics.sources:
        conditions.append(Ticket.source.in_(metrics.sources))
    rows = session.execute(
        select(
            Analysis.id,
            Analysis.decision,
            Analysis.confidence,
            Analysis.error,
            Analysis.guards,
            cast(Analysis.evidence, String).not_in(["[]", "null"]).label("cited"),
            Action.state,
            Action.version,
            Action.decided_by,
            ResolutionOutcome.state.label("outcome"),
            ResolutionOutcome.answer,
        )
        .join(Ticket, Ticket.id == Analysis.ticket_id)
        .outerjoin(Action, and_(Action.analysis_id == Analysis.id, Action.kind == ActionKind.PROPOSE_RESOLUTION))
        .outerjoin(ResolutionOutcome, ResolutionOutcome.action_id == Action.id)
        .where(*conditions)
        .order_by(Analysis.created_at.desc(), Analysis.id.desc(), ResolutionOutcome.id)
        .limit(SAMPLE)
    ).all()
    analyses: dict[int, PastAnalysis] = {}
    for row in rows:
        analyses[row.id] = PastAnalysis(
            confidence=float(row.confidence or 0.0),
            held=row.decision != "resolve"
            or bool(analysis_holds(row.decision, bool(row.cited), row.error, row.guards)),
            verdict=verdict(row.state, row.version, row.decided_by, row.outcome, row.answer),
        )
    return list(analyses.values())


def threshold_history(session: Session, settings: Settings, metrics: MetricsFilter) -> ThresholdHistory:
    """Per minimum confidence: how many would have been sent automatically, what became of them, the precision on
    the known ones and the coverage; the desk's current minimum is marked."""
    current = current_policy(session, settings).auto_send_min_confidence
    analyses = past_analyses(session, metrics)
    rows = []
    for threshold in sorted({*THRESHOLDS, round(current, 2)}):
        sent = auto_send_at(analyses, threshold)
        verdicts = Counter(item.verdict for item in analyses if item.auto_sent(threshold))
        rows.append(
            {
                "minimum confidence": threshold,
                "current setting": threshold == round(current, 2),
                "sent automatically": sent["auto_sent"],
                **{name: verdicts[name] for name in VERDICTS},
                "right when known": sent["auto_send_precision"],
                "coverage": sent["coverage"],
            }
        )
    eligible = sum(1 for item in analyses if item.auto_sent(0.0))
    return ThresholdHistory(rows, current, len(analyses), eligible)
