"""The AI model's stated confidence, calibrated on the desk: capped by its evidence until verdicts fit a map."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.llm_analyser import LlmAnalyser
from engine.analysers.llm_confidence import (
    MODEL_CONFIDENCE_EVENT,
    calibrate,
    describe_model_confidence,
    fit_model_calibration,
    model_verdicts,
)
from engine.core.enums import ActionState, OutcomeState
from engine.core.models import Action, TimelineEvent
from engine.core.settings import Settings
from engine.pipeline import process_pending
from tests.emulators.openai_api import CRITERIA
from tests.factories import FakeKb, kb_item, model_judged, new_ticket, said, scripted

DECISION = {
    "decision": "resolve",
    "summary": "VPN fails with error 809",
    "confidence": 0.99,
    "escalation_criteria": CRITERIA,
    "resolution_steps": [{"text": "Set the protocol to IKEv2.", "evidence": [1]}],
}


def test_until_the_desk_has_verdicts_the_model_is_never_surer_than_its_evidence() -> None:
    assert calibrate(0.99, 0.42, None) == {
        "stated": 0.99,
        "retrieval": 0.42,
        "calibrated": 0.42,
        "method": "capped",
        "verdicts": 0,
    }
    assert calibrate(0.3, 0.8, None)["calibrated"] == 0.3
    assert calibrate(0.99, 0.0, None)["calibrated"] == 0.0
    line = describe_model_confidence(calibrate(0.99, 0.42, None))
    assert "at most its evidence's retrieval confidence (0.42)" in line


def test_a_model_that_says_the_same_of_everything_is_mapped_to_how_often_it_is_right() -> None:
    """Says 0.9 of every answer; right 18 of 20 times on strong evidence, 4 of 20 on weak."""
    verdicts = [(0.9, 0.8, int(n < 18)) for n in range(20)] + [(0.9, 0.3, int(n < 4)) for n in range(20)]
    fitted = fit_model_calibration(verdicts)
    assert fitted is not None and (fitted.samples, fitted.positives) == (40, 22)
    assert fitted.probability(0.9, 0.8) == pytest.approx(0.9, abs=0.08)
    assert fitted.probability(0.9, 0.3) == pytest.approx(0.2, abs=0.08)
    record = calibrate(0.9, 0.3, fitted)
    assert (record["method"], record["verdicts"]) == ("fitted", 40)
    assert record["calibrated"] == round(fitted.probability(0.9, 0.3), 3)
    assert calibrate(0.9, 0.0, fitted)["calibrated"] == 0.0


def test_a_model_whose_confident_answers_are_wrong_earns_no_trust_from_its_confidence() -> None:
    """Sure (0.95) and wrong, unsure (0.4) and right, on the same evidence: its stated number gets no weight."""
    verdicts = [(0.95, 0.6, 0)] * 20 + [(0.4, 0.6, 1)] * 20
    fitted = fit_model_calibration(verdicts)
    assert fitted is not None and fitted.stated_weight == 0.0
    assert fitted.probability(0.95, 0.6) == pytest.approx(fitted.probability(0.4, 0.6))


@pytest.mark.parametrize(
    "verdicts",
    [[(0.9, 0.8, n % 2) for n in range(29)], [(0.9, 0.8, 1)] * 40, [(0.9, 0.8, int(n < 33)) for n in range(40)]],
    ids=["too few", "only right ones", "too few wrong ones"],
)
def test_too_few_verdicts_of_either_kind_fit_nothing(verdicts: list[tuple[float, float, int]]) -> None:
    assert fit_model_calibration(verdicts) is None


def test_verdicts_are_what_operators_and_customers_did_with_the_models_drafts(
    factory: sessionmaker[Session],
) -> None:
    with factory.begin() as session:
        model_judged(session, stated=0.9, retrieval=0.8, decided_by="lead")
        model_judged(session, stated=0.9, retrieval=0.7, decided_by="lead", edited=True)
        model_judged(session, stated=0.8, retrieval=0.6, decided_by="lead", state=ActionState.REJECTED)
        model_judged(session, stated=0.95, retrieval=0.9, outcome=OutcomeState.CONFIRMED)
        model_judged(session, stated=0.95, retrieval=0.85, outcome=OutcomeState.DURABLE)
        model_judged(session, stated=0.97, retrieval=0.8, outcome=OutcomeState.REOPENED)
        model_judged(session, stated=0.9, retrieval=0.9, outcome=OutcomeState.PENDING)
        model_judged(session, stated=0.9, retrieval=0.5, decided_by="lead", state=ActionState.AWAITING_APPROVAL)
        model_judged(session, stated=0.9, retrieval=0.0, decided_by="lead")
    with factory() as session:
        assert sorted(model_verdicts(session)) == [
            (0.8, 0.6, 0),
            (0.9, 0.7, 0),
            (0.9, 0.8, 1),
            (0.95, 0.85, 1),
            (0.95, 0.9, 1),
            (0.97, 0.8, 0),
        ]


def test_the_pipeline_records_what_the_model_said_and_the_next_fit_learns_from_a_rejection(
    with_kb: sessionmaker[Session], llm_settings: Settings
) -> None:
    kb = FakeKb([kb_item(1, "Set the protocol to IKEv2 in the VPN client settings.", "vpn.md")])
    model = scripted(said(json.dumps({"queries": ["vpn 809"]})), said(json.dumps(DECISION)))
    ticket_id = new_ticket(with_kb, llm_settings, subject="VPN error 809", body="The VPN says error 809.")
    process_pending(with_kb, llm_settings, LlmAnalyser(with_kb, llm_settings, model, search_kb=kb), worker="w")
    with with_kb.begin() as session:
        event = session.scalars(
            select(TimelineEvent).where(
                TimelineEvent.ticket_id == ticket_id, TimelineEvent.type == MODEL_CONFIDENCE_EVENT
            )
        ).one()
        assert (event.data["stated"], event.data["method"]) == (0.99, "capped")
        assert event.data["calibrated"] == min(0.99, event.data["retrieval"]) < 0.99
        assert event.title.startswith("The AI model said 0.99; the desk uses")
        action = session.scalars(select(Action).where(Action.analysis_id == event.data["analysis_id"])).one()
        action.state, action.decided_by = ActionState.REJECTED.value, "lead"
    with with_kb() as session:
        assert model_verdicts(session) == [(0.99, event.data["retrieval"], 0)]
