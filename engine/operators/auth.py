"""Who may sign in to the dashboard and with which role: built-in accounts (argon2 hashes, lock-out) and SSO users.

Passwords are only ever hashed and compared here; they are never logged, stored in clear or put in the audit.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
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
from engine.operators.actions import Actor, PermissionDeniedError, require

log = logging.getLogger(__name__)
MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not-a-real-password")
"""Verified against when the username is unknown, so a wrong name takes as long as a wrong password."""


class OperatorError(ValueError):
    """A change to the operators that would break a rule (weak password, duplicate name, no admin left)."""


@dataclass(frozen=True)
class SignInResult:
    actor: Actor | None
    error: str | None = None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _password_matches(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def _by_username(session: Session, username: str) -> Operator | None:
    return session.scalar(select(Operator).where(func.lower(Operator.username) == username.strip().lower()))


def authenticate(session: Session, settings: Settings, username: str, password: str) -> SignInResult:
    """Check a built-in account; count failures and lock the account after too many. The caller commits."""
    operator = _by_username(session, username)
    now = utcnow()
    if operator is not None and operator.locked_until and operator.locked_until > now:
        _password_matches(None, password)
        minutes = max(1, round((operator.locked_until - now).total_seconds() / 60))
        record_audit(session, operator.username, "sign_in_refused", "operator", operator.id, reason="locked")
        return SignInResult(None, f"This account is locked after repeated failures; try again in {minutes} min.")
    if operator is None or not operator.is_active or not _password_matches(operator.password_hash, password):
        if operator is not None:
            operator.failed_logins += 1
            locked = operator.failed_logins >= settings.DASHBOARD_MAX_FAILED_LOGINS
            if locked:
                operator.locked_until = now + timedelta(minutes=settings.DASHBOARD_LOCKOUT_MINUTES)
                operator.failed_logins = 0
            record_audit(session, operator.username, "sign_in_failed", "operator", operator.id, locked=locked)
        return SignInResult(None, "Wrong username or password.")
    operator.failed_logins = 0
    operator.locked_until = None
    operator.last_login_at = now
    record_audit(session, operator.username, "sign_in", "operator", operator.id, method="password")
    return SignInResult(Actor(operator.username, Role(operator.role)))


def sso_actor(session: Session, settings: Settings, email: str, name: str = "") -> SignInResult:
    """The operator behind a single-sign-on identity, created with the default SSO role on first visit."""
    email = email.strip().lower()
    if not email:
        return SignInResult(None, "The identity provider sent no e-mail address; ask an admin to check the SSO setup.")
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
    operator.last_login_at = utcnow()
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
    unlock: bool = False,
) -> Operator:
    """Change a person's role, access or password; the desk always keeps at least one active admin."""
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
    if role is not None and role != operator.role:
        operator.role = role
        changed.append(f"role={role}")
    if active is not None and active != operator.is_active:
        operator.is_active = active
        changed.append(f"active={active}")
    if password:
        operator.password_hash = hash_password(password)
        changed.append("password")
    if unlock:
        operator.locked_until, operator.failed_logins = None, 0
        changed.append("unlocked")
    if changed:
        record_audit(session, actor.username, "operator_changed", "operator", operator.id, changed=changed)
    return operator


__all__ = [
    "OperatorError",
    "PermissionDeniedError",
    "SignInResult",
    "authenticate",
    "create_first_admin",
    "create_operator",
    "current_actor",
    "hash_password",
    "list_operators",
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
