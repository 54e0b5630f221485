"""Who may sign in to the dashboard and with which role: built-in accounts (argon2 hashes, back-off) and SSO users.

Passwords are only ever hashed and compared here; they are never logged, stored in clear or put in the audit.
A sign-in answers every failure alike and costs one argon2 verification whether or not the name exists, so it
tells no one which accounts exist; failures delay the next attempt (sign_in_throttle.py) instead of locking an
account, so no stranger can keep an operator out.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.db import serialize_transaction
from engine.core.enums import Role
from engine.core.models import Operator, utcnow
from engine.core.private_files import read_or_create_secret
from engine.core.settings import Settings
from engine.core.timeline import record_audit
from engine.operators import sign_in_throttle
from engine.operators.permissions import Actor, PermissionDeniedError, require
from engine.operators.sessions import all_sessions_ended_since, device_operator, end_all_sessions, keyed_digest

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
SSO_FRESH_SECONDS = 300
"""A single sign-on identity starts a desk session only this soon after the identity provider issued it: Streamlit's
own sign-in cookie lasts 30 days and cannot be revoked, so an old copy of it must not start new sessions."""
WRONG_CREDENTIALS = "Wrong username or password."
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the name is unknown or has no password, so every failure costs the same work. Made at
    the first sign-in, not at import: an argon2 hash costs about 0.3 s, and every page imports this module."""
    return _hasher.hash(secrets.token_urlsafe(16))


class OperatorError(ValueError):
    """A change to the operators that would break a rule (weak password, duplicate name, no admin left)."""


@dataclass(frozen=True)
class SignInResult:
    actor: Actor | None
    error: str | None = None
    wait_seconds: int = 0


@dataclass(frozen=True)
class SignInAttempt:
    """Where a password sign-in comes from, for the back-off and the audit log."""

    client: str
    """The client's address, or "browser session <id>" when the address is unknown."""
    device: str | None = None
    """The trusted-browser cookie the browser sent, if any."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _password_matches(password_hash: str | None, password: str) -> bool:
    """One argon2 verification, against the dummy hash when there is no real one (and then never a match)."""
    dummy = _dummy_hash()  # made before the branch, so a process's first sign-in costs alike for every name
    try:
        return _hasher.verify(password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _by_username(session: Session, username: str) -> Operator | None:
    return session.scalar(select(Operator).where(func.lower(Operator.username) == username.strip().lower()))


def authenticate(
    session: Session,
    settings: Settings,
    username: str,
    password: str,
    attempt: SignInAttempt,
    *,
    now: datetime | None = None,
) -> SignInResult:
    """Check a built-in account. Every failure gets the same answer after the same work; the caller commits."""
    now = utcnow() if now is None else now
    operator = _by_username(session, username)
    password_ok = _password_matches(operator.password_hash if operator else None, password)
    accepted = operator is not None and operator.is_active and password_ok
    trusted_device = operator is not None and device_operator(settings, attempt.device, now=now) == operator.id
    if trusted_device:
        counters = [sign_in_throttle.device_counter(settings, str(attempt.device))]
    else:
        counters = [
            sign_in_throttle.account_counter(settings, username),
            sign_in_throttle.client_counter(settings, attempt.client),
        ]
    actor, audit = _audit_names(settings, operator, username)
    wait = sign_in_throttle.seconds_to_wait(session, settings, counters, now)
    if wait:
        record_audit(session, actor, "sign_in_refused", "operator", audit, client=attempt.client, wait_seconds=wait)
        return SignInResult(None, f"Too many failed sign-ins: try again in {wait} s.", wait)
    if not accepted:
        sign_in_throttle.record_failure(session, counters, now)
        reason = "unknown name" if operator is None else "inactive" if not operator.is_active else "wrong password"
        if operator is not None and operator.password_hash is None:
            reason = "no password (single sign-on only)"
        record_audit(
            session,
            actor,
            "sign_in_failed",
            "operator",
            audit,
            client=attempt.client,
            reason=reason,
            trusted_browser=trusted_device,
        )
        return SignInResult(None, WRONG_CREDENTIALS)
    assert operator is not None
    sign_in_throttle.clear(session, counters)  # a trusted browser's success says nothing of strangers on the name
    operator.last_login_at = now
    record_audit(
        session,
        operator.username,
        "sign_in",
        "operator",
        operator.id,
        method="password",
        client=attempt.client,
        trusted_browser=trusted_device,
    )
    return SignInResult(Actor(operator.username, Role(operator.role)))


def _audit_names(settings: Settings, operator: Operator | None, username: str) -> tuple[str, str]:
    """Who an attempt names in the audit log: the account, or for an unknown name a fingerprint of it (a password
    typed into the name field must not land in the log)."""
    if operator is not None:
        return operator.username, str(operator.id)
    return "(unknown name)", "name " + keyed_digest(settings, "audit name", username.strip().lower())[:12]


def sign_in_wait_seconds(session: Session, settings: Settings, username: str, *, now: datetime | None = None) -> int:
    """How long a new browser must wait before it may try `username` again (the Settings page shows it)."""
    now = utcnow() if now is None else now
    return sign_in_throttle.seconds_to_wait(
        session, settings, [sign_in_throttle.account_counter(settings, username)], now
    )


def lift_sign_in_delay(session: Session, settings: Settings, actor: Actor, username: str) -> None:
    """An admin clears the failures counted against a name (not those of the clients that made them)."""
    require(actor, Role.ADMIN)
    operator = _by_username(session, username)
    if operator is None:
        raise LookupError(f"no operator named {username}")
    sign_in_throttle.clear(session, [sign_in_throttle.account_counter(settings, operator.username)])
    record_audit(session, actor.username, "sign_in_delay_lifted", "operator", operator.id, of=operator.username)


def sign_out_everywhere(session: Session, actor: Actor, username: str) -> int:
    """End every session of `username` in every browser: an operator for themself, an admin for anyone."""
    if username.strip().lower() != actor.username.lower():
        require(actor, Role.ADMIN)
    return end_all_sessions(session, username, by=actor.username, reason="signed_out_everywhere")


def sso_actor(
    session: Session,
    settings: Settings,
    email: str,
    name: str = "",
    *,
    issued_at: float | None = None,
    now: datetime | None = None,
) -> SignInResult:
    """The operator behind a single-sign-on identity, created with the default SSO role on first visit.

    `issued_at` is the identity token's `iat` (OpenID Connect requires it): an identity older than SSO_FRESH_SECONDS
    is sent back to the provider instead of starting a session.
    """
    now = utcnow() if now is None else now
    email = email.strip().lower()
    if not email:
        return SignInResult(None, "The identity provider sent no e-mail address; ask an admin to check the SSO setup.")
    if issued_at is None or not 0 <= now.timestamp() - issued_at <= SSO_FRESH_SECONDS:
        return SignInResult(None, "Your single sign-on has expired here: sign in with single sign-on again.")
    operator = session.scalar(
        select(Operator).where((func.lower(Operator.email) == email) | (func.lower(Operator.username) == email))
    )
    if operator is None:
        operator = Operator(
            username=email, display_name=name or email, email=email, role=settings.DASHBOARD_SSO_DEFAULT_ROLE
        )
        session.add(operator)
        session.flush()
        record_audit(session, email, "operator_created", "operator", operator.id, role=operator.role, via="sso")
    if not operator.is_active:
        return SignInResult(None, f"The account {operator.username} is deactivated; ask an admin.")
    if all_sessions_ended_since(session, operator.id, datetime.fromtimestamp(issued_at, tz=now.tzinfo)):
        return SignInResult(None, "Your sessions were ended after this sign-in: sign in with single sign-on again.")
    operator.last_login_at = now
    record_audit(session, operator.username, "sign_in", "operator", operator.id, method="sso")
    return SignInResult(Actor(operator.username, Role(operator.role)))


def current_actor(session: Session, username: str) -> Actor | None:
    """The signed-in person as the database says now: a role change or deactivation applies at once."""
    operator = _by_username(session, username)
    if operator is None or not operator.is_active:
        return None
    return Actor(operator.username, Role(operator.role))


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.username)))


def _active_admins(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Operator).where(Operator.role == Role.ADMIN, Operator.is_active.is_(True))
        )
        or 0
    )


def _new_operator(
    session: Session, username: str, role: Role, password: str | None, display_name: str, email: str | None
) -> Operator:
    username = username.strip()
    if not username or len(username) > 120:
        raise OperatorError("a username needs 1 to 120 characters")
    if _by_username(session, username) is not None:
        raise OperatorError(f"the username {username} is taken")
    operator = Operator(
        username=username,
        display_name=display_name.strip() or username,
        email=(email or "").strip() or None,
        role=role,
        password_hash=hash_password(password) if password else None,
    )
    session.add(operator)
    session.flush()
    return operator


def create_first_admin(
    session: Session, username: str, password: str, *, email: str | None = None, by: str = "cli"
) -> Operator:
    """The bootstrap (the CLI, or the browser with the setup code, named in `by`): only while no active admin
    exists, so it cannot be used to add a back door. Two at once (two browsers, the CLI and a browser, two
    replicas) run one after the other, so the second finds the first's admin."""
    serialize_transaction(session, "first-admin")
    if _active_admins(session):
        raise OperatorError("an admin already exists; sign in as that admin and add operators on the Settings page")
    operator = _new_operator(session, username, Role.ADMIN, password, username, email)
    record_audit(session, by, "operator_created", "operator", operator.id, username=operator.username, role="admin")
    return operator


def create_operator(
    session: Session,
    actor: Actor,
    username: str,
    role: Role,
    *,
    password: str | None = None,
    display_name: str = "",
    email: str | None = None,
) -> Operator:
    """Add a person; without a password they can only sign in through SSO (matched by e-mail)."""
    require(actor, Role.ADMIN)
    operator = _new_operator(session, username, role, password, display_name, email)
    record_audit(
        session, actor.username, "operator_created", "operator", operator.id, username=operator.username, role=role
    )
    return operator


def update_operator(
    session: Session,
    actor: Actor,
    username: str,
    *,
    role: Role | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> Operator:
    """Change a person's role, access or password; the desk always keeps at least one active admin.

    Each of these ends the person's sessions in every browser: a new password must shut out whoever knew the old
    one, a deactivated account has no business signed in, and a new role is granted at the next sign-in (OWASP:
    a new session at every change of privilege).
    """
    require(actor, Role.ADMIN)
    operator = _by_username(session, username)
    if operator is None:
        raise LookupError(f"no operator named {username}")
    changed: list[str] = []
    losing_admin = (
        operator.role == Role.ADMIN
        and operator.is_active
        and ((role is not None and role != Role.ADMIN) or active is False)
    )
    if losing_admin and _active_admins(session) <= 1:
        raise OperatorError(f"{operator.username} is the last active admin; make someone else admin first")
    ending: list[str] = []
    if role is not None and role != operator.role:
        operator.role = role
        changed.append(f"role={role}")
        ending.append("role_changed")
    if active is not None and active != operator.is_active:
        operator.is_active = active
        changed.append(f"active={active}")
        if not active:
            ending.append("deactivated")
    if password:
        operator.password_hash = hash_password(password)
        changed.append("password")
        ending.append("password_changed")
    if changed:
        record_audit(session, actor.username, "operator_changed", "operator", operator.id, changed=changed)
    if ending:
        end_all_sessions(session, operator.username, by=actor.username, reason=ending[-1])
    return operator


__all__ = [
    "OperatorError",
    "PermissionDeniedError",
    "SignInAttempt",
    "SignInResult",
    "authenticate",
    "create_first_admin",
    "create_operator",
    "current_actor",
    "hash_password",
    "lift_sign_in_delay",
    "list_operators",
    "sign_in_wait_seconds",
    "sign_out_everywhere",
    "sso_actor",
    "update_operator",
]


def setup_code_path(settings: Settings) -> Path:
    return settings.DATA_DIR / "first-admin-setup-code"


def pending_setup_code(session: Session, settings: Settings) -> str | None:
    """While no admin exists: the one-time code that lets the person at the console create the first admin.

    Like Jenkins' initial password: written to a file only the server's user can read (created 0600, never
    readable by others even for a moment) and its path to the server log, so a fresh `make run` is usable without
    a CLI step and a stranger on the network cannot take over.
    """
    path = setup_code_path(settings)
    if _active_admins(session):
        path.unlink(missing_ok=True)
        return None
    if not path.exists():
        log.warning("No admin yet: create the first one in the browser with the setup code in %s", path)
    return read_or_create_secret(path, lambda: secrets.token_urlsafe(9))


def create_first_admin_with_code(
    session: Session, settings: Settings, code: str, username: str, password: str
) -> Operator:
    """The browser's bootstrap: the console's setup code proves the person may create the first admin."""
    serialize_transaction(session, "first-admin")
    expected = pending_setup_code(session, settings)
    given = code.strip().encode("utf-8", "replace")
    if expected is None or not hmac.compare_digest(given, expected.encode()):
        raise OperatorError("the setup code is not right: copy it from the file named in the server's log")
    operator = create_first_admin(session, username, password, by="setup code (browser)")
    setup_code_path(settings).unlink(missing_ok=True)
    return operator
