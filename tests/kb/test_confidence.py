"""The knowledge base's confidence as a probability: the answerability check, monotone evidence, out-of-scope
questions."""

from __future__ import annotations

from typing import Any

import pytest

from engine.analysers.retrieval_analyser import retrieval_confidence
from kb.confidence import (
    DEFAULT_MODEL,
    FEATURES,
    MIN_VERDICTS,
    UNCALIBRATED_CEILING,
    ConfidenceModel,
    answerability,
    evidence_features,
    fit_confidence,
    question_terms,
    recalibrated,
)
from kb.keyword import stem
from kb.self_test import off_topic_questions, run_self_test
from tests.factories import TopicEmbedder, topic_corpus

QUESTION = "How do I connect my Galaxy S10 to the TV with an HDMI cable?"
ANSWER = "Connecting a phone: plug an HDMI cable into the Galaxy S10 adapter and the TV's HDMI 2 port, then connect."


def evidence(strength: float, passage: str = ANSWER) -> list[dict[str, Any]]:
    """A top hit and a runner-up; `strength` 0..1 moves every retrieval signal of the top hit up together."""
    return [
        {
            "title": "",
            "text": passage,
            "fused_score": 0.3 + 0.7 * strength,
            "vector_rank": 1 if strength > 0.5 else 3,
            "vector_score": 0.2 + 0.6 * strength,
            "bm25_rank": 1 if strength > 0.5 else 2,
            "bm25_score": 2.0 + 20.0 * strength,
        },
        {"title": "", "text": "Other", "fused_score": 0.3, "vector_score": 0.2, "bm25_score": 2.0},
    ]


def test_answerability_rejects_a_passage_that_shares_no_key_terms() -> None:
    unrelated = "Adjusting the picture: open Settings, choose Picture Mode and set Brightness to your liking."
    assert not answerability(QUESTION, unrelated).passes
    assert answerability(QUESTION, unrelated).key_coverage == 0.0
    assert answerability(QUESTION, ANSWER).passes


def test_answerability_needs_the_product_the_question_names() -> None:
    """The right words about another product are no answer: Galaxy S10 is a key term the passage lacks."""
    tv_only = "Connecting a device: plug an HDMI cable into port 2 of the television, then select the source."
    check = answerability(QUESTION, tv_only)
    assert check.coverage >= 0.5 and check.key_coverage < 0.5 and not check.passes


def test_when_and_how_many_are_no_key_terms_but_codes_and_versions_are() -> None:
    """Weekdays, months, small numbers, years, ordinals and times say when or how many, not what is asked about;
    a sentence's first word on its own line is no name either."""
    question = (
        "Only one monitor works on the dock\nMoved on Monday to the 2nd floor at 9am with 30 people since 2021. "
        "The Dell U2723QE shows error NWC-203 on Android 14 in March."
    )
    _, key = question_terms(question)
    assert key == {stem(word) for word in ("dell", "u2723qe", "nwc", "203", "android")}


@pytest.mark.parametrize("model", [DEFAULT_MODEL, "fitted"])
def test_confidence_is_monotone_in_the_evidence(model: ConfidenceModel | str, fitted_model: ConfidenceModel) -> None:
    chosen = fitted_model if model == "fitted" else model
    assert isinstance(chosen, ConfidenceModel)
    scores = [retrieval_confidence(evidence(step / 10), QUESTION, chosen) for step in range(11)]
    assert scores == sorted(scores) and scores[-1] > scores[0]
    assert retrieval_confidence([], QUESTION, chosen) == 0.0


def test_out_of_scope_questions_get_low_confidence(fitted_model: ConfidenceModel) -> None:
    """Off-topic questions against a knowledge base that does not answer them, through the fitted model."""
    embedder = TopicEmbedder()
    test = run_self_test(topic_corpus(embedder, body_word="b"), embedder)
    off_topic = test.samples[-len(off_topic_questions()) :]
    assert all(label == 0 for _, label in off_topic)
    assert max(fitted_model.probability(features) for features, _ in off_topic) < 0.2
    answered = [features for features, label in test.samples if label]
    assert sum(fitted_model.probability(features) for features in answered) / len(answered) > 0.6


def test_off_topic_passage_is_unlikely_even_with_default_weights() -> None:
    weak = evidence(0.0, "Adjusting the picture: open Settings and choose Picture Mode.")
    assert retrieval_confidence(weak, QUESTION) < 0.05
    assert evidence_features(QUESTION, weak)["key_coverage"] == 0.0


def test_too_few_or_one_sided_cases_fit_nothing() -> None:
    features = dict.fromkeys(FEATURES, 0.5)
    assert fit_confidence([(features, 1)] * 100) is None
    assert fit_confidence([(features, 1), (features, 0)] * 5) is None


def test_a_stored_model_round_trips_and_a_damaged_one_falls_back(fitted_model: ConfidenceModel) -> None:
    assert ConfidenceModel.from_record(fitted_model.to_record()) == fitted_model
    assert ConfidenceModel.from_record({"weights": [1, 2]}) == DEFAULT_MODEL
    assert ConfidenceModel.from_record(None) == DEFAULT_MODEL


@pytest.fixture(scope="module")
def fitted_model() -> ConfidenceModel:
    embedder = TopicEmbedder()
    model = fit_confidence(run_self_test(topic_corpus(embedder, body_word="b"), embedder).samples)
    assert model is not None
    return model


def test_an_uncalibrated_desk_never_clears_the_default_auto_send_minimum() -> None:
    strongest = dict.fromkeys(FEATURES, 1.0)
    assert DEFAULT_MODEL.probability(strongest) <= UNCALIBRATED_CEILING < 0.75
    fitted = ConfidenceModel(intercept=-1.0, coef=dict.fromkeys(FEATURES, 1.0), samples=100, positives=50)
    assert fitted.probability(strongest) > 0.99


def verdicts_at(rates: dict[float, float], per_level: int = 10) -> list[tuple[dict[str, float], int]]:
    """Operators' verdicts on drafts whose evidence the model scores at each strength: `rate` of them approved."""
    samples = []
    for strength, rate in rates.items():
        features = evidence_features(QUESTION, evidence(strength))
        approved = round(rate * per_level)
        samples += [(features, 1)] * approved + [(features, 0)] * (per_level - approved)
    return samples


def test_operators_verdicts_rescale_a_self_test_that_underrates_real_questions(fitted_model: ConfidenceModel) -> None:
    """The self-test scores customers' questions low while people approve nearly every such draft: the second stage
    lifts the confidence toward what they decided, and keeps the order of the evidence."""
    levels = {0.35: 0.5, 0.5: 0.9, 0.65: 1.0}
    before = [fitted_model.probability(evidence_features(QUESTION, evidence(s))) for s in levels]
    rescaled = recalibrated(fitted_model, verdicts_at(levels))
    after = [rescaled.probability(evidence_features(QUESTION, evidence(s))) for s in levels]
    assert rescaled.verdicts == 30 and rescaled.verdict_slope >= 0
    assert after == sorted(after), "a stronger passage never loses confidence"
    assert after[-1] > before[-1] and after[-1] >= 0.75
    assert ConfidenceModel.from_record(rescaled.to_record()) == rescaled


def test_verdicts_that_reject_lower_the_confidence(fitted_model: ConfidenceModel) -> None:
    levels = {0.6: 0.3, 0.8: 0.4, 1.0: 0.5}
    strongest = evidence_features(QUESTION, evidence(1.0))
    rescaled = recalibrated(fitted_model, verdicts_at(levels))
    assert rescaled.probability(strongest) < fitted_model.probability(strongest)
    assert rescaled.probability(strongest) < 0.75


def test_a_handful_of_verdicts_leaves_the_self_test_scale(fitted_model: ConfidenceModel) -> None:
    few = verdicts_at({0.6: 1.0}, per_level=MIN_VERDICTS - 1)
    assert recalibrated(fitted_model, few) == fitted_model
    one_sided = verdicts_at({0.6: 1.0, 0.7: 1.0, 0.8: 1.0})
    assert recalibrated(fitted_model, one_sided) == fitted_model, "nothing rejected: no scale to learn"
