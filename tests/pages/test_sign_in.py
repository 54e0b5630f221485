"""No page shows data before sign-in; failures answer alike for every name and only delay; a session ends on the
server (sign-out, everywhere, password, deactivation, role, idle, absolute limit) and every copy of its cookie
with it."""

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import engine.runtime
from engine.core.enums import Role
from engine.core.models import AuditEntry, OperatorSession, utcnow
from engine.core.settings import ConfigurationError, Settings
from engine.operators import sign_in_throttle
from engine.operators.auth import sign_out_everywhere, update_operator
from engine.operators.permissions import Actor
from tests.factories import age_session, session_cookie
from tests.pages.conftest import PASSWORD, open_page, sign_in, texts
from tests.pages.seed import escalated

PAGES = [
    "Home.py",
    "pages/1_Queue.py",
    "pages/2_Ticket.py",
    "pages/3_Knowledge_Base.py",
    "pages/4_Metrics.py",
    "pages/5_Settings.py",
    "pages/6_Audit.py",
]
ADMIN = Actor("ada", Role.ADMIN)


def with_cookie(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    """The browser sends `token` as its session cookie (and no trusted-browser cookie)."""
    monkeypatch.setattr("ui.auth.browser_cookie", lambda name="nts_session": token if name == "nts_session" else None)


@pytest.fixture
def cookie_of(
    app: Settings, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], int]:
    """Signs an operator in the way a browser holds it: by cookie alone. Returns the session's id."""

    def signed_in(username: str) -> int:
        session_id, token = session_cookie(session_factory, app, username)
        with_cookie(monkeypatch, token)
        return session_id

    return signed_in


def cookie_calls(at) -> list[tuple[str, str]]:
    """(route, body) of every request the page asks the browser to post to the session routes."""
    calls = []
    for frame in at.get("iframe"):
        if frame.proto.alt != "session cookie":
            continue
        script = frame.proto.srcdoc.removeprefix("<script>fetch(").removesuffix(");</script>")
        url, request = json.loads(f"[{script}]")
        calls.append((url, request["body"]))
    return calls


def signed_out(at) -> bool:
    return [button.label for button in at.button] == ["Sign in"] and "auth_user" not in at.session_state


@pytest.mark.parametrize("page", PAGES)
def test_every_page_asks_for_sign_in_before_showing_data(
    app: Settings, session_factory: sessionmaker[Session], page: str
) -> None:
    escalated(session_factory, app, subject="Secret payroll question")
    at = open_page(page, user=None, id="1")
    assert not at.exception
    assert [button.label for button in at.button] == ["Sign in"]
    assert "Secret payroll" not in texts(at)
    assert not at.dataframe and not at.metric


def test_sign_in_with_the_right_password_starts_a_server_session(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = sign_in(open_page("pages/1_Queue.py", user=None), "ann", PASSWORD)
    assert not at.exception
    assert at.title[0].value == "Queue"
    assert at.session_state["auth_user"]["username"] == "ann"
    assert "Signed in as **ann** · agent" in [caption.value for caption in at.sidebar.caption]
    with session_factory() as session:
        row = session.get(OperatorSession, at.session_state["auth_user"]["session_id"])
        assert row is not None and row.method == "password" and row.token_hash is None
        assert row.expires_at - row.created_at == timedelta(hours=app.DASHBOARD_SESSION_MAX_HOURS)
    assert cookie_calls(at) == [("/api/session", at.session_state["auth_handoff"])], "the page fetches its cookie"


def test_a_known_and_an_unknown_name_get_the_same_answers(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    """Wrong passwords, then a back-off: word for word the same whether the account exists or not."""
    answers: dict[str, list[str]] = {}
    for name in ("ann", "nobody"):
        at = open_page("Home.py", user=None)
        seen = []
        for _ in range(app.DASHBOARD_MAX_FAILED_LOGINS):
            at = sign_in(at, name, "wrong password!")
            seen.append(" ".join(error.value for error in at.error))
        with session_factory.begin() as session:  # many clients failed on this name just now
            counter = sign_in_throttle.account_counter(app, name)
            for _ in range(counter[1] + 20):
                sign_in_throttle.record_failure(session, [counter], utcnow())
        at = sign_in(at, name, PASSWORD)
        seen.append(" ".join(error.value for error in at.error).rstrip("0123456789 s."))
        answers[name] = seen
    assert answers["ann"] == answers["nobody"]
    assert answers["ann"] == ["Wrong username or password."] * app.DASHBOARD_MAX_FAILED_LOGINS + [
        "Too many failed sign-ins: try again in"
    ]
    with session_factory() as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action.like("sign_in%"))).all()
    assert [entry.action for entry in audit].count("sign_in_failed") == 2 * app.DASHBOARD_MAX_FAILED_LOGINS
    assert [entry.action for entry in audit].count("sign_in_refused") == 2
    assert "wrong password!" not in str([(entry.actor, entry.details) for entry in audit])
    assert "nobody" not in str([(entry.actor, entry.target_id, entry.details) for entry in audit])


def test_failures_in_one_browser_do_not_keep_the_operator_out_of_another(app: Settings) -> None:
    attacker = open_page("Home.py", user=None)
    for _ in range(app.DASHBOARD_MAX_FAILED_LOGINS):
        attacker = sign_in(attacker, "ada", "guessing again")
    owner = sign_in(open_page("Home.py", user=None), "ada", PASSWORD)
    assert owner.title[0].value == "Today"
    assert owner.session_state["auth_user"]["username"] == "ada"


def test_an_idle_session_ends_on_the_server(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page("Home.py", "ann")
    assert at.title[0].value == "Today"
    session_id = at.session_state["auth_user"]["session_id"]
    age_session(session_factory, session_id, idle=timedelta(minutes=app.DASHBOARD_SESSION_IDLE_MINUTES + 1))
    at.run()
    assert "signed out after 30 minutes idle" in texts(at)
    assert signed_out(at)
    with session_factory() as session:
        assert session.get(OperatorSession, session_id).revoked_reason == "idle"


def test_a_session_ends_at_its_absolute_limit_however_active(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = open_page("Home.py", "ann")
    session_id = at.session_state["auth_user"]["session_id"]
    age_session(session_factory, session_id, signed_in=timedelta(hours=app.DASHBOARD_SESSION_MAX_HOURS))
    at.run()
    assert "reached its limit of 12 hours" in texts(at)
    assert signed_out(at)


def test_a_role_change_ends_the_session(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page("pages/6_Audit.py", "lee")
    assert at.title[0].value == "Audit log"
    with session_factory.begin() as session:
        update_operator(session, ADMIN, "lee", role=Role.AGENT)
    at.run()
    assert "Your role was changed: sign in again." in texts(at)
    assert signed_out(at) and not at.dataframe


def test_a_reload_with_the_cookie_stays_signed_in(
    session_factory: sessionmaker[Session], cookie_of: Callable[[str], int]
) -> None:
    session_id = cookie_of("ann")
    reloaded = open_page("pages/1_Queue.py", user=None)
    assert reloaded.title[0].value == "Queue"
    assert reloaded.session_state["auth_user"]["session_id"] == session_id


REVOCATIONS: dict[str, tuple[Callable[[Session], object], str]] = {
    "signed out everywhere": (
        lambda session: sign_out_everywhere(session, Actor("ann", Role.AGENT), "ann"),
        "signed_out_everywhere",
    ),
    "password changed": (
        lambda session: update_operator(session, ADMIN, "ann", password="a brand new password"),
        "password_changed",
    ),
    "deactivated": (lambda session: update_operator(session, ADMIN, "ann", active=False), "deactivated"),
    "role changed": (lambda session: update_operator(session, ADMIN, "ann", role=Role.VIEWER), "role_changed"),
}


@pytest.mark.parametrize("change", sorted(REVOCATIONS))
def test_a_copied_cookie_is_refused_once_its_session_is_ended(
    session_factory: sessionmaker[Session], cookie_of: Callable[[str], int], change: str
) -> None:
    """The finding: a copied admin cookie kept working after sign-out and a password change."""
    session_id = cookie_of("ann")
    victim = open_page("pages/1_Queue.py", user=None)
    thief = open_page("pages/1_Queue.py", user=None)
    assert victim.title[0].value == thief.title[0].value == "Queue"
    revoke, reason = REVOCATIONS[change]
    with session_factory.begin() as session:
        revoke(session)
    assert signed_out(thief.run())
    assert signed_out(open_page("pages/1_Queue.py", user=None)), "a new tab with the copied cookie"
    with session_factory() as session:
        assert session.get(OperatorSession, session_id).revoked_reason == reason


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(
    session_factory: sessionmaker[Session], cookie_of: Callable[[str], int]
) -> None:
    session_id = cookie_of("ann")
    at = open_page("pages/1_Queue.py", user=None)
    thief = open_page("pages/1_Queue.py", user=None)
    at = at.sidebar.button(key="sign_out").click().run()
    assert "You are signed out." in texts(at)
    assert signed_out(at)
    assert cookie_calls(at) == [("/api/session/end", str(session_id))], "the browser is told to drop the cookie"
    assert signed_out(thief.run())
    assert signed_out(open_page("pages/1_Queue.py", user=None))
    with session_factory() as session:
        ended = session.scalars(select(AuditEntry).where(AuditEntry.action == "session_ended")).all()
    assert [(entry.actor, entry.details["reason"]) for entry in ended] == [("ann", "signed_out")]


def test_sign_out_everywhere_from_the_sidebar(
    session_factory: sessionmaker[Session], cookie_of: Callable[[str], int]
) -> None:
    cookie_of("ann")
    laptop_tab = open_page("Home.py", user=None)
    phone_tab = open_page("Home.py", "ann")
    phone_tab = phone_tab.sidebar.button(key="sign_out_everywhere").click().run()
    assert "You are signed out in every browser (2 session(s) ended)." in texts(phone_tab)
    assert signed_out(laptop_tab.run())


def test_an_admin_signs_another_operator_out_everywhere(
    session_factory: sessionmaker[Session], cookie_of: Callable[[str], int]
) -> None:
    cookie_of("lee")
    lees_tab = open_page("Home.py", user=None)
    assert lees_tab.title[0].value == "Today"
    settings_page = open_page("pages/5_Settings.py", "ada")
    settings_page.selectbox(key="operator_pick").select("lee").run()
    assert "**Open sessions: 1**" in texts(settings_page)
    assert "test browser" in texts(settings_page), "where the session was started"
    settings_page.button(key="operator_sign_out_everywhere_lee").click().run()
    assert "lee: 1 session(s) ended." in texts(settings_page)
    assert signed_out(lees_tab.run())


@pytest.mark.parametrize(
    "cookie",
    ["", "not-a-token", "é" * 43, "😀" * 43, "a" * 42 + "é", "A" * 43, "x" * 5000],
    ids=["empty", "garbled", "latin", "emoji", "one-non-ascii", "unknown", "huge"],
)
def test_a_garbled_forged_or_non_ascii_cookie_shows_the_sign_in_form(
    app: Settings, monkeypatch: pytest.MonkeyPatch, cookie: str
) -> None:
    with_cookie(monkeypatch, cookie)
    for page in PAGES:
        at = open_page(page, user=None)
        assert not at.exception, page
        assert signed_out(at), page


def test_the_next_operator_in_the_same_tab_sees_nothing_the_last_one_left(app: Settings) -> None:
    at = open_page("pages/3_Knowledge_Base.py", "lee")
    at.session_state["kb_last_upload"] = [{"file": "router.md", "status": "indexed", "chunks": 1, "error": ""}]
    at = at.run()
    assert "Last upload" in texts(at)
    at = at.sidebar.button(key="sign_out").click().run()
    assert signed_out(at)
    at = sign_in(at, "ada", PASSWORD)
    assert not at.exception and not signed_out(at)
    assert "Last upload" not in texts(at) and "kb_last_upload" not in at.session_state


def test_the_sign_in_form_needs_only_the_ticket_store(app: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a restart the form is shown before the transport and connectors are built: here the transport cannot
    be built at all, and only the signed-in page says so."""

    def broken(*_: object) -> None:
        raise ConfigurationError("SMTP_HOST: the mail transport cannot be built")

    monkeypatch.setattr(engine.runtime, "make_transport", broken)
    at = open_page("Home.py", user=None)
    assert not at.exception
    assert not at.error
    assert at.text_input(key="sign_in_username")
    signed_in = sign_in(at, "ann", PASSWORD)
    assert "The app cannot start: SMTP_HOST: the mail transport cannot be built" in texts(signed_in)
