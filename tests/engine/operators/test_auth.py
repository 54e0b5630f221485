"""Sign-in without oracles: every failure gets the same answer after the same work, failures only delay, strangers
cannot keep an operator out; single sign-on starts sessions only when fresh; the first admin is created once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import engine.operators.auth as auth
from engine.core.db import transaction
from engine.core.enums import Role
from engine.core.models import AuditEntry, Operator, utcnow
from engine.core.settings import Settings
from engine.operators.auth import (
    WRONG_CREDENTIALS,
    OperatorError,
    SignInAttempt,
    authenticate,
    create_first_admin,
    create_first_admin_with_code,
    create_operator,
    lift_sign_in_delay,
    pending_setup_code,
    setup_code_path,
    sign_in_wait_seconds,
    sign_out_everywhere,
    sso_actor,
    update_operator,
)
from engine.operators.permissions import Actor, PermissionDeniedError
from engine.operators.sessions import device_token, end_all_sessions
from tests.waiting import wait_until

PASSWORD = "a long password"
NOW = utcnow().replace(microsecond=0)
ADMIN = Actor("ada", Role.ADMIN)
STRANGER = SignInAttempt("198.51.100.66")


@pytest.fixture
def desk(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """ada (admin), ann (agent), a deactivated operator and one who signs in only through SSO."""
    with session_factory.begin() as session:
        create_first_admin(session, "ada", PASSWORD)
        create_operator(session, ADMIN, "ann", Role.AGENT, password=PASSWORD)
        create_operator(session, ADMIN, "gone", Role.AGENT, password=PASSWORD)
        create_operator(session, ADMIN, "sso-only", Role.AGENT, email="sso@desk.example")
        update_operator(session, ADMIN, "gone", active=False)
    return session_factory


def attempt(
    desk: sessionmaker[Session],
    settings: Settings,
    username: str,
    password: str,
    client: SignInAttempt = STRANGER,
    after: timedelta = timedelta(0),
) -> auth.SignInResult:
    with transaction(desk) as session:
        return authenticate(session, settings, username, password, client, now=NOW + after)


def test_every_failure_costs_one_verification_and_gets_the_same_answer(
    desk: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: a wrong password for an existing user took 176 ms, for an unknown one 0.4 ms."""
    verified: list[str] = []
    real = auth._hasher

    class CountingHasher:
        def hash(self, password: str) -> str:  # the dummy hash is made at the first sign-in
            return real.hash(password)

        def verify(self, hash_: str, password: str) -> bool:
            verified.append(hash_)
            return real.verify(hash_, password)

    monkeypatch.setattr(auth, "_hasher", CountingHasher())
    cases = {
        "wrong password": ("ann", "not the password"),
        "unknown name": ("nobody", "not the password"),
        "deactivated, right password": ("gone", PASSWORD),
        "single sign-on only": ("sso-only", PASSWORD),
    }
    for case, (username, password) in cases.items():
        verified.clear()
        result = attempt(desk, settings, username, password, SignInAttempt(f"client of {case}"))
        assert (result.actor, result.error) == (None, WRONG_CREDENTIALS), case
        assert len(verified) == 1, f"{case}: one argon2 verification"
    with desk() as session:  # ann's hash and the dummy are alike: same algorithm, same parameters
        ann = session.scalar(select(Operator.password_hash).where(Operator.username == "ann"))
    assert ann.rsplit("$", 2)[0] == auth._dummy_hash().rsplit("$", 2)[0]


def test_the_back_off_is_the_same_for_a_known_and_an_unknown_name(
    desk: sessionmaker[Session], settings: Settings
) -> None:
    answers = {}
    for name in ("ann", "nobody"):
        client = SignInAttempt(f"203.0.113.{len(answers) + 1}")
        answers[name] = [
            (result.error, result.wait_seconds)
            for step in range(settings.DASHBOARD_MAX_FAILED_LOGINS + 3)
            for result in [attempt(desk, settings, name, "wrong", client, after=timedelta(seconds=step))]
        ]
    assert answers["ann"] == answers["nobody"]
    wrong, allowed = (WRONG_CREDENTIALS, 0), settings.DASHBOARD_MAX_FAILED_LOGINS
    # one attempt a second: the 5th failure makes the next wait 1 s (accepted), the 6th 2 s (one refused)
    assert answers["ann"] == [wrong] * (allowed + 1) + [("Too many failed sign-ins: try again in 1 s.", 1), wrong]


def test_a_client_that_backs_off_does_not_delay_the_account_for_another(
    desk: sessionmaker[Session], settings: Settings
) -> None:
    attacker = SignInAttempt("198.51.100.66")
    for _ in range(settings.DASHBOARD_MAX_FAILED_LOGINS * 2):
        attempt(desk, settings, "ada", "guess", attacker)
    refused = attempt(desk, settings, "ada", PASSWORD, attacker)
    assert refused.actor is None and refused.wait_seconds > 0, "even the right password waits from there"
    owner = attempt(desk, settings, "ada", PASSWORD, SignInAttempt("192.0.2.10"))
    assert owner.actor == ADMIN


def test_a_trusted_browser_signs_in_while_strangers_have_the_name_backed_off(
    desk: sessionmaker[Session], settings: Settings
) -> None:
    """Many clients failing on ada delay her name for new browsers, never her own browser."""
    for number in range(settings.DASHBOARD_MAX_FAILED_LOGINS * 4 + 3):
        attempt(desk, settings, "ada", "guess", SignInAttempt(f"198.51.100.{number}"))
    new_browser = attempt(desk, settings, "ada", PASSWORD, SignInAttempt("192.0.2.10"))
    assert new_browser.actor is None and new_browser.wait_seconds > 0
    with desk() as session:
        ada_id = session.scalar(select(Operator.id).where(Operator.username == "ada"))
        assert sign_in_wait_seconds(session, settings, "ada", now=NOW) > 0
    her_browser = SignInAttempt("192.0.2.10", device_token(settings, ada_id, now=NOW))
    assert attempt(desk, settings, "ada", PASSWORD, her_browser).actor == ADMIN
    ann_token = SignInAttempt("192.0.2.10", device_token(settings, ada_id + 1, now=NOW))
    assert attempt(desk, settings, "ada", PASSWORD, ann_token).actor is None, "another operator's browser"
    for _ in range(settings.DASHBOARD_MAX_FAILED_LOGINS):  # the trusted browser has its own back-off
        attempt(desk, settings, "ada", "typo", her_browser)
    assert attempt(desk, settings, "ada", PASSWORD, her_browser).wait_seconds > 0


def test_an_admin_lifts_the_delay_on_a_name(desk: sessionmaker[Session], settings: Settings) -> None:
    for number in range(settings.DASHBOARD_MAX_FAILED_LOGINS * 4 + 1):
        attempt(desk, settings, "ann", "guess", SignInAttempt(f"198.51.100.{number}"))
    assert attempt(desk, settings, "ann", PASSWORD, SignInAttempt("192.0.2.10")).wait_seconds > 0
    with transaction(desk) as session:
        with pytest.raises(PermissionDeniedError):
            lift_sign_in_delay(session, settings, Actor("lee", Role.LEAD), "ann")
        lift_sign_in_delay(session, settings, ADMIN, "ann")
    assert attempt(desk, settings, "ann", PASSWORD, SignInAttempt("192.0.2.10")).actor == Actor("ann", Role.AGENT)


def test_every_attempt_is_audited_without_the_password_or_an_unknown_name(
    desk: sessionmaker[Session], settings: Settings
) -> None:
    secret = "Correct-Horse-typed-as-name"
    attempt(desk, settings, "ann", "wrong one")
    attempt(desk, settings, secret, "wrong one")
    attempt(desk, settings, "ann", PASSWORD)
    with desk() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action.like("sign_in%"))).all()
    assert [(entry.actor, entry.action) for entry in audit] == [
        ("ann", "sign_in_failed"),
        ("(unknown name)", "sign_in_failed"),
        ("ann", "sign_in"),
    ]
    assert all(entry.details["client"] == STRANGER.client for entry in audit)
    written = str([(entry.actor, entry.target_id, entry.details) for entry in audit])
    assert "wrong one" not in written and PASSWORD not in written and secret.lower() not in written.lower()


def test_sign_out_everywhere_is_for_oneself_or_an_admin(desk: sessionmaker[Session]) -> None:
    with transaction(desk) as session:
        assert sign_out_everywhere(session, Actor("ann", Role.AGENT), "ANN") == 0
        with pytest.raises(PermissionDeniedError):
            sign_out_everywhere(session, Actor("ann", Role.AGENT), "ada")
        assert sign_out_everywhere(session, ADMIN, "ann") == 0


def test_single_sign_on_starts_a_session_only_while_the_identity_is_fresh(
    desk: sessionmaker[Session], settings: Settings
) -> None:
    """Streamlit keeps its own sign-in cookie 30 days and cannot revoke it: an old copy must not sign anyone in."""
    issued = NOW.timestamp()

    def sso(issued_at: float | None, after: timedelta = timedelta(0)) -> auth.SignInResult:
        with transaction(desk) as session:
            return sso_actor(session, settings, "sso@desk.example", issued_at=issued_at, now=NOW + after)

    assert sso(issued).actor == Actor("sso-only", Role.AGENT)
    assert sso(issued, timedelta(seconds=auth.SSO_FRESH_SECONDS)).actor is not None
    assert "sign in with single sign-on again" in (
        sso(issued, timedelta(seconds=auth.SSO_FRESH_SECONDS + 1)).error or ""
    )
    assert sso(None).actor is None, "an identity token without iat"
    assert sso(issued + 60).actor is None, "issued in the future"
    with transaction(desk) as session:
        end_all_sessions(session, "sso-only", by="ada", reason="signed_out_everywhere", now=NOW + timedelta(seconds=5))
    assert "ended after this sign-in" in (sso(issued, timedelta(seconds=10)).error or "")
    assert sso(issued + 20, timedelta(seconds=30)).actor is not None, "a sign-in after the ending"


def test_a_non_ascii_setup_code_is_refused_without_an_error(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        code = pending_setup_code(session, settings)
    assert code is not None and oct(setup_code_path(settings).stat().st_mode & 0o777) == "0o600"
    for wrong in ("ĉodé", "😀" * 12, code + "é", ""):
        with transaction(session_factory) as session, pytest.raises(OperatorError, match="setup code is not right"):
            create_first_admin_with_code(session, settings, wrong, "root", PASSWORD)
    with transaction(session_factory) as session:
        create_first_admin_with_code(session, settings, f" {code} ", "root", PASSWORD)
    assert not setup_code_path(settings).exists()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_two_first_admins_at_once_make_exactly_one_admin(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: two simultaneous first-admin submissions on PostgreSQL created two admins.

    The first submission holds after its "no admin yet" check until the second has either passed the same check
    (the race) or is seen waiting for the first's lock; only then does the first go on and commit.
    """
    real_check = auth._active_admins
    second_checked = threading.Event()
    first = threading.Lock()

    def someone_waits_for_a_lock() -> bool:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar()
            )

    def check_then_hold(session: Session) -> int:
        admins = real_check(session)
        if first.acquire(blocking=False):
            wait_until(lambda: second_checked.is_set() or someone_waits_for_a_lock(), timeout=60, what="the second")
        else:
            second_checked.set()
        return admins

    monkeypatch.setattr(auth, "_active_admins", check_then_hold)
    outcomes: dict[str, str] = {}

    def submit(username: str) -> None:
        try:
            with transaction(session_factory) as session:
                create_first_admin(session, username, PASSWORD, by="browser")
            outcomes[username] = "created"
        except OperatorError as error:
            outcomes[username] = str(error)

    threads = [threading.Thread(target=submit, args=(name,)) for name in ("root-one", "root-two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes.values()) == [
        "an admin already exists; sign in as that admin and add operators on the Settings page",
        "created",
    ]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Operator).where(Operator.role == "admin")) == 1
