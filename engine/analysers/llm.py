"""The chat model behind LLM_PROVIDER, a process-wide token budget, and per-ticket token and cost accounting.

`azure` is AzureChatOpenAI with the seed's variables (§3.2.1); `openai` is ChatOpenAI at OPENAI_BASE_URL, so
OpenAI, Ollama, vLLM, llama.cpp and LM Studio all work. Retries with backoff on 408/409/429/5xx and timeouts
are the OpenAI client's own (it honours Retry-After); tokens are counted from the API's `usage`, never with
tiktoken, which cannot fetch its encodings offline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult

from engine.core.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4
WINDOW_SECONDS = 60.0


def approximate_token_ids(text: str) -> list[int]:
    """About one token per four characters: LangChain's counting hook without tiktoken's download."""
    return list(range(max(1, len(text) // CHARS_PER_TOKEN)))


def estimate_tokens(messages: Sequence[BaseMessage]) -> int:
    return sum(len(str(message.content)) // CHARS_PER_TOKEN + 4 for message in messages)


def build_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model LLM_PROVIDER names; a missing setting fails with the variable's name."""
    common: dict[str, Any] = {
        "temperature": settings.LLM_TEMPERATURE,
        "timeout": settings.LLM_TIMEOUT_SECONDS,
        "max_retries": settings.LLM_MAX_RETRIES,
        "max_tokens": settings.LLM_MAX_OUTPUT_TOKENS,
        "custom_get_token_ids": approximate_token_ids,
    }
    if settings.LLM_PROVIDER == "azure":
        from langchain_openai import AzureChatOpenAI

        missing = [
            name
            for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENT", "AZURE_OPENAI_API_VERSION")
            if not getattr(settings, name)
        ]
        if not settings.AZURE_OPENAI_API_KEY.get_secret_value():
            missing.append("AZURE_OPENAI_API_KEY")
        if missing:
            raise ConfigurationError(f"LLM_PROVIDER=azure needs {', '.join(missing)}")
        return AzureChatOpenAI(
            azure_endpoint=settings.AZURE_OPENAI_ENDPOINT,
            api_key=settings.AZURE_OPENAI_API_KEY,
            api_version=settings.AZURE_OPENAI_API_VERSION,
            azure_deployment=settings.AZURE_OPENAI_DEPLOYMENT,
            model=settings.AZURE_OPENAI_DEPLOYMENT,
            **common,
        )
    if settings.LLM_PROVIDER == "openai":
        from langchain_openai import ChatOpenAI

        if not settings.OPENAI_BASE_URL and not settings.OPENAI_API_KEY.get_secret_value():
            raise ConfigurationError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (Ollama, vLLM, llama.cpp, ...)"
            )
        return ChatOpenAI(
            base_url=settings.OPENAI_BASE_URL or None,
            api_key=settings.OPENAI_API_KEY if settings.OPENAI_API_KEY.get_secret_value() else "not-needed",
            model=settings.OPENAI_CHAT_MODEL,
            extra_body=self_hosted_limit(settings),
            **common,
        )
    raise ConfigurationError("LLM_PROVIDER=none has no chat model; set LLM_PROVIDER to azure or openai")


def self_hosted_limit(settings: Settings) -> dict[str, Any] | None:
    """The output limit as `max_tokens` too, for a server at OPENAI_BASE_URL: the OpenAI client sends it as
    `max_completion_tokens`, which llama.cpp's server ignores (it would generate until its context is full).
    OpenAI itself (no base URL) refuses both at once, so it gets only the new name."""
    return {"max_tokens": settings.LLM_MAX_OUTPUT_TOKENS} if settings.OPENAI_BASE_URL else None


def supports_tool_calling(model: BaseChatModel, settings: Settings) -> bool:
    """Tool calling when LLM_TOOL_CALLING allows it and the model class implements `bind_tools`."""
    return settings.LLM_TOOL_CALLING and type(model).bind_tools is not BaseChatModel.bind_tools


@dataclass
class Reservation:
    """Tokens counted against the current minute for one call; settled to the API's figure afterwards."""

    entry: list[float] | None
    waited: float = 0.0


class TokenBudget:
    """A process-wide tokens-per-minute limit over a sliding 60-second window, shared by every analysis thread.

    A call reserves its estimated tokens (prompt plus the most it may generate, as providers count quotas)
    and waits while the window is full, at most `max_wait` seconds: past that it goes ahead, and the
    provider's own 429 and the client's retries take over. The clock and sleep are injectable for tests.
    """

    def __init__(
        self,
        tokens_per_minute: int,
        *,
        max_wait: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tokens_per_minute = tokens_per_minute
        self.max_wait = max_wait
        self.clock = clock
        self.sleep = sleep
        self.waited_seconds = 0.0
        self._entries: deque[list[float]] = deque()
        self._lock = threading.Lock()

    def _used(self, now: float) -> float:
        while self._entries and self._entries[0][0] <= now - WINDOW_SECONDS:
            self._entries.popleft()
        return sum(tokens for _, tokens in self._entries)

    def acquire(self, tokens: int) -> Reservation:
        if self.tokens_per_minute <= 0:
            return Reservation(None)
        started = self.clock()
        while True:
            with self._lock:
                now = self.clock()
                waited = now - started
                used = self._used(now)
                if not self._entries or used + tokens <= self.tokens_per_minute or waited >= self.max_wait:
                    entry = [now, float(tokens)]
                    self._entries.append(entry)
                    self.waited_seconds += waited
                    return Reservation(entry, waited)
                pause = min(self._entries[0][0] + WINDOW_SECONDS - now, self.max_wait - waited)
            self.sleep(max(pause, 0.01))

    def settle(self, reservation: Reservation, tokens: int | None) -> None:
        """Replace the estimate with what the call used (0 for a call that failed before the model ran)."""
        if reservation.entry is not None and tokens is not None:
            with self._lock:
                reservation.entry[1] = float(tokens)


_budgets: dict[int, TokenBudget] = {}
_budgets_lock = threading.Lock()


def token_budget(settings: Settings) -> TokenBudget:
    """The process's budget for LLM_TOKENS_PER_MINUTE (one per distinct limit)."""
    with _budgets_lock:
        budget = _budgets.get(settings.LLM_TOKENS_PER_MINUTE)
        if budget is None:
            budget = _budgets[settings.LLM_TOKENS_PER_MINUTE] = TokenBudget(
                settings.LLM_TOKENS_PER_MINUTE, max_wait=settings.LLM_BUDGET_MAX_WAIT_SECONDS
            )
        return budget


@dataclass(eq=False)
class UsageRecorder(BaseCallbackHandler):
    """Callbacks for one ticket's analysis: every model call takes from the budget and adds its usage here."""

    budget: TokenBudget
    max_output_tokens: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    waited_seconds: float = 0.0
    _open: dict[UUID, Reservation] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        estimate = sum(estimate_tokens(batch) for batch in messages) + self.max_output_tokens
        reservation = self.budget.acquire(estimate)
        with self._lock:
            self._open[run_id] = reservation
            self.waited_seconds += reservation.waited
            self.calls += 1
        if reservation.waited:
            log.info("waited %.1f s for the LLM token budget", reservation.waited)

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        prompt = completion = 0
        for generations in response.generations:
            for generation in generations:
                usage = getattr(getattr(generation, "message", None), "usage_metadata", None) or {}
                prompt += int(usage.get("input_tokens", 0))
                completion += int(usage.get("output_tokens", 0))
        with self._lock:
            self.prompt_tokens += prompt
            self.completion_tokens += completion
            reservation = self._open.pop(run_id, None)
        if reservation is not None and (prompt or completion):
            self.budget.settle(reservation, prompt + completion)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            reservation = self._open.pop(run_id, None)
        if reservation is not None:
            self.budget.settle(reservation, 0)

    def cost_usd(self, settings: Settings) -> float:
        return round(
            self.prompt_tokens / 1000 * settings.LLM_PRICE_INPUT_PER_1K
            + self.completion_tokens / 1000 * settings.LLM_PRICE_OUTPUT_PER_1K,
            6,
        )
