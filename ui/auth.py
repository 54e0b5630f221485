"""The sign-in gate every page passes before it shows data: built-in accounts, optional OIDC through `st.login`.

The browser session holds only the username, the role and when it was last active; the role is read again
from the database on every page run, so a demotion or deactivation applies at once. A signed, expiring cookie
(engine/operators/sessions.py) brings the session back after a reload; signing out or idling out deletes it.
"""

from __future__ import annotations

import json
import time

import streamlit as st
import streamlit.components.v1 as components

from engine.core.db import transaction
from engine.core.enums import Role
from engine.operators.actions import RANK, Actor
from engine.operators.auth import (
    MIN_PASSWORD_LENGTH,
    OperatorError,
    authenticate,
    create_first_admin_with_code,
    current_actor,
    pending_setup_code,
    setup_code_path,
    sso_actor,
)
from engine.operators.sessions import issue_token, token_user
from engine.runtime import Runtime
from ui.runtime import app_runtime

SESSION_KEY = "auth_user"
NOTICE_KEY = "auth_notice"
COOKIE = "nts_session"
COOKIE_KEY = "auth_cookie"
"""Session state: the cookie value to write on the next run, or "" to delete it and never restore from it again."""


def sso_configured() -> bool:
    """OpenID Connect is on when `.streamlit/secrets.toml` has an [auth] section."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all is the common case
        return False


def _expired(runtime: Runtime) -> bool:
    user = st.session_state.get(SESSION_KEY)
    if not user:
        return False
    return time.time() - user["last_seen"] > runtime.settings.DASHBOARD_SESSION_IDLE_MINUTES * 60


def sign_out(notice: str = "") -> None:
    st.session_state.pop(SESSION_KEY, None)
    st.session_state[COOKIE_KEY] = ""
    if notice:
        st.session_state[NOTICE_KEY] = notice


def _remember(actor: Actor, method: str) -> None:
    st.session_state[SESSION_KEY] = {
        "username": actor.username,
        "role": actor.role.value,
        "method": method,
        "last_seen": time.time(),
    }


def _cookie_lifetime(runtime: Runtime) -> float:
    return runtime.settings.DASHBOARD_SESSION_IDLE_MINUTES * 60


def _issue_cookie(runtime: Runtime, actor: Actor) -> None:
    """Sign a fresh cookie for `actor`; it is written into the browser on the next page run."""
    token = issue_token(runtime.settings, actor.username, _cookie_lifetime(runtime))
    st.session_state[COOKIE_KEY] = token
    st.session_state["auth_cookie_expires"] = time.time() + _cookie_lifetime(runtime)


def _write_cookie() -> None:
    """Streamlit reads cookies but cannot set them: a zero-height component sets (or deletes) it in the page."""
    token = st.session_state.get(COOKIE_KEY)
    if token is None or st.session_state.get("auth_cookie_written") == token:
        return
    st.session_state["auth_cookie_written"] = token
    age = int(_cookie_lifetime(app_runtime())) if token else 0
    components.html(
        "<script>const secure = window.parent.location.protocol === 'https:' ? '; Secure' : '';"
        f"window.parent.document.cookie = {json.dumps(f'{COOKIE}={token}; Path=/; Max-Age={age}; SameSite=Strict')}"
        " + secure;</script>",
        height=0,
    )


def browser_cookie() -> str | None:
    """The session cookie the browser sent when this session connected."""
    return st.context.cookies.get(COOKIE)


def _cookie_actor(runtime: Runtime) -> Actor | None:
    """The operator a valid cookie names, unless this browser session signed out (its cookies are read once)."""
    if st.session_state.get(COOKIE_KEY) == "":
        return None
    named = token_user(runtime.settings, browser_cookie())
    if named is None:
        return None
    with runtime.factory() as session:
        actor = current_actor(session, named[0])
    if actor is not None:
        _remember(actor, "cookie")
        st.session_state["auth_cookie_expires"] = named[1]
    return actor


def _first_admin_form(runtime: Runtime) -> None:
    """First start: whoever can read the setup code on the server creates the first admin here."""
    st.title("No-Touch Support")
    st.subheader("Create the first admin")
    st.caption(
        f"No one can sign in yet. The setup code is in `{setup_code_path(runtime.settings)}` on the server "
        "(readable only by the account running the app)."
    )
    left, _ = st.columns([2, 3])
    with left.form("first_admin"):
        code = st.text_input("Setup code", type="password", key="setup_code")
        username = st.text_input("Admin username", key="setup_username")
        password = st.text_input(
            f"Password (at least {MIN_PASSWORD_LENGTH} characters)", type="password", key="setup_password"
        )
        repeated = st.text_input("Password again", type="password", key="setup_password_again")
        submitted = st.form_submit_button("Create admin", type="primary")
    if not submitted:
        return
    if password != repeated:
        left.error("The two passwords differ.")
        return
    try:
        with transaction(runtime.factory) as session:
            create_first_admin_with_code(session, runtime.settings, code, username, password)
    except OperatorError as error:
        left.error(str(error))
        return
    st.session_state[NOTICE_KEY] = f"Admin {username} created: sign in below."
    st.rerun()


def _sign_in_form(runtime: Runtime) -> None:
    with runtime.factory() as session:
        needs_first_admin = pending_setup_code(session, runtime.settings) is not None
    if needs_first_admin:
        _first_admin_form(runtime)
        return
    st.title("No-Touch Support")
    st.caption("Sign in to see the support desk.")
    if notice := st.session_state.pop(NOTICE_KEY, None):
        st.info(notice)
    left, _ = st.columns([2, 3])
    with left.form("sign_in"):
        username = st.text_input("Username", key="sign_in_username")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        with transaction(runtime.factory) as session:
            result = authenticate(session, runtime.settings, username, password)
        if result.actor is None:
            left.error(result.error or "Sign-in failed.")
        else:
            _remember(result.actor, "password")
            _issue_cookie(runtime, result.actor)
            st.rerun()
    if sso_configured():
        left.divider()
        if left.button("Sign in with single sign-on", key="sign_in_sso"):
            st.login()


def _sso_user(runtime: Runtime) -> Actor | None:
    if not sso_configured() or not st.user.is_logged_in:
        return None
    with transaction(runtime.factory) as session:
        result = sso_actor(session, runtime.settings, str(st.user.get("email") or ""), str(st.user.get("name") or ""))
    if result.actor is None:
        st.error(result.error or "Single sign-on was refused.")
        st.stop()
    _remember(result.actor, "sso")
    _issue_cookie(runtime, result.actor)
    return result.actor


def session_alive() -> bool:
    """For live fragments: False (and the page reloads to the sign-in form) once the session is idle too long."""
    if st.session_state.get(SESSION_KEY) and not _expired(app_runtime()):
        return True
    st.rerun()
    return False


def require_signed_in(min_role: Role = Role.VIEWER) -> Actor:
    """The signed-in operator with at least `min_role`; otherwise the sign-in form or a refusal, and stop."""
    runtime = app_runtime()
    if _expired(runtime):
        sign_out(f"You were signed out after {runtime.settings.DASHBOARD_SESSION_IDLE_MINUTES:g} minutes idle.")
    user = st.session_state.get(SESSION_KEY)
    actor: Actor | None = None
    if user:
        with runtime.factory() as session:
            actor = current_actor(session, user["username"])
        if actor is None:
            sign_out("Your account is no longer active.")
    if actor is None and not user:
        actor = _cookie_actor(runtime)
        user = st.session_state.get(SESSION_KEY)
    if actor is None:
        actor = _sso_user(runtime)
    if actor is None:
        _write_cookie()
        _sign_in_form(runtime)
        st.stop()
    assert actor is not None
    _remember(actor, st.session_state[SESSION_KEY]["method"] if user else "sso")
    if st.session_state.get("auth_cookie_expires", 0) - time.time() < _cookie_lifetime(runtime) / 2:
        _issue_cookie(runtime, actor)
    _write_cookie()
    _sidebar(actor)
    if RANK[actor.role] < RANK[min_role]:
        st.error(f"This page needs the {min_role.value} role or above; you are signed in as {actor.role.value}.")
        st.stop()
    return actor


def _sidebar(actor: Actor) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{actor.username}** · {actor.role.value}")
        if st.button("Sign out", key="sign_out"):
            method = st.session_state.get(SESSION_KEY, {}).get("method")
            sign_out("You are signed out.")
            if method == "sso":
                st.logout()
            st.rerun()


def allowed(actor: Actor, role: Role) -> bool:
    return RANK[actor.role] >= RANK[role]
