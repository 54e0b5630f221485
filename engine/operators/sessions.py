"""Dashboard sessions the server can end: one row per sign-in, a random token in an HttpOnly cookie, its hash here.

How a browser gets its cookie: a sign-in (a Streamlit page run) makes the row and a one-time handoff code that
lives a minute; the page posts the code to the dashboard's own route (ui/session_routes.py), which answers with
the cookie (HttpOnly, SameSite=Strict, Secure behind https). Page JavaScript sees the code, never the token.

Every page run checks the row: ended, idle longer than DASHBOARD_SESSION_IDLE_MINUTES or past its absolute expiry
(DASHBOARD_SESSION_MAX_HOURS after sign-in, never moved) means signed out, in every browser that holds a copy.
Sign-out, "sign out everywhere", a password change, a deactivation and a role change end rows (engine/operators/
auth.py); each start and end is in the audit log.

A trusted-browser token (a second cookie, signed with the installation's key) says "this browser signed in as
operator N before"; it grants nothing but an exemption from the per-name sign-in back-off (sign_in_throttle.py),
so a stranger failing on purpose cannot keep that operator out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from engine.core.enums import Role
from engine.core.models import Operator, OperatorSession, utcnow
from engine.core.private_files import read_or_create_secret
from engine.core.settings import Settings
from engine.core.timeline import record_audit
from engine.operators.permissions import Actor

HANDOFF_LIFETIME = timedelta(seconds=60)
TOUCH_EVERY = timedelta(seconds=60)
"""A session's last activity is written at most once a minute, not on every page run."""
KEEP_ENDED = timedelta(days=30)
"""Ended and expired rows stay this long for the operators' session lists, then go."""
DEVICE_LIFETIME = timedelta(days=90)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
"""secrets.token_urlsafe(32): anything else (garbled, truncated, non-ASCII) is refused before any look-up."""


@dataclass(frozen=True)
class StartedSession:
    id: int
    handoff: str
    """One-time code the page exchanges for the cookie, within HANDOFF_LIFETIME."""
    expires_at: datetime


@dataclass(frozen=True)
class LiveSession:
    id: int
    actor: Actor
    method: str
    expires_at: datetime
    cookie_pending: bool
    """The browser has not fetched its cookie yet and still may (its one-time code has not expired)."""


@dataclass(frozen=True)
class SessionCookie:
    token: str
    max_age: int
    """Seconds until the session's absolute expiry: the browser forgets the cookie when the server does."""
    operator_id: int


def signing_key_path(settings: Settings) -> Path:
    return settings.DATA_DIR / "session-signing-key"


def _signing_key(settings: Settings) -> bytes:
    """DASHBOARD_SESSION_SECRET, or the installation's key, made on first use (0600) in DATA_DIR."""
    configured = settings.DASHBOARD_SESSION_SECRET.get_secret_value()
    if configured:
        return configured.encode()
    return read_or_create_secret(signing_key_path(settings), lambda: secrets.token_hex(32)).encode()


def keyed_digest(settings: Settings, purpose: str, value: str) -> str:
    """An HMAC of `value` under the installation's key: a stable name for it that does not reveal it."""
    message = f"{purpose}\n{value}".encode("utf-8", "replace")
    return hmac.new(_signing_key(settings), message, hashlib.sha256).hexdigest()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _well_formed(token: str | None) -> bool:
    return bool(token) and _TOKEN.fullmatch(token or "") is not None


def _now(now: datetime | None) -> datetime:
    return utcnow() if now is None else now


def _operator(session: Session, username: str) -> Operator | None:
    return session.scalar(select(Operator).where(func.lower(Operator.username) == username.strip().lower()))


def start_session(
    session: Session,
    settings: Settings,
    username: str,
    method: str,
    *,
    client_hint: str = "",
    now: datetime | None = None,
) -> StartedSession:
    """A new session for a person who just proved who they are; the caller commits."""
    now = _now(now)
    operator = _operator(session, username)
    if operator is None:
        raise LookupError(f"no operator named {username}")
    session.execute(delete(OperatorSession).where(OperatorSession.expires_at < now - KEEP_ENDED))
    handoff = secrets.token_urlsafe(32)
    row = OperatorSession(
        operator_id=operator.id,
        handoff_hash=_digest(handoff),
        handoff_expires_at=now + HANDOFF_LIFETIME,
        method=method,
        client_hint=client_hint[:200],
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.DASHBOARD_SESSION_MAX_HOURS),
    )
    session.add(row)
    session.flush()
    record_audit(
        session, operator.username, "session_started", "operator", operator.id, session_id=row.id, method=method
    )
    return StartedSession(row.id, handoff, row.expires_at)


def exchange_handoff(
    session: Session, settings: Settings, code: str | None, *, now: datetime | None = None
) -> SessionCookie | None:
    """The cookie for a live session whose page posts its one-time code; None for any other code. A code works once:
    of two posts racing with the same code, one gets the cookie."""
    now = _now(now)
    if not _well_formed(code):
        return None
    assert code is not None
    row = session.scalar(select(OperatorSession).where(OperatorSession.handoff_hash == _digest(code)))
    if row is None or row.handoff_expires_at is None or row.handoff_expires_at <= now:
        return None
    if _live(session, settings, row, now, touch=False) is None:
        return None
    token = secrets.token_urlsafe(32)
    claimed = session.execute(
        update(OperatorSession)
        .where(OperatorSession.id == row.id, OperatorSession.handoff_hash == _digest(code))
        .values(token_hash=_digest(token), handoff_hash=None, handoff_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return None
    return SessionCookie(token, max(1, int((row.expires_at - now).total_seconds())), row.operator_id)


def resume_session(
    session: Session, settings: Settings, session_id: int, *, now: datetime | None = None, touch: bool = True
) -> LiveSession | None:
    """The session this browser tab signed in with, if it still lives; `touch` counts this page run as activity.
    The caller commits (an idle or expired session is marked ended)."""
    return _live(session, settings, session.get(OperatorSession, session_id), _now(now), touch=touch)


def resume_from_cookie(
    session: Session, settings: Settings, token: str | None, *, now: datetime | None = None
) -> LiveSession | None:
    """The session a browser's cookie names, if it still lives (a reload, a new tab, or a copied cookie)."""
    if not _well_formed(token):
        return None
    assert token is not None
    row = session.scalar(select(OperatorSession).where(OperatorSession.token_hash == _digest(token)))
    return _live(session, settings, row, _now(now), touch=True)


def _live(
    session: Session, settings: Settings, row: OperatorSession | None, now: datetime, *, touch: bool
) -> LiveSession | None:
    if row is None or row.revoked_at is not None:
        return None
    operator = session.get(Operator, row.operator_id)
    if operator is None or not operator.is_active:
        _end(session, row, operator, "deactivated", by="desk", now=now)
        return None
    if now >= row.expires_at:
        _end(session, row, operator, "expired", by="desk", now=now)
        return None
    if now - row.last_seen_at > timedelta(minutes=settings.DASHBOARD_SESSION_IDLE_MINUTES):
        _end(session, row, operator, "idle", by="desk", now=now)
        return None
    if touch and now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return LiveSession(
        id=row.id,
        actor=Actor(operator.username, Role(operator.role)),
        method=row.method,
        expires_at=row.expires_at,
        cookie_pending=row.token_hash is None and row.handoff_expires_at is not None and row.handoff_expires_at > now,
    )


def _end(
    session: Session, row: OperatorSession, operator: Operator | None, reason: str, *, by: str, now: datetime
) -> None:
    row.revoked_at, row.revoked_reason = now, reason
    row.handoff_hash = row.handoff_expires_at = None
    name = operator.username if operator is not None else str(row.operator_id)
    record_audit(session, by, "session_ended", "operator", row.operator_id, session_id=row.id, reason=reason, of=name)


def end_session(
    session: Session, session_id: int, *, by: str, reason: str = "signed_out", now: datetime | None = None
) -> bool:
    """End one session (sign-out); False when it had ended already."""
    row = session.get(OperatorSession, session_id)
    if row is None or row.revoked_at is not None:
        return False
    _end(session, row, session.get(Operator, row.operator_id), reason, by=by, now=_now(now))
    return True


def end_session_of_cookie(session: Session, token: str | None, session_id: int, *, now: datetime | None = None) -> bool:
    """End the session a cookie names, if it is `session_id` (the page that asks knows which session it had; a
    cookie a newer sign-in replaced is left alone). True when the browser may forget its cookie."""
    if not _well_formed(token):
        return False
    assert token is not None
    row = session.scalar(select(OperatorSession).where(OperatorSession.token_hash == _digest(token)))
    if row is None or row.id != session_id:
        return False
    operator = session.get(Operator, row.operator_id)
    end_session(session, row.id, by=operator.username if operator else "desk", now=now)
    return True


def session_end_reason(session: Session, session_id: int) -> str | None:
    """Why a session ended ("idle", "signed_out_everywhere", ...); None while it lives or when it is unknown."""
    row = session.get(OperatorSession, session_id)
    return row.revoked_reason if row is not None else None


def all_sessions_ended_since(session: Session, operator_id: int, since: datetime) -> bool:
    """Whether all of the operator's sessions were ended (sign-out everywhere, password, deactivation, role) after
    `since`: an identity proven before that must not start a new session."""
    operator = session.get(Operator, operator_id)
    return operator is not None and operator.sessions_ended_at is not None and operator.sessions_ended_at >= since


def end_all_sessions(session: Session, username: str, *, by: str, reason: str, now: datetime | None = None) -> int:
    """End every session of `username` that has not ended yet, in every browser; how many were ended."""
    now = _now(now)
    operator = _operator(session, username)
    if operator is None:
        raise LookupError(f"no operator named {username}")
    rows = session.scalars(
        select(OperatorSession).where(OperatorSession.operator_id == operator.id, OperatorSession.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at, row.revoked_reason = now, reason
        row.handoff_hash = row.handoff_expires_at = None
    operator.sessions_ended_at = now
    record_audit(
        session, by, "sessions_ended", "operator", operator.id, of=operator.username, reason=reason, count=len(rows)
    )
    return len(rows)


def open_sessions(
    session: Session, settings: Settings, username: str, *, now: datetime | None = None
) -> list[OperatorSession]:
    """`username`'s sessions that still live, newest first (for "your sessions" and the admin's view)."""
    now = _now(now)
    operator = _operator(session, username)
    if operator is None:
        return []
    idle_since = now - timedelta(minutes=settings.DASHBOARD_SESSION_IDLE_MINUTES)
    return list(
        session.scalars(
            select(OperatorSession)
            .where(
                OperatorSession.operator_id == operator.id,
                OperatorSession.revoked_at.is_(None),
                OperatorSession.expires_at > now,
                OperatorSession.last_seen_at >= idle_since,
            )
            .order_by(OperatorSession.created_at.desc())
        )
    )


def device_token(settings: Settings, operator_id: int, *, now: datetime | None = None) -> str:
    """A trusted-browser token for `operator_id`: it exempts this browser from the per-name back-off, nothing more."""
    issued = int(_now(now).timestamp())
    payload = base64.urlsafe_b64encode(f"{operator_id}:{issued}:{secrets.token_hex(8)}".encode()).decode().rstrip("=")
    return f"{payload}.{keyed_digest(settings, 'device', payload)}"


def device_operator(settings: Settings, token: str | None, *, now: datetime | None = None) -> int | None:
    """The operator a valid, unexpired trusted-browser token was issued to; None for anything else."""
    if not token or token.count(".") != 1 or len(token) > 200:
        return None
    payload, signature = token.split(".")
    expected = keyed_digest(settings, "device", payload)
    if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
        return None
    try:
        operator_id, issued, _ = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split(":")
        issued_at = datetime.fromtimestamp(int(issued), tz=_now(now).tzinfo)
    except (ValueError, UnicodeDecodeError):
        return None
    if _now(now) - issued_at > DEVICE_LIFETIME:
        return None
    return int(operator_id)
