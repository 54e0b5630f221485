"""The routes that set and delete the session cookie: HttpOnly, SameSite=Strict, Secure behind https, only for a
live session's one-time code, never for a request from another origin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.testclient import TestClient

from engine.core.enums import Role
from engine.core.settings import Settings, get_settings
from engine.operators.auth import create_first_admin, create_operator
from engine.operators.permissions import Actor
from engine.operators.sessions import device_operator, resume_from_cookie, session_end_reason
from tests.factories import operator_session
from ui.session_routes import session_routes

HEADERS = {"X-NTS-Session": "1", "Origin": "http://testserver"}


@pytest.fixture
def client(
    settings: Settings, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATA_DIR", str(settings.DATA_DIR))
    get_settings.cache_clear()
    with session_factory.begin() as session:
        create_first_admin(session, "ada", "a long password")
        create_operator(session, Actor("ada", Role.ADMIN), "ann", Role.AGENT, password="a long password")
    with TestClient(Starlette(routes=session_routes())) as test_client:
        yield test_client
    get_settings.cache_clear()


def set_cookie_headers(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def test_a_handoff_code_is_exchanged_once_for_an_http_only_cookie(
    client: TestClient, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    started = operator_session(session_factory, settings, "ann")
    response = client.post("/api/session", content=started.handoff, headers=HEADERS)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    cookies = set_cookie_headers(response)
    for name in ("nts_session", "nts_device"):
        flags = cookies[name].lower()
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags and "secure" not in flags
    max_age = int(cookies["nts_session"].lower().split("max-age=")[1].split(";")[0])
    assert 0 < max_age <= settings.DASHBOARD_SESSION_MAX_HOURS * 3600, "the browser forgets it when the server does"
    token = response.cookies["nts_session"]
    with session_factory.begin() as session:
        live = resume_from_cookie(session, settings, token)
        assert live is not None and live.actor.username == "ann"
        assert device_operator(settings, response.cookies["nts_device"]) is not None
    assert client.post("/api/session", content=started.handoff, headers=HEADERS).status_code == 403


def test_the_cookie_is_secure_when_the_browser_is_on_https(
    client: TestClient, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    for headers in ({"Origin": "https://testserver"}, {"X-Forwarded-Proto": "https"}):
        started = operator_session(session_factory, settings, "ann")
        response = client.post("/api/session", content=started.handoff, headers={**HEADERS, **headers})
        assert all("secure" in header.lower() for header in set_cookie_headers(response).values()), headers


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://testserver"}, {"X-NTS-Session": "1", "Origin": "https://evil.example"}],
    ids=["no header", "a form's post", "another origin"],
)
def test_requests_a_cross_site_page_could_make_are_refused(
    client: TestClient, settings: Settings, session_factory: sessionmaker[Session], headers: dict[str, str]
) -> None:
    started = operator_session(session_factory, settings, "ann")
    assert client.post("/api/session", content=started.handoff, headers=headers).status_code == 403
    assert client.post("/api/session", content=started.handoff, headers=HEADERS).status_code == 200, "still unused"


@pytest.mark.parametrize("body", ["", "not a code", "é" * 43, "x" * 10_000])
def test_unknown_or_garbled_codes_get_no_cookie(client: TestClient, body: str) -> None:
    response = client.post("/api/session", content=body.encode(), headers=HEADERS)
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_signing_out_ends_the_cookies_session_and_deletes_it(
    client: TestClient, settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    started = operator_session(session_factory, settings, "ann")
    client.post("/api/session", content=started.handoff, headers=HEADERS)
    newer = operator_session(session_factory, settings, "ann")
    assert client.post("/api/session/end", content=str(newer.id), headers=HEADERS).json() == {"ok": False}
    with session_factory() as session:
        assert session_end_reason(session, started.id) is None, "the cookie names another session"
    response = client.post("/api/session/end", content=str(started.id), headers=HEADERS)
    assert response.json() == {"ok": True}
    assert "max-age=0" in set_cookie_headers(response)["nts_session"].lower()
    with session_factory() as session:
        assert session_end_reason(session, started.id) == "signed_out"
