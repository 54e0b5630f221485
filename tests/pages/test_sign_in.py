"""No page shows data before sign-in; wrong passwords lock the account; idle sessions expire; roles apply at once."""

import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.models import AuditEntry, Operator
from engine.core.settings import Settings
from engine.operators.actions import Actor
from engine.operators.auth import update_operator
from engine.operators.sessions import issue_token, token_user
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


def test_sign_in_with_the_right_password_shows_the_page(app: Settings) -> None:
    at = sign_in(open_page("pages/1_Queue.py", user=None), "ann", PASSWORD)
    assert not at.exception
    assert at.title[0].value == "Queue"
    assert at.session_state["auth_user"]["username"] == "ann"
    assert "Signed in as **ann** · agent" in [caption.value for caption in at.sidebar.caption]


def test_repeated_failures_lock_the_account(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page("Home.py", user=None)
    for _ in range(app.DASHBOARD_MAX_FAILED_LOGINS):
        at = sign_in(at, "ann", "wrong password!")
        assert "Wrong username or password." in texts(at)
    at = sign_in(at, "ann", PASSWORD)
    assert "locked after repeated failures" in texts(at)
    assert "auth_user" not in at.session_state
    with session_factory() as session:
        assert session.scalar(select(Operator.locked_until).where(Operator.username == "ann")) is not None
        logged = session.scalars(select(AuditEntry.details).where(AuditEntry.action == "sign_in_failed")).all()
        assert PASSWORD not in str(logged) and "wrong password" not in str(logged)


def test_an_idle_session_expires(app: Settings) -> None:
    at = open_page("Home.py", "ann")
    assert at.title[0].value == "Today"
    at.session_state["auth_user"] = {**at.session_state["auth_user"], "last_seen": time.time() - 3600}
    at.run()
    assert "signed out after 30 minutes idle" in texts(at)
    assert [button.label for button in at.button] == ["Sign in"]


def test_a_demoted_operator_loses_rights_on_the_next_page_run(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = open_page("pages/6_Audit.py", "lee")
    assert at.title[0].value == "Audit log"
    with session_factory.begin() as session:
        update_operator(session, Actor("ada", Role.ADMIN), "lee", role=Role.AGENT)
    at.run()
    assert "needs the lead role or above; you are signed in as agent" in texts(at)
    assert not at.dataframe


def test_sign_out(app: Settings) -> None:
    at = open_page("Home.py", "ann")
    at.sidebar.button(key="sign_out").click().run()
    assert "You are signed out." in texts(at)
    assert [button.label for button in at.button] == ["Sign in"]


def test_sign_in_issues_a_signed_cookie_and_a_reload_with_it_stays_signed_in(
    app: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = sign_in(open_page("pages/1_Queue.py", user=None), "ann", PASSWORD)
    token = at.session_state["auth_cookie"]
    assert token_user(app, token)[0] == "ann"
    monkeypatch.setattr("ui.auth.browser_cookie", lambda: token)
    reloaded = open_page("pages/1_Queue.py", user=None)
    assert reloaded.title[0].value == "Queue"
    assert reloaded.session_state["auth_user"]["username"] == "ann"


def test_a_forged_or_expired_cookie_shows_the_sign_in_form(app: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    real = issue_token(app, "ann", 600)
    for cookie in (real[:-1] + ("0" if real[-1] != "0" else "1"), issue_token(app, "ann", 600, now=time.time() - 900)):
        monkeypatch.setattr("ui.auth.browser_cookie", lambda cookie=cookie: cookie)
        at = open_page("pages/1_Queue.py", user=None)
        assert [button.label for button in at.button] == ["Sign in"]


def test_signing_out_deletes_the_cookie_and_does_not_come_back_from_it(
    app: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ui.auth.browser_cookie", lambda: issue_token(app, "ann", 600))
    at = open_page("pages/1_Queue.py", user=None)
    at = at.button(key="sign_out").click().run()
    assert [button.label for button in at.button] == ["Sign in"]
    assert at.session_state["auth_cookie"] == ""
