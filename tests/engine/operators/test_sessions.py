"""Server-side sessions on a clock that stands still: a session ends when idle, at its absolute limit (never moved),
or when it is ended, and every copy of its cookie with it; only a hash of the cookie's token is stored."""

from __future__ import annotations

import stat
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.models import AuditEntry, OperatorSession, utcnow
from engine.core.settings import Settings
from engine.operators.auth import create_first_admin, create_operator, update_operator
from engine.operators.permissions import Actor
from engine.operators.sessions import (
    DEVICE_LIFETIME,
    device_operator,
    device_token,
    end_all_sessions,
    end_session,
    end_session_of_cookie,
    exchange_handoff,
    open_sessions,
    resume_from_cookie,
    resume_session,
    session_end_reason,
    signing_key_path,
    start_session,
)

START = utcnow().replace(microsecond=0)
ADMIN = Actor("ada", Role.ADMIN)


@pytest.fixture
def desk(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with session_factory.begin() as session:
        create_first_admin(session, "ada", "a long password")
        create_operator(session, ADMIN, "ann", Role.AGENT, password="a long password")
    return session_factory


def signed_in(desk: sessionmaker[Session], settings: Settings, username: str = "ann") -> tuple[int, str]:
    """A sign-in at START whose browser fetched its cookie: (session id, token)."""
    with desk.begin() as session:
        started = start_session(session, settings, username, "password", client_hint="pytest", now=START)
    with desk.begin() as session:
        cookie = exchange_handoff(session, settings, started.handoff, now=START)
    assert cookie is not None
    return started.id, cookie.token


def from_cookie(desk: sessionmaker[Session], settings: Settings, token: str, after: timedelta) -> str | None:
    """Who the cookie signs in `after` START, committing what the look-up writes (activity, an ending)."""
    with desk.begin() as session:
        live = resume_from_cookie(session, settings, token, now=START + after)
        return live.actor.username if live else None


def test_a_cookie_signs_its_operator_in_and_only_its_hash_is_stored(
    desk: sessionmaker[Session], settings: Settings
) -> None:
    session_id, token = signed_in(desk, settings)
    assert from_cookie(desk, settings, token, timedelta(minutes=1)) == "ann"
    with desk() as session:
        row = session.get(OperatorSession, session_id)
        stored = " ".join(str(getattr(row, column.name)) for column in OperatorSession.__table__.columns)
    assert token not in stored and row.token_hash and row.handoff_hash is None
    assert row.expires_at == START + timedelta(hours=settings.DASHBOARD_SESSION_MAX_HOURS)


def test_a_handoff_code_works_once_and_only_for_a_minute(desk: sessionmaker[Session], settings: Settings) -> None:
    with desk.begin() as session:
        late = start_session(session, settings, "ann", "password", now=START)
        twice = start_session(session, settings, "ann", "password", now=START)
    with desk.begin() as session:
        assert exchange_handoff(session, settings, late.handoff, now=START + timedelta(seconds=61)) is None
        assert exchange_handoff(session, settings, twice.handoff, now=START) is not None
        assert exchange_handoff(session, settings, twice.handoff, now=START) is None


def test_an_idle_session_ends_and_activity_keeps_it(desk: sessionmaker[Session], settings: Settings) -> None:
    idle = timedelta(minutes=settings.DASHBOARD_SESSION_IDLE_MINUTES)
    active_id, active = signed_in(desk, settings)
    idle_id, forgotten = signed_in(desk, settings)
    for minutes in range(20, 200, 20):  # a page run every 20 minutes
        assert from_cookie(desk, settings, active, timedelta(minutes=minutes)) == "ann"
    assert from_cookie(desk, settings, forgotten, idle + timedelta(seconds=1)) is None
    with desk() as session:
        assert session_end_reason(session, idle_id) == "idle"
        assert session_end_reason(session, active_id) is None


def test_the_absolute_limit_is_never_moved_by_activity(desk: sessionmaker[Session], settings: Settings) -> None:
    session_id, token = signed_in(desk, settings)
    limit = timedelta(hours=settings.DASHBOARD_SESSION_MAX_HOURS)
    step = timedelta(minutes=settings.DASHBOARD_SESSION_IDLE_MINUTES / 2)
    after = step
    while after < limit:
        assert from_cookie(desk, settings, token, after) == "ann"
        after += step
    assert from_cookie(desk, settings, token, limit) is None
    with desk() as session:
        row = session.get(OperatorSession, session_id)
        assert (row.revoked_reason, row.expires_at) == ("expired", START + limit)


def test_a_page_run_touches_the_session_at_most_once_a_minute(desk: sessionmaker[Session], settings: Settings) -> None:
    session_id, _ = signed_in(desk, settings)
    for seconds, expected in ((30, START), (61, START + timedelta(seconds=61)), (90, START + timedelta(seconds=61))):
        with desk.begin() as session:
            assert resume_session(session, settings, session_id, now=START + timedelta(seconds=seconds))
        with desk() as session:
            assert session.get(OperatorSession, session_id).last_seen_at == expected
    with desk.begin() as session:  # a live refresh is not activity
        resume_session(session, settings, session_id, now=START + timedelta(minutes=5), touch=False)
    with desk() as session:
        assert session.get(OperatorSession, session_id).last_seen_at == START + timedelta(seconds=61)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"password": "another long password"}, "password_changed"),
        ({"active": False}, "deactivated"),
        ({"role": Role.LEAD}, "role_changed"),
    ],
)
def test_a_change_to_the_account_ends_every_session(
    desk: sessionmaker[Session], settings: Settings, change: dict[str, object], reason: str
) -> None:
    sessions = [signed_in(desk, settings) for _ in range(2)]  # two browsers
    with desk.begin() as session:
        update_operator(session, ADMIN, "ann", **change)  # type: ignore[arg-type]
    for session_id, token in sessions:
        assert from_cookie(desk, settings, token, timedelta(minutes=1)) is None
        with desk() as session:
            assert session_end_reason(session, session_id) == reason


def test_unrelated_changes_end_no_session(desk: sessionmaker[Session], settings: Settings) -> None:
    _, token = signed_in(desk, settings)
    with desk.begin() as session:
        update_operator(session, ADMIN, "ann", role=Role.AGENT, active=True)
    assert from_cookie(desk, settings, token, timedelta(minutes=1)) == "ann"


def test_ending_one_session_or_all_of_them(desk: sessionmaker[Session], settings: Settings) -> None:
    laptop_id, laptop = signed_in(desk, settings)
    _, phone = signed_in(desk, settings)
    _, admins = signed_in(desk, settings, "ada")
    with desk.begin() as session:
        assert end_session(session, laptop_id, by="ann", now=START)
        assert not end_session(session, laptop_id, by="ann", now=START)
    assert from_cookie(desk, settings, laptop, timedelta(minutes=1)) is None
    assert from_cookie(desk, settings, phone, timedelta(minutes=1)) == "ann"
    with desk.begin() as session:
        assert [row.id for row in open_sessions(session, settings, "ann", now=START)] != []
        assert end_all_sessions(session, "ann", by="ada", reason="signed_out_everywhere", now=START) == 1
        assert open_sessions(session, settings, "ann", now=START) == []
    assert from_cookie(desk, settings, phone, timedelta(minutes=1)) is None
    assert from_cookie(desk, settings, admins, timedelta(minutes=1)) == "ada"
    with desk() as session:
        audit = [(entry.actor, entry.action) for entry in session.scalars(select(AuditEntry))]
    assert audit.count(("ann", "session_started")) == 2 and ("ada", "sessions_ended") in audit
    assert ("ann", "session_ended") in audit


def test_the_sign_out_route_ends_only_the_session_the_page_had(desk: sessionmaker[Session], settings: Settings) -> None:
    """A cookie that a newer sign-in in another tab replaced is not ended by the older tab's sign-out."""
    old_id, _ = signed_in(desk, settings)
    new_id, new = signed_in(desk, settings)
    with desk.begin() as session:
        assert not end_session_of_cookie(session, new, old_id)
        assert end_session_of_cookie(session, new, new_id)
    assert from_cookie(desk, settings, new, timedelta(minutes=1)) is None


@pytest.mark.parametrize("token", [None, "", "é" * 43, "😀", "a" * 42 + "\x00", "A" * 43, "x" * 10_000])
def test_garbled_non_ascii_and_unknown_tokens_are_refused_without_an_error(
    desk: sessionmaker[Session], settings: Settings, token: str | None
) -> None:
    with desk.begin() as session:
        assert resume_from_cookie(session, settings, token, now=START) is None
        assert exchange_handoff(session, settings, token, now=START) is None
        assert device_operator(settings, token, now=START) is None


def test_a_trusted_browser_token_names_its_operator_until_it_expires(settings: Settings) -> None:
    token = device_token(settings, 7, now=START)
    assert device_operator(settings, token, now=START + DEVICE_LIFETIME) == 7
    assert device_operator(settings, token, now=START + DEVICE_LIFETIME + timedelta(seconds=1)) is None
    payload, signature = token.split(".")
    other = device_token(settings, 8, now=START)
    assert device_operator(settings, f"{other.split('.')[0]}.{signature}", now=START) is None
    assert device_operator(settings, f"{payload}.{'0' * len(signature)}", now=START) is None
    assert device_operator(settings, f"{payload}.{'é' * len(signature)}", now=START) is None
    assert stat.S_IMODE(signing_key_path(settings).stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.DATA_DIR.stat().st_mode) == 0o700


def test_replicas_without_a_shared_data_dir_share_the_key_through_the_setting(settings: Settings, tmp_path) -> None:
    elsewhere = settings.model_copy(update={"DATA_DIR": tmp_path / "replica-b"})
    token = device_token(settings, 7, now=START)
    assert device_operator(elsewhere, token, now=START) is None, "each DATA_DIR made its own key"
    shared = {"DASHBOARD_SESSION_SECRET": SecretStr("one secret for every replica")}
    here, there = settings.model_copy(update=shared), elsewhere.model_copy(update=shared)
    assert device_operator(there, device_token(here, 7, now=START), now=START) == 7
