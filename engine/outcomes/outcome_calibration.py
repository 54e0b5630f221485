"""What customers said about automatic answers, turned into a per-category correction of the fitted confidence.

The knowledge base's self-test (kb/self_test.py, kb/confidence.py) says how often the top passage is the right one;
customers
say whether the answer solved their problem. Per category, the observed solved rate (confirmed or durable against
re-opened, engine.outcomes.outcomes.outcome_labels) is shrunk toward the mean predicted confidence with PRIOR_CASES
pseudo-cases, and the difference of the two on the logit scale is added to every later confidence in that
category. Lowering is free; raising is capped at MAX_RAISE, because a customer who gave up and went silent looks
like a satisfied one, so silence must not buy much extra trust.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session

from engine.core.desk_policy import current_policy
from engine.core.settings import Settings
from engine.outcomes.learned import TrackRecord
from engine.outcomes.outcomes import OutcomeLabel, outcome_labels

PRIOR_CASES = 20.0
"""Pseudo-cases at the predicted confidence: 5 re-opened answers move a category a little, 50 move it a lot."""
MIN_LABELS = 5
"""Fewer judged automatic answers in a category than this leave its confidence as fitted."""
MAX_RAISE = 0.5
"""The most a category's logit may be raised (0.75 → about 0.83): lowering is not capped."""
CACHE_SECONDS = 60.0
"""How long an analyser reuses the adjustments: one query per batch of tickets, not one per ticket."""
UNCATEGORISED = "uncategorised"
EPSILON = 1e-4
T = TypeVar("T")


def logit(probability: float) -> float:
    clipped = min(1.0 - EPSILON, max(EPSILON, probability))
    return math.log(clipped / (1.0 - clipped))


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, value))))


def category_offset(solved: float, judged: float, mean_confidence: float) -> float:
    """logit(shrunk solved rate) − logit(mean predicted confidence), capped upward; 0 below MIN_LABELS."""
    if judged < MIN_LABELS:
        return 0.0
    shrunk = (solved + PRIOR_CASES * mean_confidence) / (judged + PRIOR_CASES)
    return min(MAX_RAISE, logit(shrunk) - logit(mean_confidence))


@dataclass(frozen=True)
class CategoryOutcomes:
    """One category's judged automatic answers and the logit offset they earn."""

    category: str
    judged: int
    solved: int
    mean_confidence: float

    @property
    def reopened(self) -> int:
        return self.judged - self.solved

    @property
    def solved_rate(self) -> float:
        return self.solved / self.judged if self.judged else 0.0

    @property
    def offset(self) -> float:
        return category_offset(self.solved, self.judged, self.mean_confidence)


def category_outcomes(labels: list[OutcomeLabel]) -> list[CategoryOutcomes]:
    """The labels grouped per category (no category counts as "uncategorised"), in category order."""
    grouped: dict[str, list[OutcomeLabel]] = defaultdict(list)
    for label in labels:
        grouped[label.category or UNCATEGORISED].append(label)
    return [
        CategoryOutcomes(
            category=category,
            judged=len(found),
            solved=sum(label.solved for label in found),
            mean_confidence=sum(label.confidence for label in found) / len(found),
        )
        for category, found in sorted(grouped.items())
    ]


def confidence_adjustments(session: Session) -> dict[str, float]:
    """The logit offset of each category that has one (at least MIN_LABELS judged answers, offset not zero)."""
    return {found.category: found.offset for found in category_outcomes(outcome_labels(session)) if found.offset}


def adjusted(
    probability: float, category: str | None, adjustments: Mapping[str, float] | None
) -> tuple[float, dict[str, Any] | None]:
    """The probability with its category's offset applied, and what was applied (None: nothing), for the record.

    A zero confidence (no evidence) stays zero: customers' verdicts correct a confidence, they do not create one.
    """
    key = category or UNCATEGORISED
    offset = (adjustments or {}).get(key, 0.0)
    if not offset or probability <= 0.0:
        return probability, None
    after = round(sigmoid(logit(probability) + offset), 3)
    return after, {"category": key, "logit_offset": round(offset, 3), "fitted": probability, "adjusted": after}


def record_adjusted(probability: float, record: TrackRecord | None) -> float:
    """A knowledge-base section's confidence corrected by its own track record, as a category's is by its outcomes
    (`category_offset`: shrunk toward the fitted confidence, raised at most MAX_RAISE): a section people keep editing
    or customers re-open loses confidence; a well-proven one gains a little."""
    if record is None or probability <= 0.0:
        return probability
    offset = category_offset(record.successes, record.successes + record.failures, probability)
    return round(sigmoid(logit(probability) + offset), 3) if offset else probability


def describe_adjustment(applied: Mapping[str, Any]) -> str:
    """One line for the ticket's timeline: what customers' verdicts did to this confidence."""
    direction = "lowered" if applied["logit_offset"] < 0 else "raised"
    return (
        f"Confidence {direction} from {applied['fitted']:.2f} to {applied['adjusted']:.2f} by customers' verdicts on "
        f"automatic answers in {applied['category']} (logit {applied['logit_offset']:+.2f})"
    )


class Refreshing(Generic[T]):
    """A value read from the database at most every `seconds`; shared by an analyser's threads."""

    def __init__(
        self, load: Callable[[Session], T], seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.load = load
        self.seconds = seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._value: tuple[float, T] | None = None

    def get(self, session: Session) -> T:
        with self._lock:
            if self._value is not None and self.clock() - self._value[0] < self.seconds:
                return self._value[1]
        found = self.load(session)
        with self._lock:
            self._value = (self.clock(), found)
        return found


class AdjustmentCache(Refreshing[dict[str, float]]):
    """The adjustments, recomputed at most every CACHE_SECONDS."""

    def __init__(self, seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(confidence_adjustments, seconds, clock)


def outcome_calibration_table(session: Session, settings: Settings) -> list[dict[str, Any]]:
    """Per category: automatic answers judged, confirmed/durable, re-opened, mean confidence, the observed
    solved rate, the logit offset now applied to new confidences, and what it makes of the auto-send minimum."""
    minimum = current_policy(session, settings).auto_send_min_confidence
    return [
        {
            "category": found.category,
            "judged": found.judged,
            "confirmed or durable": found.solved,
            "re-opened": found.reopened,
            "mean confidence": round(found.mean_confidence, 3),
            "solved rate": round(found.solved_rate, 3),
            "adjustment (logit)": round(found.offset, 3),
            f"fitted {minimum:.2f} (auto-send minimum) becomes": round(sigmoid(logit(minimum) + found.offset), 3),
        }
        for found in category_outcomes(outcome_labels(session))
    ]
