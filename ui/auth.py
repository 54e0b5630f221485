"""The sign-in gate every page passes before it shows data: built-in accounts, optional OIDC through `st.login`.

A sign-in is a server-side session (engine/operators/sessions.py). The browser session holds only its id and the
names shown in the sidebar; every page run asks the database whether the session still lives and what the
operator's role is now, so a sign-out elsewhere, a password change, a deactivation or a role change applies at
once, in every tab and every browser. A reload comes back through an HttpOnly cookie that the server sets
(ui/session_routes.py, mounted by app.py): the page posts a one-time code, never the token itself.
"""

from __future__ import annotations

import json
import logging
import secrets

import streamlit as st
from sqlalchemy.orm import Session
from streamlit.delta_generator import DeltaGenerator

from engine.core.db import transaction
from engine.core.enums import Role
from engine.core.store import TicketStore
from engine.operators.auth import (
    MIN_PASSWORD_LENGTH,
    OperatorError,
    SignInAttempt,
    authenticate,
    create_first_admin_with_code,
    pending_setup_code,
    setup_code_path,
    sign_out_everywhere,
    sso_actor,
)
from engine.operators.permissions import RANK, Actor, PermissionDeniedError
from engine.operators.sessions import (
    LiveSession,
    end_session,
    open_sessions,
    resume_from_cookie,
    resume_session,
    session_end_reason,
    start_session,
)
from engine.operators.sign_in_throttle import client_address
from ui import session_routes
from ui.runtime import app_store

log = logging.getLogger(__name__)

SESSION_KEY = "auth_user"
"""{"username", "role", "method", "session_id"} of the signed-in operator; the database decides whether it holds."""
NOTICE_KEY = "auth_notice"
HANDOFF_KEY = "auth_handoff"
"""The one-time code this browser still has to exchange for its cookie."""
SIGNED_OUT_KEY = "auth_signed_out"
"""Set when this tab's session ended: the cookie this browser sent when it connected is not read again."""
FORGET_COOKIE_KEY = "auth_forget_cookie"
"""The id of the session whose cookie the next page run deletes (only if the browser's cookie still names it)."""
CLIENT_KEY = "auth_client"
COOKIE = session_routes.COOKIE
_warned_unmounted = False


def sso_configured() -> bool:
    """OpenID Connect is on when `.streamlit/secrets.toml` has an [auth] section."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all is the common case
        return False


def _text(value: object) -> str | None:
    """A value from st.context as text, or None (AppTest, for one, has no browser behind it)."""
    return value if isinstance(value, str) else None


def browser_cookie(name: str = COOKIE) -> str | None:
    """A cookie the browser sent when this session connected (HttpOnly cookies included)."""
    return _text(st.context.cookies.get(name))


def _address(store: TicketStore) -> str | None:
    return client_address(
        _text(st.context.ip_address),
        _text(st.context.headers.get("X-Forwarded-For")),
        store.settings.DASHBOARD_TRUSTED_PROXIES,
    )


def _client(store: TicketStore) -> str:
    """Who is trying to sign in, for the back-off: the address, or this browser session when it is unknown."""
    address = _address(store)
    if address:
        return address
    if CLIENT_KEY not in st.session_state:
        st.session_state[CLIENT_KEY] = secrets.token_hex(6)
    return f"browser session {st.session_state[CLIENT_KEY]}"


def _client_hint(store: TicketStore) -> str:
    agent = _text(st.context.headers.get("User-Agent")) or "unknown browser"
    return f"{_address(store) or 'this machine or a local proxy'} · {agent}"[:200]


_ENDED = {
    "idle": "You were signed out after {idle:g} minutes idle.",
    "expired": "Your session reached its limit of {hours:g} hours: sign in again.",
    "signed_out": "You are signed out.",
    "signed_out_everywhere": "You were signed out in every browser.",
    "password_changed": "Your password was changed: sign in again.",
    "deactivated": "Your account is no longer active.",
    "role_changed": "Your role was changed: sign in again.",
}


def _ended_notice(store: TicketStore, reason: str | None) -> str:
    settings = store.settings
    text = _ENDED.get(reason or "", "You are signed out.")
    return text.format(idle=settings.DASHBOARD_SESSION_IDLE_MINUTES, hours=settings.DASHBOARD_SESSION_MAX_HOURS)


def _remember(live: LiveSession) -> None:
    st.session_state[SESSION_KEY] = {
        "username": live.actor.username,
        "role": live.actor.role.value,
        "method": live.method,
        "session_id": live.id,
    }


def _begin(store: TicketStore, session: Session, actor: Actor, method: str) -> None:
    """Start a server-side session for `actor` inside the caller's transaction."""
    started = start_session(session, store.settings, actor.username, method, client_hint=_client_hint(store))
    st.session_state[SESSION_KEY] = {
        "username": actor.username,
        "role": actor.role.value,
        "method": method,
        "session_id": started.id,
    }
    st.session_state[HANDOFF_KEY] = started.handoff
    st.session_state.pop(SIGNED_OUT_KEY, None)


KEPT_ACROSS_OPERATORS = frozenset({CLIENT_KEY, FORGET_COOKIE_KEY})
"""What this browser tab keeps when its operator's session ends: its sign-in back-off identity and the cookie still
to delete. Everything else (the last upload, queue filters, drafts being typed, pages' notices) was the operator's."""


def _forget(session_id: int, notice: str) -> None:
    """This tab's session ended: forget it and everything its operator left in the tab (the next operator to sign in
    here sees none of it), and delete its cookie on the next page run."""
    for key in [key for key in st.session_state if key not in KEPT_ACROSS_OPERATORS]:
        del st.session_state[key]
    st.session_state[SIGNED_OUT_KEY] = True
    st.session_state[FORGET_COOKIE_KEY] = session_id
    st.session_state[NOTICE_KEY] = notice


def sign_out(notice: str = "You are signed out.") -> None:
    """End this browser's session on the server and delete its cookie (on the next page run)."""
    user = st.session_state.get(SESSION_KEY)
    if not user:
        return
    with transaction(app_store().factory) as session:
        end_session(session, user["session_id"], by=user["username"])
    _forget(user["session_id"], notice)


def _current(store: TicketStore, *, touch: bool) -> LiveSession | None:
    """The session this browser signed in with, or the one its cookie names; None (with a notice) once it ended."""
    user = st.session_state.get(SESSION_KEY)
    if user:
        with transaction(store.factory) as session:
            live = resume_session(session, store.settings, user["session_id"], touch=touch)
            reason = None if live else session_end_reason(session, user["session_id"])
        if live is None:
            _forget(user["session_id"], _ended_notice(store, reason))
        return live
    if st.session_state.get(SIGNED_OUT_KEY):
        return None
    token = browser_cookie()
    if not token:
        return None
    with transaction(store.factory) as session:
        live = resume_from_cookie(session, store.settings, token)
    if live is not None:
        _remember(live)
    return live


def _post(route: str, body: str) -> None:
    """A zero-height frame whose script posts to one of our session routes; the answer's Set-Cookie does the rest."""
    global _warned_unmounted
    if not session_routes.mounted and not _warned_unmounted:
        _warned_unmounted = True
        log.warning("The dashboard was started without app.py: a reload signs operators out (`streamlit run app.py`)")
    request = {
        "method": "POST",
        "credentials": "same-origin",
        "headers": {session_routes.REQUEST_HEADER: "1", "Content-Type": "text/plain"},
        "body": body,
    }
    script = f"fetch({json.dumps(session_routes.route_url(route))}, {json.dumps(request)});"
    st.iframe(f"<script>{script}</script>", height="content", alt="session cookie")


def _cookie_calls(live: LiveSession | None) -> None:
    """Hand the browser its cookie while it has none yet; delete it once after this tab's session ended."""
    if live is not None and live.cookie_pending and st.session_state.get(HANDOFF_KEY):
        _post(session_routes.EXCHANGE, st.session_state[HANDOFF_KEY])
    elif live is not None:
        st.session_state.pop(HANDOFF_KEY, None)
    if live is None and FORGET_COOKIE_KEY in st.session_state:
        _post(session_routes.END, str(st.session_state.pop(FORGET_COOKIE_KEY)))


def _first_admin_form(store: TicketStore) -> None:
    """First start: whoever can read the setup code on the server creates the first admin here."""
    st.title("No-Touch Support")
    st.subheader("Create the first admin")
    st.caption(
        f"No one can sign in yet. The setup code is in `{setup_code_path(store.settings)}` on the server "
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
        with transaction(store.factory) as session:
            create_first_admin_with_code(session, store.settings, code, username, password)
    except OperatorError as error:
        left.error(str(error))
        return
    st.session_state[NOTICE_KEY] = f"Admin {username} created: sign in below."
    st.rerun()


def _sign_in_form(store: TicketStore) -> None:
    with store.factory() as session:
        needs_first_admin = pending_setup_code(session, store.settings) is not None
    if needs_first_admin:
        _first_admin_form(store)
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
        attempt = SignInAttempt(_client(store), browser_cookie(session_routes.DEVICE_COOKIE))
        with transaction(store.factory) as session:
            result = authenticate(session, store.settings, username, password, attempt)
            if result.actor is not None:
                _begin(store, session, result.actor, "password")
        if result.actor is None:
            left.error(result.error or "Sign-in failed.")
        else:
            st.rerun()
    if sso_configured():
        left.divider()
        if left.button("Sign in with single sign-on", key="sign_in_sso"):
            st.login()


def _sso_session(store: TicketStore) -> LiveSession | None:
    """A fresh single sign-on identity starts a session; an old one (Streamlit keeps it 30 days) is sent back to
    the provider."""
    if not sso_configured() or not st.user.is_logged_in:
        return None
    issued = st.user.get("iat")
    with transaction(store.factory) as session:
        result = sso_actor(
            session,
            store.settings,
            str(st.user.get("email") or ""),
            str(st.user.get("name") or ""),
            issued_at=float(issued) if isinstance(issued, int | float) else None,
        )
        if result.actor is not None:
            _begin(store, session, result.actor, "sso")
    if result.actor is None:
        st.session_state[NOTICE_KEY] = result.error or "Single sign-on was refused."
        return None
    with transaction(store.factory) as session:
        return resume_session(session, store.settings, st.session_state[SESSION_KEY]["session_id"])


def session_alive() -> bool:
    """For live fragments: False (and the page reloads to the sign-in form) once the session has ended; a refresh
    is not activity, so it does not keep an idle session alive."""
    return live_actor(activity=False) is not None


def live_actor(activity: bool) -> Actor | None:
    """For fragments, which rerun without the page's sign-in gate: the operator as the session now stands (a role
    changed since the page loaded counts), or None (and the page reloads to the sign-in form) once it has ended.
    A timed refresh is not activity; a click that reruns only its fragment is, as on a whole page."""
    if st.session_state.get(SESSION_KEY) and (live := _current(app_store(), touch=activity)) is not None:
        return live.actor
    st.rerun()
    return None


def require_signed_in(min_role: Role = Role.VIEWER) -> Actor:
    """The signed-in operator with at least `min_role`; otherwise the sign-in form or a refusal, and stop."""
    store = app_store()
    live = _current(store, touch=True)
    if live is None and not st.session_state.get(SESSION_KEY):
        live = _sso_session(store)
    _cookie_calls(live)
    if live is None:
        _sign_in_form(store)
        st.stop()
    assert live is not None
    actor = live.actor
    _remember(live)
    _sidebar(store, actor)
    if RANK[actor.role] < RANK[min_role]:
        st.error(f"This page needs the {min_role.value} role or above; you are signed in as {actor.role.value}.")
        st.stop()
    return actor


def _sidebar(store: TicketStore, actor: Actor) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{actor.username}** · {actor.role.value}")
        if st.button("Sign out", key="sign_out"):
            method = st.session_state.get(SESSION_KEY, {}).get("method")
            sign_out("You are signed out.")
            if method == "sso":
                st.logout()
            st.rerun()
        if st.button(
            "Sign out everywhere",
            key="sign_out_everywhere",
            help="Ends your sessions in every browser, this one included (a lost laptop, a shared computer).",
        ):
            user = st.session_state[SESSION_KEY]
            with transaction(store.factory) as session:
                ended = sign_out_everywhere(session, actor, actor.username)
            _forget(user["session_id"], f"You are signed out in every browser ({ended} session(s) ended).")
            if user["method"] == "sso":
                st.logout()
            st.rerun()


def sessions_panel(store: TicketStore, actor: Actor, username: str, container: DeltaGenerator) -> None:
    """An admin's view of one operator's open sessions, with "sign out everywhere" for them."""
    with store.factory() as session:
        rows = open_sessions(session, store.settings, username)
    container.markdown(f"**Open sessions: {len(rows)}**")
    for row in rows:  # plain text: the browser's description is whatever the browser sent
        container.text(
            f"since {row.created_at:%Y-%m-%d %H:%M} UTC · last active {row.last_seen_at:%H:%M} · ends by "
            f"{row.expires_at:%Y-%m-%d %H:%M} · {row.method} · {row.client_hint}"
        )
    if container.button(f"Sign {username} out everywhere", key=f"operator_sign_out_everywhere_{username}"):
        try:
            with transaction(store.factory) as session:
                ended = sign_out_everywhere(session, actor, username)
        except (PermissionDeniedError, LookupError) as error:
            container.error(f"Not signed out: {error}")
            return
        st.session_state[NOTICE_KEY] = f"{username}: {ended} session(s) ended."
        st.rerun()
    if (notice := st.session_state.get(NOTICE_KEY)) and notice.startswith(f"{username}: "):
        container.success(st.session_state.pop(NOTICE_KEY))


def allowed(actor: Actor, role: Role) -> bool:
    return RANK[actor.role] >= RANK[role]
