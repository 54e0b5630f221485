"""The knowledge base's confidence that its top passage answers a question: a logistic model it fits on itself.

Weights fitted once on one benchmark did not transfer: on real shoppers' questions no answerable ticket scored
high, and unanswerable ones did. So the model is fitted per desk (kb/self_test.py): pseudo-queries from the
knowledge base (was the top hit their source?), out-of-scope negatives (off-topic questions, and pseudo-queries
with their own document held out), and the operators' verdicts on drafts that the engine passes in.
Besides retrieval scores it reads an answerability check: does the passage hold the question's key terms?

Generated questions do not read like customers, so the self-test's scale is not the customers' scale: on real
paraphrases its probabilities stayed under 0.63 while people approved the drafts (README, "Why an article does not
become an automatic answer"). Once operators have judged enough drafts (MIN_VERDICTS, both ways), a second stage
maps the fitted logit onto what they decided (`recalibrated`): the self-test ranks, the verdicts set the scale.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from kb.keyword import stem, tokenize

Verdict = tuple[str, list[dict[str, Any]], int]
"""An operator's verdict on a draft: (question, the evidence it cited, 1 approved as drafted / 0 edited or rejected)."""

log = logging.getLogger(__name__)
FEATURES = ("top", "margin", "agree", "similarity", "keyword_strength", "coverage", "key_coverage")
MIN_COVERAGE = 0.4
MIN_KEY_COVERAGE = 0.5
MIN_SAMPLES = 30
MIN_PER_CLASS = 8
L2 = 0.5
MIN_VERDICTS = 20
MIN_VERDICTS_PER_CLASS = 5
"""Operators' verdicts (and of each kind: approved as drafted, edited or rejected) before they rescale the model."""
VERDICT_PRIOR = 2.0
"""L2 pull of the second stage toward the self-test's own scale (slope 1, offset 0): a few verdicts move it a
little, a hundred decide it."""
UNCALIBRATED_CEILING = 0.7
"""A desk that has not calibrated on its own knowledge base cannot back a high confidence: until the index job
has fitted the model, no answer clears the default auto-send minimum (0.75). Measured: the defaults sent 8 of
200 out-of-scope e-manual questions at 0.85 from the demo articles (bench/guards.py)."""
FILLER = frozenset(
    tokenize(
        "hello hi dear thanks thank regards please help problem issue question need want know would like get "
        "tell could someone anyone way possible also still again since today yesterday best kind"
    )
)
PRODUCT_LIKE = re.compile(r"\b(?:\w*\d\w*|[A-Za-z]+[A-Z][A-Za-z]*|[A-Z]{2,}\w*)\b")
NAME_LIKE = re.compile(r"(?<![.!?:]\s)(?<!^)\b[A-Z][a-z]+\w*", re.MULTILINE)
WHEN_AND_HOW_MANY = re.compile(
    r"(?:mon|tues|wednes|thurs|fri|satur|sun)day|january|february|march|april|may|june|july|august|september"
    r"|october|november|december|\d{1,2}|(?:19|20)\d\d|\d+(?:st|nd|rd|th)|\d{1,2}(?:am|pm)"
)
"""Capitalised or numeric words that say when or how many, not what: weekdays, months, small numbers, years,
ordinals, times of day ("on Monday", "30 people", "since 2021", "the 2nd floor", "at 9am"). A passage need not
name them to answer; error codes, model numbers and versions with letters stay key terms."""


@dataclass(frozen=True)
class Answerability:
    """How much of the question the passage covers: all its content terms, and its key terms (numbers,
    model codes, product names). A passage about another product, or sharing none of the words, is no answer."""

    coverage: float
    key_coverage: float

    @property
    def passes(self) -> bool:
        return self.coverage >= MIN_COVERAGE and self.key_coverage >= MIN_KEY_COVERAGE


def question_terms(question: str) -> tuple[set[str], set[str]]:
    """(content terms, key terms) of a question, stemmed as BM25 stems them; greetings and filler left out.

    Key terms are what names the thing asked about: numbers, model codes, product and brand names (capitalised
    words not starting a sentence or a line, CamelCase, acronyms), but not the words that say when or how many
    (WHEN_AND_HOW_MANY)."""
    terms = set(tokenize(question)) - FILLER
    names = PRODUCT_LIKE.findall(question) + NAME_LIKE.findall(question)
    key = {stem(name.lower()) for name in names if not WHEN_AND_HOW_MANY.fullmatch(name.lower())}
    return terms, key & terms


def answerability(question: str, passage: str) -> Answerability:
    terms, key = question_terms(question)
    found = set(tokenize(passage))
    coverage = len(terms & found) / len(terms) if terms else 0.0
    key_coverage = len(key & found) / len(key) if key else 1.0
    return Answerability(round(coverage, 4), round(key_coverage, 4))


def evidence_features(question: str, evidence: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The model's inputs from the cited evidence (fused scores as a share of the best possible, see kb.search)."""
    if not evidence:
        return dict.fromkeys(FEATURES, 0.0)
    top = evidence[0]
    best = float(top.get("fused_score") or 0.0)
    second = float(evidence[1].get("fused_score") or 0.0) if len(evidence) > 1 else 0.0
    terms, _ = question_terms(question)
    keyword = float(top.get("bm25_score") or 0.0) / max(1, len(terms))
    check = answerability(question, f"{top.get('title', '')}\n{top.get('text', '')}")
    return {
        "top": min(1.0, best),
        "margin": (best - second) / best if best > 0 else 0.0,
        "agree": float(top.get("vector_rank") == 1 and top.get("bm25_rank") == 1),
        "similarity": max(0.0, min(1.0, float(top.get("vector_score") or 0.0))),
        "keyword_strength": keyword / (1.0 + keyword),
        "coverage": check.coverage,
        "key_coverage": check.key_coverage,
    }


@dataclass(frozen=True)
class ConfidenceModel:
    """Logistic weights over FEATURES; `samples` says how many labelled cases they were fitted on (0: defaults)."""

    intercept: float
    coef: dict[str, float]
    samples: int = 0
    positives: int = 0
    feedback: int = 0
    verdict_slope: float = 1.0
    verdict_offset: float = 0.0
    verdicts: int = 0
    """The second stage (`recalibrated`): logit → slope × logit + offset, fitted on this many operators' verdicts."""
    judged: int = 0
    """Drafts people had judged when this model last read their verdicts: a count of them all (the verdicts read are
    capped), so the rescale knows when enough new ones came without reading any (kb/self_test.py)."""

    def logit(self, features: dict[str, float]) -> float:
        """The first stage's log-odds: the self-test's (and verdicts') logistic fit."""
        return self.intercept + sum(self.coef.get(name, 0.0) * features.get(name, 0.0) for name in FEATURES)

    def probability(self, features: dict[str, float]) -> float:
        """The fitted probability, on the operators' scale once they judged enough drafts; the defaults (nothing
        fitted yet) stay below UNCALIBRATED_CEILING."""
        logit = self.logit(features)
        if self.verdicts:
            logit = self.verdict_slope * logit + self.verdict_offset
        probability = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
        return probability if self.samples else min(probability, UNCALIBRATED_CEILING)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> ConfidenceModel:
        if not record:
            return DEFAULT_MODEL
        try:
            return cls(**record)
        except TypeError as error:
            log.error("the stored confidence model is unreadable, using the default: %s", error)
            return DEFAULT_MODEL


DEFAULT_MODEL = ConfidenceModel(
    intercept=-7.0,
    coef={
        "top": 2.0,
        "margin": 1.5,
        "agree": 1.0,
        "similarity": 4.0,
        "keyword_strength": 1.0,
        "coverage": 3.0,
        "key_coverage": 1.0,
    },
)
"""Used until the knowledge base has calibrated itself: cautious, needs similarity and coverage together."""


def fit_confidence(samples: Sequence[tuple[dict[str, float], int]], feedback: int = 0) -> ConfidenceModel | None:
    """Logistic fit of labelled cases (features, 1 = the top passage was right); None when too few to trust.

    Every weight is kept at or above zero: stronger evidence must never lower the confidence, whatever
    quirk a small knowledge base's self-test shows. A light L2 penalty keeps weights finite when cases separate.
    """
    positives = sum(label for _, label in samples)
    if len(samples) < MIN_SAMPLES or min(positives, len(samples) - positives) < MIN_PER_CLASS:
        return None
    matrix = np.array([[features[name] for name in FEATURES] for features, _ in samples], dtype=float)
    intercept, weights = fit_monotone_logistic(matrix, np.array([label for _, label in samples], dtype=float))
    return ConfidenceModel(
        intercept=round(intercept, 4),
        coef={name: round(float(value), 4) for name, value in zip(FEATURES, weights, strict=True)},
        samples=len(samples),
        positives=positives,
        feedback=feedback,
    )


def recalibrated(model: ConfidenceModel, verdicts: Sequence[tuple[dict[str, float], int]]) -> ConfidenceModel:
    """`model` with its second stage fitted on operators' verdicts (features of the draft's evidence, 1 approved as
    drafted): a logistic fit of the verdict on the first stage's logit, slope kept positive (a stronger passage never
    loses confidence) and pulled toward the identity by VERDICT_PRIOR. Unchanged below MIN_VERDICTS or
    MIN_VERDICTS_PER_CLASS of either kind: a scale set by a handful of drafts would be noise."""
    approved = sum(label for _, label in verdicts)
    if len(verdicts) < MIN_VERDICTS or min(approved, len(verdicts) - approved) < MIN_VERDICTS_PER_CLASS:
        return model
    from scipy.optimize import minimize

    logits = np.array([model.logit(features) for features, _ in verdicts], dtype=float)
    labels = np.array([label for _, label in verdicts], dtype=float)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        slope, offset = params
        values = slope * logits + offset
        residual = 1.0 / (1.0 + np.exp(-values)) - labels
        penalty = VERDICT_PRIOR * ((slope - 1.0) ** 2 + offset**2)
        value = np.logaddexp(0.0, values).sum() - labels @ values + penalty
        gradient = [residual @ logits + 2 * VERDICT_PRIOR * (slope - 1.0), residual.sum() + 2 * VERDICT_PRIOR * offset]
        return float(value), np.array(gradient)

    slope, offset = minimize(
        loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B", bounds=[(0.0, None), (None, None)]
    ).x
    return replace(
        model, verdict_slope=round(float(slope), 4), verdict_offset=round(float(offset), 4), verdicts=len(verdicts)
    )


def fit_monotone_logistic(matrix: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """(intercept, weights) of a logistic regression whose weights are all at or above zero, with an L2 penalty on
    the weights: a larger input never lowers the probability, and separable cases keep finite weights."""
    from scipy.optimize import minimize

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        logits = params[0] + matrix @ params[1:]
        predicted = 1.0 / (1.0 + np.exp(-logits))
        value = np.logaddexp(0.0, logits).sum() - labels @ logits + L2 * (params[1:] @ params[1:])
        residual = predicted - labels
        return float(value), np.concatenate([[residual.sum()], matrix.T @ residual + 2 * L2 * params[1:]])

    bounds = [(None, None)] + [(0.0, None)] * matrix.shape[1]
    fitted = minimize(loss, np.zeros(matrix.shape[1] + 1), jac=True, method="L-BFGS-B", bounds=bounds).x
    return float(fitted[0]), fitted[1:]
