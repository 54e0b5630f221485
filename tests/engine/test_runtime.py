"""The engine's parts: the analyser is built at its first use, once, whichever thread asks first."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import Session, sessionmaker

import engine.runtime
from engine.core.analysis import Analyser
from engine.core.settings import Settings
from engine.runtime import build_runtime


def test_the_analyser_is_built_at_its_first_use_and_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Analyser] = []
    real = engine.runtime.build_analyser

    def counted(settings: Settings, factory: sessionmaker[Session]) -> Analyser:
        built.append(real(settings, factory))
        return built[-1]

    monkeypatch.setattr(engine.runtime, "build_analyser", counted)
    runtime = build_runtime(settings)
    try:
        assert built == []
        assert runtime.analyser_name == "retrieval-only"
        with ThreadPoolExecutor(4) as pool:
            analysers = list(pool.map(lambda _: runtime.analyser, range(8)))
        assert len(built) == 1
        assert all(analyser is built[0] for analyser in analysers)
        assert built[0].name == runtime.analyser_name
    finally:
        runtime.engine.dispose()
