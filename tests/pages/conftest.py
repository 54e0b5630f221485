"""Page fixtures: the app pointed at this test's database and data folder, operators of every role, a signed-in AppTest.

AppTest runs the page in this process and shares `st.cache_resource`, so each test clears the caches and
runs with ENGINE_ENABLED=false (no scheduler inside pytest).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from engine.core.db import make_engine, make_session_factory
from engine.core.enums import Role
from engine.core.settings import Settings, get_settings
from engine.operators.auth import create_first_admin, create_operator
from engine.operators.permissions import Actor
from kb.store import reset_caches
from tests.factories import operator_session
from tests.kb.embeddings_emulator import EmbeddingsEmulator
from tests.waiting import SCRIPT_RUN_WAIT

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"
OPERATORS = {"ada": Role.ADMIN, "lee": Role.LEAD, "ann": Role.AGENT, "vic": Role.VIEWER}


@pytest.fixture(scope="session")
def embeddings() -> Iterator[EmbeddingsEmulator]:
    """A loopback embeddings API, so knowledge-base pages index without loading a local model."""
    with EmbeddingsEmulator() as emulator:
        yield emulator


@pytest.fixture
def app(
    settings: Settings,
    session_factory: sessionmaker[Session],
    embeddings: EmbeddingsEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """The environment every page reads, with the four operators created."""
    environment = {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.DATA_DIR),
        "ENGINE_ENABLED": "false",
        "DEMO_FEED_ENABLED": "false",
        "WORKER_ID": "page-test",
        "EMBEDDINGS_PROVIDER": "openai",
        "OPENAI_BASE_URL": embeddings.url + "/v1",
        "OPENAI_API_KEY": "sk-test",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(settings.DATA_DIR.parent)
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    reset_caches()
    with session_factory.begin() as session:
        create_first_admin(session, "ada", PASSWORD)
        for name, role in OPERATORS.items():
            if role is not Role.ADMIN:
                create_operator(session, Actor("ada", Role.ADMIN), name, role, password=PASSWORD)
    yield get_settings()
    st.cache_resource.clear()
    st.cache_data.clear()
    get_settings.cache_clear()
    reset_caches()


def signed_in_state(user: str) -> dict[str, object]:
    """What a browser session holds after `user` signed in: a new server-side session's id."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        started = operator_session(make_session_factory(engine), settings, user)
    finally:
        engine.dispose()
    return {"username": user, "role": OPERATORS[user].value, "method": "password", "session_id": started.id}


def open_page(page: str, user: str | None = "ann", **query: str) -> AppTest:
    """Run `page` (e.g. "pages/1_Queue.py") signed in as `user`, or signed out with None."""
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=SCRIPT_RUN_WAIT)
    if page != "Home.py":
        at.switch_page(page)
    if user:
        at.session_state["auth_user"] = signed_in_state(user)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    """Everything the page wrote, for assertions that do not care which element holds a sentence."""
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "success", "warning", "error"):
        parts.extend(str(element.value) for element in getattr(at, kind))
    return "\n".join(parts)


def sign_in(at, username: str, password: str):
    """Fill in the sign-in form of the page `at` shows and submit it."""
    at.text_input(key="sign_in_username").input(username)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()
