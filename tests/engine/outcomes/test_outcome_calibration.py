"""Customers' verdicts on automatic answers as a per-category logit offset: shrinkage toward the prediction,
a minimum of judged answers, lowering free and raising capped, cached per batch."""

from __future__ import annotations

import math

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutcomeState
from engine.core.settings import Settings
from engine.outcomes.outcome_calibration import (
    MAX_RAISE,
    MIN_LABELS,
    PRIOR_CASES,
    AdjustmentCache,
    adjusted,
    category_offset,
    confidence_adjustments,
    logit,
    outcome_calibration_table,
)
from tests.factories import resolution_outcome


def test_the_solved_rate_is_shrunk_toward_the_predicted_confidence() -> None:
    few, many = category_offset(0, 5, 0.9), category_offset(0, 50, 0.9)
    assert few == pytest.approx(logit(0.9 * PRIOR_CASES / (5 + PRIOR_CASES)) - logit(0.9))
    assert many < few < 0, "more re-opened answers lower the confidence further"
    assert category_offset(9, 10, 0.9) == pytest.approx(0.0), "answers that did as well as predicted change nothing"


def test_a_category_needs_enough_judged_answers() -> None:
    assert category_offset(0, MIN_LABELS - 1, 0.9) == 0.0
    assert category_offset(0, MIN_LABELS, 0.9) < 0.0


def test_raising_is_capped_and_lowering_is_not() -> None:
    assert category_offset(100, 100, 0.5) == MAX_RAISE
    assert category_offset(0, 100, 0.5) < -MAX_RAISE * 4


def test_the_offset_moves_a_probability_on_the_logit_scale_and_says_what_it_did() -> None:
    after, applied = adjusted(0.8, "network", {"network": -1.0})
    assert after == pytest.approx(1 / (1 + math.exp(-(logit(0.8) - 1.0))), abs=1e-3)
    assert applied == {"category": "network", "logit_offset": -1.0, "fitted": 0.8, "adjusted": after}
    assert adjusted(0.8, "billing", {"network": -1.0}) == (0.8, None)
    assert adjusted(0.0, "network", {"network": 0.5}) == (0.0, None), "no evidence stays no confidence"
    assert adjusted(0.8, None, {"uncategorised": -1.0})[0] < 0.8


def test_adjustments_come_from_judged_automatic_answers(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        for _ in range(6):
            resolution_outcome(session, category="network", state=OutcomeState.REOPENED, confidence=0.9)
        for state in (OutcomeState.CONFIRMED, OutcomeState.DURABLE, OutcomeState.REOPENED):
            resolution_outcome(session, category="billing", state=state)
        for _ in range(6):
            resolution_outcome(session, category="access", state=OutcomeState.REOPENED, automated=False)
            resolution_outcome(session, category="access", state=OutcomeState.PENDING)
    with session_factory() as session:
        adjustments = confidence_adjustments(session)
        table = {row["category"]: row for row in outcome_calibration_table(session, settings)}
    assert list(adjustments) == ["network"], "billing has too few, access no judged automatic answers"
    assert adjustments["network"] == pytest.approx(category_offset(0, 6, 0.9))
    assert table["network"]["judged"] == 6 and table["network"]["re-opened"] == 6
    assert table["network"]["fitted 0.75 (auto-send minimum) becomes"] < 0.5
    assert (table["billing"]["confirmed or durable"], table["billing"]["adjustment (logit)"]) == (2, 0.0)


def test_the_adjustments_are_read_once_per_batch(session_factory: sessionmaker[Session]) -> None:
    now = [0.0]
    cache = AdjustmentCache(seconds=60, clock=lambda: now[0])
    with session_factory() as session:
        assert cache.get(session) == {}
    with session_factory.begin() as session:
        for _ in range(MIN_LABELS):
            resolution_outcome(session, category="network", state=OutcomeState.REOPENED)
    with session_factory() as session:
        assert cache.get(session) == {}, "still the batch's adjustments"
        now[0] = 61.0
        assert set(cache.get(session)) == {"network"}
