"""Signed, expiring session tokens: the browser keeps one in a cookie so a reload does not sign the operator out.

The token names the operator and when it expires, signed with a key that never leaves the server (a file in
DATA_DIR readable only by the app's account). It grants nothing by itself: the operator's role and whether
they are still active are read from the database on every page run.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from pathlib import Path

from engine.core.private_files import read_or_create_secret
from engine.core.settings import Settings

log = logging.getLogger(__name__)


def signing_key_path(settings: Settings) -> Path:
    return settings.DATA_DIR / "session-signing-key"


def _signing_key(settings: Settings) -> bytes:
    """The installation's key, made on first use (0600); every worker and restart shares it through DATA_DIR."""
    return read_or_create_secret(signing_key_path(settings), lambda: secrets.token_hex(32)).encode()


def _signature(settings: Settings, payload: str) -> str:
    return hmac.new(_signing_key(settings), payload.encode(), hashlib.sha256).hexdigest()


def issue_token(settings: Settings, username: str, lifetime_seconds: float, *, now: float | None = None) -> str:
    """A token for `username`, valid for `lifetime_seconds`."""
    expires = int((time.time() if now is None else now) + lifetime_seconds)
    payload = base64.urlsafe_b64encode(f"{username}\n{expires}".encode()).decode().rstrip("=")
    return f"{payload}.{_signature(settings, payload)}"


def token_user(settings: Settings, token: str | None, *, now: float | None = None) -> tuple[str, int] | None:
    """(username, expiry as epoch seconds) from a valid token; None for a missing, forged, garbled or expired one."""
    if not token or token.count(".") != 1:
        return None
    payload, signature = token.split(".")
    if not hmac.compare_digest(signature.encode("utf-8", "replace"), _signature(settings, payload).encode()):
        log.warning("A session cookie with a wrong signature was refused")
        return None
    try:
        username, expires = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("\n")
        expiry = int(expires)
    except ValueError:
        return None
    if expiry <= (time.time() if now is None else now):
        return None
    return username, expiry
