"""LLM fixtures: a migrated SQLite database, settings for the LLM analyser, scripted chat models, a fake KB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from sqlalchemy.orm import Session, sessionmaker

from engine.core.analysis import TicketSnapshot
from engine.core.db import make_engine, make_session_factory, upgrade_database
from engine.core.models import KbChunk
from engine.core.settings import Settings, load_settings


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model without tool calling that remembers every prompt it was sent."""

    seen: list[list[BaseMessage]] = []

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


class ToolCallingModel(ScriptedModel):
    """The same, with tool calling: `bind_tools` records the tools and answers come as scripted tool calls."""

    bound: list[list[str]] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingModel:  # type: ignore[override]
        self.bound.append([getattr(tool, "name", None) or getattr(tool, "__name__", str(tool)) for tool in tools])
        return self


def usage(prompt: int = 100, completion: int = 20) -> dict[str, int]:
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}


def said(content: str, prompt: int = 100, completion: int = 20) -> AIMessage:
    return AIMessage(content=content, usage_metadata=usage(prompt, completion))


def calls(name: str, prompt: int = 100, completion: int = 20, **arguments: Any) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": arguments, "id": f"call-{name}", "type": "tool_call"}],
        usage_metadata=usage(prompt, completion),
    )


def scripted(*answers: AIMessage | str) -> ScriptedModel:
    return ScriptedModel(messages=iter(answers), seen=[])


def tool_calling(*answers: AIMessage | str) -> ToolCallingModel:
    return ToolCallingModel(messages=iter(answers), seen=[], bound=[])


def kb_item(number: int, text: str, title: str = "", kind: str = "kb") -> dict[str, Any]:
    return {
        "source_kind": kind,
        "source_id": number,
        "title": title or f"article-{number}.md",
        "location": "",
        "location_data": {},
        "text": text,
        "fused_score": 0.03 - number * 0.001,
        "vector_rank": number,
        "vector_score": 0.5,
        "bm25_rank": number,
        "bm25_score": 3.0,
        "chunk_id": number,
    }


class FakeKb:
    """Stands in for kb.search: answers every query with the next batch and records the queries."""

    def __init__(self, *batches: list[dict[str, Any]]) -> None:
        self.batches = list(batches)
        self.queries: list[list[str]] = []

    def __call__(self, session: Session, settings: Settings, query: str, queries: list[str]) -> list[dict[str, Any]]:
        self.queries.append(queries)
        return self.batches.pop(0) if self.batches else []


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'llm.db'}")
    upgrade_database(engine)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def llm_settings(tmp_path: Path) -> Settings:
    return load_settings(
        _env_file=None,
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=f"sqlite:///{tmp_path / 'llm.db'}",
        DEMO_FEED_ENABLED=False,
        ENGINE_ENABLED=False,
        WORKER_ID="test-worker",
        LLM_PROVIDER="openai",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        OPENAI_API_KEY="sk-test",
        LLM_PRICE_INPUT_PER_1K=0.5,
        LLM_PRICE_OUTPUT_PER_1K=1.5,
    )


def snapshot(**overrides: Any) -> TicketSnapshot:
    fields: dict[str, Any] = {
        "id": 7,
        "reference": "TCKT-7",
        "subject": "VPN does not connect",
        "description": "Since this morning the VPN client on my Windows laptop says 'error 809' when I connect.",
        "email": "ann@customer.example",
        "requester_name": "Ann",
        "source": "email",
        "priority": None,
        "category": None,
        "team": None,
        "follow_up_count": 0,
    }
    fields.update(overrides)
    return TicketSnapshot(**fields)


@pytest.fixture
def with_kb(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """A database whose knowledge base is not empty, so the analyser searches it (the search itself is faked)."""
    with factory.begin() as session:
        session.add(KbChunk(source_kind="kb", source_id=1, chunk_index=0, text="VPN", content_hash="0" * 64))
    return factory
