"""Sign-in back-off that tells no one whether an account exists and lets no stranger keep an operator out.

Failures are counted under three kinds of key, each an HMAC so no name or address is stored in clear:
- the client: its address (X-Forwarded-For believed only from DASHBOARD_TRUSTED_PROXIES and the loopback
  interface), or this browser session when the address is unknown. After DASHBOARD_MAX_FAILED_LOGINS failures
  each next attempt from it waits 1 s, then 2, 4, ... up to DASHBOARD_SIGN_IN_MAX_DELAY_MINUTES;
- the name typed (lower-cased), whether or not such an account exists, so an unknown name backs off exactly like
  a known one. It allows ACCOUNT_ALLOWANCE times as many failures before the same doubling: one client guessing
  is held back by its own key long before it delays the account for anyone else;
- a trusted browser: one that signed in as that operator before (sessions.device_token). It is counted only under
  its own key, so failures of strangers on the same name (or from behind the same address) never delay it.

A success clears the keys it was counted under; a day without failures forgets a key.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.core.db import is_postgres
from engine.core.models import SignInThrottle
from engine.core.settings import Settings
from engine.operators.sessions import keyed_digest

FIRST_DELAY_SECONDS = 1.0
FORGET_AFTER = timedelta(days=1)
ACCOUNT_ALLOWANCE = 4
"""A name allows this many times DASHBOARD_MAX_FAILED_LOGINS failures (from all untrusted clients together)."""

Counter = tuple[str, int]
"""A throttle key and how many failures it allows before attempts must wait."""


def account_counter(settings: Settings, username: str) -> Counter:
    key = keyed_digest(settings, "sign-in name", username.strip().lower())
    return key, settings.DASHBOARD_MAX_FAILED_LOGINS * ACCOUNT_ALLOWANCE


def client_counter(settings: Settings, client: str) -> Counter:
    return keyed_digest(settings, "sign-in client", client), settings.DASHBOARD_MAX_FAILED_LOGINS


def device_counter(settings: Settings, device_token: str) -> Counter:
    return keyed_digest(settings, "sign-in device", device_token), settings.DASHBOARD_MAX_FAILED_LOGINS


def delay_after(settings: Settings, failures: int, allowed: int) -> float:
    """Seconds the next attempt waits after `failures` failures in a row under a key that allows `allowed`."""
    extra = failures - allowed
    if extra < 0:
        return 0.0
    longest = settings.DASHBOARD_SIGN_IN_MAX_DELAY_MINUTES * 60
    return longest if extra >= 64 else min(FIRST_DELAY_SECONDS * 2**extra, longest)


def seconds_to_wait(session: Session, settings: Settings, counters: list[Counter], now: datetime) -> int:
    """Whole seconds before an attempt counted under `counters` is accepted (0: now)."""
    allowed = dict(counters)
    rows = session.scalars(select(SignInThrottle).where(SignInThrottle.key.in_(list(allowed)))).all()
    waits = [
        (row.last_failure_at + timedelta(seconds=delay_after(settings, row.failures, allowed[row.key])) - now)
        for row in rows
        if now - row.last_failure_at < FORGET_AFTER
    ]
    return max((math.ceil(wait.total_seconds()) for wait in waits if wait > timedelta(0)), default=0)


def record_failure(session: Session, counters: list[Counter], now: datetime) -> None:
    """Count one failure under each key; concurrent failures all count (an upsert, no read-modify-write)."""
    session.execute(delete(SignInThrottle).where(SignInThrottle.last_failure_at <= now - FORGET_AFTER))
    insert = postgres_insert if is_postgres(session) else sqlite_insert
    table = SignInThrottle.__table__
    for key, _ in counters:
        statement = insert(table).values(key=key, failures=1, last_failure_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "failures": case((table.c.last_failure_at <= now - FORGET_AFTER, 1), else_=table.c.failures + 1),
                "last_failure_at": now,
            },
        )
        session.execute(statement)


def clear(session: Session, counters: list[Counter]) -> None:
    session.execute(delete(SignInThrottle).where(SignInThrottle.key.in_([key for key, _ in counters])))


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: str) -> str | None:
    """The client's address: the peer, or, while the peer is a trusted proxy, the hop it says it forwarded for.

    `peer` None is the loopback interface (Streamlit hides those addresses): a proxy on the same host is believed.
    X-Forwarded-For is read from the right, since each proxy appends the address it saw; None when nothing but
    loopback is known.
    """
    networks = [ipaddress.ip_network(part.strip(), strict=False) for part in trusted_proxies.split(",") if part.strip()]
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    current = peer
    while _is_trusted(current, networks) and hops:
        current = hops.pop()
    return None if current is None else current[:100]


def _is_trusted(address: str | None, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if address is None:
        return True
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return parsed.is_loopback or any(parsed in network for network in networks)
