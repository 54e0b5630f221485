"""How much of the AI model's stated confidence this desk believes: calibrated per desk, as retrieval's is.

A model's own number is not a probability: small local models say 0.9 of nearly anything, and large ones are
over-confident where their evidence does not answer. So the stated confidence is read beside the desk's retrieval
confidence in the evidence the model leaned on (kb/confidence.py, fitted on this knowledge base's self-test and
its operators' verdicts):
- until the desk holds MIN_SAMPLES verdicts on the model's own resolutions (at least MIN_PER_CLASS of each kind),
  the calibrated confidence is at most that retrieval confidence: the model never makes an answer surer than its
  evidence;
- from then on it is a logistic map of (stated, retrieval), fitted on those verdicts: an operator approving a draft
  as drafted (1) or editing or rejecting it (0), a customer confirming an automatic answer or leaving it unreopened
  (1) or re-opening it (0). Both weights stay at or above zero: neither a surer model nor stronger evidence may
  lower the confidence.
Each analysis records what the model said and what the desk made of it (the MODEL_CONFIDENCE_EVENT on the ticket's
timeline): the next fit learns from those records and what became of their drafts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.analysers.confidence import approved_as_drafted
from engine.core.enums import ActionKind, ActionState, OutcomeState
from engine.core.models import Action, ResolutionOutcome, TimelineEvent
from engine.outcomes.outcome_calibration import logit, sigmoid
from kb.confidence import MIN_PER_CLASS, MIN_SAMPLES, fit_monotone_logistic

MODEL_CONFIDENCE_EVENT = "model_confidence"
MAX_VERDICTS = 2000
"""The most recent analyses a fit reads: the model or its prompt may change, old verdicts judge an older one."""

ModelVerdict = tuple[float, float, int]
"""(stated confidence, retrieval confidence of the same evidence, 1 right / 0 wrong) for one of the model's drafts."""


@dataclass(frozen=True)
class ModelCalibration:
    """A logistic map from (stated, retrieval) confidence to the probability the model's resolution is right."""

    intercept: float
    stated_weight: float
    retrieval_weight: float
    samples: int
    positives: int

    def probability(self, stated: float, retrieval: float) -> float:
        return sigmoid(self.intercept + self.stated_weight * logit(stated) + self.retrieval_weight * logit(retrieval))


def calibrate(stated: float, retrieval: float, calibration: ModelCalibration | None) -> dict[str, Any]:
    """What the desk makes of the model's stated confidence, as recorded on the ticket: `stated`, `retrieval`,
    `calibrated`, `method` (capped: at most the retrieval confidence; fitted: the desk's map) and `verdicts`
    (how many the map was fitted on). Without evidence (retrieval 0) the confidence is 0 whatever the model says."""
    if retrieval <= 0.0:
        value, method = 0.0, "no evidence"
    elif calibration is None:
        value, method = min(stated, retrieval), "capped"
    else:
        value, method = calibration.probability(stated, retrieval), "fitted"
    return {
        "stated": round(stated, 3),
        "retrieval": round(retrieval, 3),
        "calibrated": round(value, 3),
        "method": method,
        "verdicts": calibration.samples if calibration and method == "fitted" else 0,
    }


def describe_model_confidence(record: dict[str, Any]) -> str:
    """One line for the ticket's timeline."""
    said = f"The AI model said {record['stated']:.2f}; the desk uses {record['calibrated']:.2f}"
    if record["method"] == "no evidence":
        return f"{said}: no evidence backs it"
    if record["method"] == "capped":
        return (
            f"{said}: at most its evidence's retrieval confidence ({record['retrieval']:.2f}) until operators and "
            f"customers have judged enough of its answers"
        )
    return (
        f"{said}: fitted on {record['verdicts']} verdicts on its answers, with its evidence's retrieval confidence "
        f"{record['retrieval']:.2f}"
    )


def fit_model_calibration(verdicts: Sequence[ModelVerdict]) -> ModelCalibration | None:
    """The desk's map fitted on its verdicts, or None while there are too few of either kind to trust one."""
    positives = sum(label for _, _, label in verdicts)
    if len(verdicts) < MIN_SAMPLES or min(positives, len(verdicts) - positives) < MIN_PER_CLASS:
        return None
    matrix = np.array([[logit(stated), logit(retrieval)] for stated, retrieval, _ in verdicts], dtype=float)
    intercept, weights = fit_monotone_logistic(matrix, np.array([label for _, _, label in verdicts], dtype=float))
    return ModelCalibration(
        intercept=round(intercept, 4),
        stated_weight=round(float(weights[0]), 4),
        retrieval_weight=round(float(weights[1]), 4),
        samples=len(verdicts),
        positives=positives,
    )


def model_verdicts(session: Session) -> list[ModelVerdict]:
    """The model's recorded confidences of its latest MAX_VERDICTS analyses, each with what became of its
    resolution: a person's decision on the draft (engine-sent drafts are judged by their customers instead) and
    the customer's verdict on an automatic answer. Analyses nobody has judged yet teach nothing."""
    said: dict[int, tuple[float, float]] = {}
    for data in session.scalars(
        select(TimelineEvent.data)
        .where(TimelineEvent.type == MODEL_CONFIDENCE_EVENT)
        .order_by(TimelineEvent.id.desc())
        .limit(MAX_VERDICTS)
    ):
        if isinstance(data, dict) and data.get("analysis_id") is not None and data.get("retrieval", 0) > 0:
            said[int(data["analysis_id"])] = (float(data["stated"]), float(data["retrieval"]))
    if not said:
        return []
    decided = session.scalars(
        select(Action).where(
            Action.analysis_id.in_(said),
            Action.kind == ActionKind.PROPOSE_RESOLUTION.value,
            Action.state.in_([ActionState.EXECUTED.value, ActionState.REJECTED.value]),
            Action.decided_by.is_not(None),
            Action.decided_by != "engine",
        )
    )
    verdicts = [
        (*said[action.analysis_id], int(approved_as_drafted(action))) for action in decided if action.analysis_id
    ]
    judged = session.execute(
        select(Action.analysis_id, ResolutionOutcome.state)
        .join(Action, Action.id == ResolutionOutcome.action_id)
        .where(
            Action.analysis_id.in_(said),
            ResolutionOutcome.automated.is_(True),
            ResolutionOutcome.state.in_([OutcomeState.CONFIRMED, OutcomeState.DURABLE, OutcomeState.REOPENED]),
        )
    )
    verdicts += [(*said[analysis_id], int(state != OutcomeState.REOPENED)) for analysis_id, state in judged]
    return verdicts


def desk_model_calibration(session: Session) -> ModelCalibration | None:
    """This desk's map, fitted on the verdicts it holds now (None: the cautious cap applies)."""
    return fit_model_calibration(model_verdicts(session))
