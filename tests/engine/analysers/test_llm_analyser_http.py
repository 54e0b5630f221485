"""langchain-openai over HTTP against the chat-completions emulator on 127.0.0.1, both URL shapes.

The OpenAI client's retry sleeps are recorded instead of slept, so Retry-After is checked without waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import SimpleNamespace

import openai._base_client
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.llm_analyser import LlmAnalyser
from engine.core.enums import OutcomeState, TicketStatus
from engine.core.models import Analysis, Escalation, Ticket
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.pipeline import process_pending
from kb.calibration import DEFAULT_FUSION, Calibration, save_calibration
from kb.confidence import UNCALIBRATED_CEILING, ConfidenceModel
from tests.emulators.base import SLOWER_THAN_ANY_TIMEOUT, Response, running
from tests.emulators.openai_api import OpenAIEmulator, Reply, desk_model, rate_limited, tool_call
from tests.emulators.serpapi import SerpApiEmulator
from tests.factories import FakeKb, kb_item, model_judged, openai_settings, said, scripted, snapshot, ticket_in

ASK = {
    "summary": "VPN error",
    "information_gaps": ["device"],
    "follow_up_questions": ["Which laptop model is it?"],
    "confidence": 0.7,
    "escalation_criteria": {"system_impact": "Low", "user_provided_info_quality": 6},
}


@pytest.fixture
def emulator() -> Iterator[OpenAIEmulator]:
    yield from running(OpenAIEmulator(responder=desk_model))  # type: ignore[misc]


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """What the OpenAI client would have slept between retries."""
    sleeps: list[float] = []
    monkeypatch.setattr(openai._base_client, "time", SimpleNamespace(sleep=sleeps.append, time=time.time))
    return sleeps


def azure_settings(settings: Settings, emulator: OpenAIEmulator, **values: object) -> Settings:
    return settings.model_copy(
        update={
            "LLM_PROVIDER": "azure",
            "AZURE_OPENAI_ENDPOINT": emulator.url,
            "AZURE_OPENAI_API_KEY": SecretStr(emulator.api_key),
            "AZURE_OPENAI_DEPLOYMENT": "support-gpt",
            "LLM_TIMEOUT_SECONDS": 5.0,
            **values,
        }
    )


def test_openai_agent_calls_tools_over_http(
    with_kb: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    settings = openai_settings(llm_settings, emulator)
    kb = FakeKb([kb_item(1, "Open the VPN client and set the protocol to IKEv2.", "vpn.md")])
    result = LlmAnalyser(with_kb, settings, search_kb=kb).analyse(snapshot())
    assert (result.decision, result.analyser, result.error) == ("resolve", "openai", None)
    first, agent = emulator.bodies
    assert first["response_format"]["json_schema"]["name"] == "SearchQueries"
    assert first["model"] == "emulated-gpt"
    assert [tool["function"]["name"] for tool in agent["tools"]] == [
        "search_knowledge_base",
        "propose_resolution",
        "request_information",
        "escalate",
    ]
    assert emulator.paths("POST") == ["/v1/chat/completions"] * 2
    assert all(r.headers["authorization"] == f"Bearer {emulator.api_key}" for r in emulator.requests)
    assert result.prompt_tokens > 0 and result.completion_tokens > 0


def test_openai_fixed_chain_uses_json_schema(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    settings = openai_settings(llm_settings, emulator, LLM_TOOL_CALLING=False)
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert result.decision == "ask"
    [body] = emulator.bodies
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "LlmDecision"
    assert "tools" not in body
    assert body["max_tokens"] == body["max_completion_tokens"] == settings.LLM_MAX_OUTPUT_TOKENS


def test_the_fixed_chain_forces_a_function_call_when_told_to_as_llama_cpp_needs(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    """llama-cpp-python's server parses no tool call the model chose freely: without the agent, the decision is
    one forced function call (constrained there by a grammar), not an agent's calls that cannot end."""
    settings = openai_settings(llm_settings, emulator, LLM_TOOL_CALLING=False, LLM_STRUCTURED_OUTPUT="function_calling")
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert (result.decision, result.error) == ("ask", None)
    [body] = emulator.bodies
    assert body["tool_choice"]["function"]["name"] == "LlmDecision"
    assert [tool["function"]["name"] for tool in body["tools"]] == ["LlmDecision"]
    assert "response_format" not in body


def test_a_reply_without_a_tool_call_ends_the_agent_and_function_calling_retries(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    settings = openai_settings(llm_settings, emulator, LLM_STRUCTURED_OUTPUT="function_calling")
    emulator.script(Reply(content="You should restart your laptop."))
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert (result.decision, result.error) == ("ask", None)
    retry = emulator.bodies[1]
    assert retry["tool_choice"]["function"]["name"] == "LlmDecision"
    assert [tool["function"]["name"] for tool in retry["tools"]] == ["LlmDecision"]


def test_azure_deployment_url_api_version_and_key(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    settings = azure_settings(llm_settings, emulator)
    emulator.script(tool_call("request_information", **ASK))
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert (result.decision, result.analyser) == ("ask", "azure")
    [request] = emulator.requests
    assert request.path == "/openai/deployments/support-gpt/chat/completions"
    assert request.arg("api-version") == "2024-10-21"
    assert request.headers["api-key"] == emulator.api_key and "authorization" not in request.headers


def test_azure_unknown_deployment_falls_back_without_retrying(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    settings = azure_settings(llm_settings, emulator, AZURE_OPENAI_DEPLOYMENT="missing")
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert result.analyser == "azure (fallback: retrieval-only)"
    assert result.error and "NotFoundError" in result.error and "404" in result.error
    assert len(emulator.requests) == 1


def test_429_with_retry_after_is_honoured_then_answered(
    factory: sessionmaker[Session],
    llm_settings: Settings,
    emulator: OpenAIEmulator,
    retry_sleeps: list[float],
) -> None:
    settings = openai_settings(llm_settings, emulator)
    emulator.fail(rate_limited("7"), path="/v1/chat/completions")
    emulator.script(tool_call("request_information", **ASK))
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert (result.decision, result.error) == ("ask", None)
    assert retry_sleeps == [7.0]
    assert len(emulator.requests) == 2


def test_500_is_retried_with_backoff(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator, retry_sleeps: list[float]
) -> None:
    settings = openai_settings(llm_settings, emulator)
    emulator.fail(Response.json({"error": {"message": "boom"}}, 500), path="/v1/chat/completions")
    emulator.script(tool_call("request_information", **ASK))
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert (result.decision, result.error) == ("ask", None)
    assert len(retry_sleeps) == 1 and 0 < retry_sleeps[0] <= 0.5


def test_persistent_500_falls_back_after_the_clients_retries(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator, retry_sleeps: list[float]
) -> None:
    settings = openai_settings(llm_settings, emulator)
    emulator.fail(Response.json({"error": {"message": "boom"}}, 500), path="/v1/chat/completions", times=10)
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert result.analyser == "openai (fallback: retrieval-only)"
    assert result.error and "Error code: 500" in result.error
    assert len(emulator.requests) == 3 and len(retry_sleeps) == 2


def test_a_slow_answer_times_out_and_falls_back(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator, retry_sleeps: list[float]
) -> None:
    settings = openai_settings(llm_settings, emulator, LLM_TIMEOUT_SECONDS=0.2, LLM_MAX_RETRIES=1)
    emulator.fail(None, path="/v1/chat/completions", times=2, delay=SLOWER_THAN_ANY_TIMEOUT)
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert result.analyser == "openai (fallback: retrieval-only)"
    assert result.error and "Timeout" in result.error
    assert len(emulator.requests) == 2


def test_a_malformed_json_body_is_retried_once_then_falls_back(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator, retry_sleeps: list[float]
) -> None:
    settings = openai_settings(llm_settings, emulator)
    broken = Response(200, b'{"id": "chatcmpl-1", "choices": [', {"Content-Type": "application/json"})
    emulator.fail(broken, path="/v1/chat/completions", times=2)
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert result.analyser == "openai (fallback: retrieval-only)"
    assert result.error and result.error.count(";") == 1
    assert len(emulator.requests) == 2


def test_malformed_arguments_in_a_tool_call_are_retried(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    settings = openai_settings(llm_settings, emulator, LLM_TOOL_CALLING=False)
    emulator.script(Reply(content='{"decision": "resolve", "summary": '))
    result = LlmAnalyser(factory, settings, search_kb=FakeKb()).analyse(snapshot())
    assert (result.decision, result.error, result.analyser) == ("ask", None, "openai")
    assert len(emulator.bodies) == 2


def test_the_pipeline_stores_tokens_cost_and_the_escalation_breakdown(
    factory: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    settings = openai_settings(llm_settings, emulator)
    with factory.begin() as session:
        ticket_id = ingest(session, ticket_in(), settings).ticket_id
    emulator.script(
        tool_call(
            "escalate",
            reason="needs identity team",
            **{k: v for k, v in ASK.items() if k in ("summary", "confidence", "escalation_criteria")},
        )
    )
    analyser = LlmAnalyser(factory, settings, search_kb=FakeKb())
    report = process_pending(factory, settings, analyser, worker="w1")
    assert report.processed == 1
    with factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.status == TicketStatus.ESCALATED
        analysis = session.scalar(select(Analysis))
        assert analysis is not None and analysis.analyser == "openai"
        assert analysis.prompt_tokens > 0 and analysis.cost_usd > 0 and analysis.latency_ms >= 0
        escalation = session.scalar(select(Escalation))
        assert escalation is not None and escalation.threshold == 70.0
        assert json.dumps(escalation.components)


def test_a_model_down_at_query_time_goes_straight_to_the_fallback(
    with_kb: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator, retry_sleeps: list[float]
) -> None:
    settings = openai_settings(llm_settings, emulator)
    emulator.fail(Response.json({"error": {"message": "boom"}}, 500), path="/v1/chat/completions", times=10)
    kb = FakeKb([kb_item(1, "Open the VPN client and set the protocol to IKEv2.", "vpn.md")])
    result = LlmAnalyser(with_kb, settings, search_kb=kb).analyse(snapshot())
    assert result.analyser == "openai (fallback: retrieval-only)"
    assert result.error and "Error code: 500" in result.error
    assert len(emulator.requests) == 3
    assert kb.queries[0][0].startswith("VPN does not connect")
    assert result.evidence and result.evidence[0]["title"] == "vpn.md"


@pytest.fixture
def serp() -> Iterator[SerpApiEmulator]:
    yield from running(SerpApiEmulator())  # type: ignore[misc]


def test_without_kb_evidence_the_web_is_searched_through_serpapi(
    factory: sessionmaker[Session], llm_settings: Settings, serp: SerpApiEmulator
) -> None:
    settings = llm_settings.model_copy(
        update={"SERPAPI_API_KEY": SecretStr(serp.api_key), "SERPAPI_BASE_URL": serp.url}
    )
    answer = {
        "decision": "resolve",
        "summary": "VPN error 809",
        "resolution_steps": [{"text": "How to fix vpn error 809", "evidence": [1]}],
        "confidence": 0.6,
    }
    model = scripted(said(json.dumps({"queries": ["vpn error 809"]})), said(json.dumps(answer)))
    result = LlmAnalyser(factory, settings, model, search_kb=FakeKb()).analyse(snapshot())
    [search] = serp.requests
    assert (search.path, search.arg("q"), search.arg("engine")) == ("/search.json", "vpn error 809", "google")
    assert result.decision == "resolve"
    assert "cites 1 source(s) outside our knowledge base (web results)" in result.guards, "web text is not ours"
    assert result.evidence[0]["source_kind"] == "web" and result.evidence[0]["cited"]
    assert "Sources: [1] vpn error 809 — result 1 (https://example.com/1)" in (result.draft_body or "")


def calibrated_desk(factory: sessionmaker[Session], probability_logit: float) -> float:
    """Store the desk's self-calibration with a confidence model that gives every evidence the same probability
    (above the uncalibrated default's ceiling when `probability_logit` > 0.85): that probability."""
    model = ConfidenceModel(intercept=probability_logit, coef={}, samples=60, positives=30)
    with factory.begin() as session:
        save_calibration(session, Calibration(DEFAULT_FUSION, confidence=model.to_record()))
    return round(model.probability({}), 3)


def test_the_models_stated_confidence_is_held_to_the_desks_retrieval_confidence_of_its_evidence(
    with_kb: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    """The emulated model says 0.8; this desk's calibrated retrieval model gives the cited passage 0.18."""
    desk = calibrated_desk(with_kb, -1.5)
    kb = FakeKb([kb_item(1, "Open the VPN client and set the protocol to IKEv2.", "vpn.md")])
    result = LlmAnalyser(with_kb, openai_settings(llm_settings, emulator), search_kb=kb).analyse(snapshot())
    assert (result.decision, result.analyser, result.confidence) == ("resolve", "openai", desk)
    assert result.model_confidence == {
        "stated": 0.8,
        "retrieval": desk,
        "calibrated": desk,
        "method": "capped",
        "verdicts": 0,
    }


def test_a_fitted_map_of_the_desks_verdicts_replaces_the_cap(
    with_kb: sessionmaker[Session], llm_settings: Settings, emulator: OpenAIEmulator
) -> None:
    """Operators approved the model's drafts when the evidence was strong, customers re-opened the rest."""
    with with_kb.begin() as session:
        for n in range(40):
            model_judged(session, stated=0.8, retrieval=0.9, decided_by="lead", edited=n >= 36)
            model_judged(session, stated=0.8, retrieval=0.2, outcome=OutcomeState.REOPENED)
    desk = calibrated_desk(with_kb, 2.2)
    kb = FakeKb([kb_item(1, "Open the VPN client and set the protocol to IKEv2.", "vpn.md")])
    analyser = LlmAnalyser(with_kb, openai_settings(llm_settings, emulator), search_kb=kb)
    result = analyser.analyse(snapshot(category="network"))
    assert result.model_confidence is not None
    assert (result.model_confidence["method"], result.model_confidence["verdicts"]) == ("fitted", 80)
    assert result.model_confidence["retrieval"] == desk
    assert result.confidence == result.model_confidence["calibrated"] == pytest.approx(0.9, abs=0.06)


@pytest.mark.parametrize("failure", ["malformed answers", "timeout", "server down"])
def test_the_fallback_answers_with_the_desks_calibrated_retrieval_model_and_customers_corrections(
    with_kb: sessionmaker[Session],
    llm_settings: Settings,
    emulator: OpenAIEmulator,
    retry_sleeps: list[float],
    failure: str,
) -> None:
    desk = calibrated_desk(with_kb, 1.0)
    assert desk > UNCALIBRATED_CEILING
    settings = openai_settings(llm_settings, emulator, LLM_TOOL_CALLING=False, LLM_MAX_RETRIES=0)
    if failure == "malformed answers":
        emulator.script(Reply(content='{"queries": ["vpn 809"]}'), Reply(content="not json"), Reply(content="{}"))
    elif failure == "timeout":
        settings = settings.model_copy(update={"LLM_TIMEOUT_SECONDS": 0.2})
        emulator.fail(None, path="/v1/chat/completions", times=2, delay=SLOWER_THAN_ANY_TIMEOUT)
    else:
        settings = settings.model_copy(update={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    vpn = kb_item(1, "Open the VPN client and set the protocol to IKEv2.", "vpn.md")
    kb = FakeKb([vpn], [vpn])
    analyser = LlmAnalyser(with_kb, settings, search_kb=kb)
    result = analyser.analyse(snapshot())
    assert (result.analyser, result.confidence, result.model_confidence) == (
        "openai (fallback: retrieval-only)",
        desk,
        None,
    )
    analyser.adjustments.get = lambda session: {"uncategorised": -1.0}  # type: ignore[method-assign]
    if failure == "malformed answers":
        emulator.script(Reply(content='{"queries": ["vpn 809"]}'), Reply(content="not json"), Reply(content="{}"))
    corrected = analyser.analyse(snapshot())
    assert (corrected.analyser, corrected.confidence) == ("openai (fallback: retrieval-only)", 0.5)
    assert corrected.confidence_adjustment == {
        "category": "uncategorised",
        "logit_offset": -1.0,
        "fitted": desk,
        "adjusted": 0.5,
    }
