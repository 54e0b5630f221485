"""The token budget (with an injected clock), model construction from settings, and the runtime's choice."""

from __future__ import annotations

import threading

import pytest
from langchain_openai import AzureChatOpenAI, ChatOpenAI
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.llm import TokenBudget, approximate_token_ids, build_chat_model
from engine.analysers.llm_analyser import LlmAnalyser
from engine.analysers.retrieval_analyser import RetrievalAnalyser
from engine.core.settings import ConfigurationError, Settings
from engine.runtime import build_analyser


class FakeClock:
    """Time that moves only when the budget sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def budget(limit: int, max_wait: float = 120.0) -> tuple[TokenBudget, FakeClock]:
    clock = FakeClock()
    return TokenBudget(limit, max_wait=max_wait, clock=clock, sleep=clock.sleep), clock


def test_calls_within_the_minute_budget_do_not_wait() -> None:
    limiter, clock = budget(1000)
    assert [limiter.acquire(400).waited for _ in range(2)] == [0.0, 0.0]
    assert clock.sleeps == []


def test_a_spent_budget_waits_until_the_oldest_call_leaves_the_window() -> None:
    limiter, clock = budget(1000)
    limiter.acquire(600)
    clock.now += 20
    limiter.acquire(300)
    reservation = limiter.acquire(300)
    assert reservation.waited == 40.0
    assert clock.sleeps == [40.0]
    assert limiter.waited_seconds == 40.0


def test_the_wait_is_bounded() -> None:
    limiter, clock = budget(1000, max_wait=5)
    limiter.acquire(1000)
    assert limiter.acquire(10).waited == 5.0
    assert clock.sleeps == [5.0]


def test_settling_to_the_real_usage_frees_the_estimate() -> None:
    limiter, _ = budget(1000)
    reservation = limiter.acquire(900)
    limiter.settle(reservation, 100)
    assert limiter.acquire(800).waited == 0.0


def test_no_limit_never_waits_and_a_lone_large_call_goes_ahead() -> None:
    assert budget(0)[0].acquire(10**9).waited == 0.0
    assert budget(100)[0].acquire(5000).waited == 0.0


def test_threads_share_one_budget_without_overspending() -> None:
    limiter, clock = budget(1000)
    lock = threading.Lock()

    def sleep(seconds: float) -> None:
        with lock:
            clock.now += seconds

    limiter.sleep = sleep
    starts: list[float] = []
    threads = [threading.Thread(target=lambda: starts.append(limiter.acquire(100).entry[0])) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(starts) == 30
    assert all(sum(1 for other in starts if start - 60 < other <= start) <= 10 for start in starts)


def test_openai_mode_builds_chat_openai_at_the_base_url(llm_settings: Settings) -> None:
    model = build_chat_model(llm_settings)
    assert isinstance(model, ChatOpenAI)
    assert (model.openai_api_base, model.model_name, model.max_retries) == ("http://127.0.0.1:9/v1", "gpt-4o-mini", 3)
    assert model.get_num_tokens("twelve chars") == len(approximate_token_ids("twelve chars")) == 3


def test_a_self_hosted_server_gets_the_output_limit_by_the_name_llama_cpp_reads(llm_settings: Settings) -> None:
    """llama.cpp ignores `max_completion_tokens`; OpenAI itself refuses it beside `max_tokens`."""
    payload = build_chat_model(llm_settings)._get_request_payload([("human", "hi")])  # type: ignore[attr-defined]
    assert payload["extra_body"] == {"max_tokens": 1500} and payload["max_completion_tokens"] == 1500
    hosted = llm_settings.model_copy(update={"OPENAI_BASE_URL": ""})
    payload = build_chat_model(hosted)._get_request_payload([("human", "hi")])  # type: ignore[attr-defined]
    assert "extra_body" not in payload and payload["max_completion_tokens"] == 1500


def test_azure_mode_uses_the_seed_variables(llm_settings: Settings) -> None:
    settings = llm_settings.model_copy(
        update={
            "LLM_PROVIDER": "azure",
            "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9",
            "AZURE_OPENAI_API_KEY": SecretStr("key"),
            "AZURE_OPENAI_DEPLOYMENT": "support-gpt",
        }
    )
    model = build_chat_model(settings)
    assert isinstance(model, AzureChatOpenAI)
    assert (model.deployment_name, model.openai_api_version) == ("support-gpt", "2024-10-21")


@pytest.mark.parametrize(
    ("provider", "named"),
    [("azure", "AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_DEPLOYMENT, AZURE_OPENAI_API_KEY"), ("openai", "OPENAI_API_KEY")],
)
def test_missing_settings_are_named(llm_settings: Settings, provider: str, named: str) -> None:
    settings = llm_settings.model_copy(
        update={"LLM_PROVIDER": provider, "OPENAI_BASE_URL": "", "OPENAI_API_KEY": SecretStr("")}
    )
    with pytest.raises(ConfigurationError, match=named):
        build_chat_model(settings)


def test_the_runtime_picks_the_analyser_by_provider(factory: sessionmaker[Session], llm_settings: Settings) -> None:
    assert isinstance(build_analyser(llm_settings, factory), LlmAnalyser)
    none = llm_settings.model_copy(update={"LLM_PROVIDER": "none"})
    assert isinstance(build_analyser(none, factory), RetrievalAnalyser)
