"""Each registered connector's state and variables for Home, the Settings page and `python -m engine health`: the
one place the UI learns about connectors, so pages never read the registry themselves.

`check_connectors` is cheap (settings and the database only: last poll, last error, backlog, breaker);
`test_connection` makes one live, authenticated call to the vendor and says what it found. Errors are shown
to operators, so credentials written into a connector URL are removed from them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.http import AuthenticationError, ConnectorError, breaker_for
from connectors.redaction import redact_url_credentials
from connectors.registry import Connector
from engine.core.db import make_engine, make_session_factory
from engine.core.enums import OutboxState
from engine.core.models import JobStatus, OutboxMessage, SourceCursor
from engine.core.settings import ConfigurationError, Settings
from engine.delivery.sync import sync_backlog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    label: str
    configured: bool
    """Set up and free of configuration problems."""
    reachable: bool | None
    authenticated: bool | None
    last_poll: datetime | None
    last_error: str | None
    backlog: int | None
    source: bool = False
    """A ticket source (polled for tickets), as opposed to a mail transport or a search service."""
    failing: bool = False
    """Set up, and its configuration is broken, its last run failed, or it cannot be reached or log in now."""


@lru_cache(maxsize=4)
def _factory(url: str) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def check_connectors(settings: Settings) -> list[ConnectorStatus]:
    """Every registered connector's state from settings and the database, without calling any vendor."""
    try:
        _, factory = _factory(settings.database_url)
        with factory() as session:
            return [_status(session, settings, entry) for entry in registry.connectors()]
    except Exception as error:
        log.error("connector status unavailable: %s", error)
        return [_status(None, settings, entry) for entry in registry.connectors()]


def _status(session: Session | None, settings: Settings, entry: Connector) -> ConnectorStatus:
    wanted = entry.configured(settings)
    problems = entry.problems(settings) if wanted else []
    last_poll, job_error, job_ok = _last_run(session, entry) if session is not None else (None, None, None)
    breaker = breaker_for(entry.name)
    reachable: bool | None = None
    authenticated: bool | None = None
    if job_ok is True:
        reachable = authenticated = True
    elif job_error:
        lowered = job_error.lower()
        if any(word in lowered for word in ("401", "403", "refused", "credentials")):
            reachable, authenticated = True, False
        elif any(word in lowered for word in ("unreachable", "timed out", "connection")):
            reachable = False
    if breaker.state == "open":
        reachable = False
    error = "; ".join(problems) or (breaker.last_error if breaker.state != "closed" else None) or job_error
    return ConnectorStatus(
        name=entry.name,
        label=entry.label,
        configured=wanted and not problems,
        reachable=reachable,
        authenticated=authenticated,
        last_poll=last_poll,
        last_error=redact_url_credentials(error) if error else None,
        backlog=_backlog(session, settings, entry) if session is not None and wanted else None,
        source=entry.source is not None,
        failing=wanted and (bool(problems) or job_ok is False or reachable is False or authenticated is False),
    )


def _last_run(session: Session, entry: Connector) -> tuple[datetime | None, str | None, bool | None]:
    """When the connector was last read, and whether that went well: its poll job, or its event-log job."""
    if entry.source is not None:
        job, cursor_name = f"poll_{entry.name}", entry.name
    elif entry.delivery_events is not None:
        job, cursor_name = f"poll_{entry.name}_events", f"{entry.name}:events"
    else:
        return None, None, None
    row = session.scalars(
        select(JobStatus).where(JobStatus.job == job).order_by(JobStatus.last_finished_at.desc()).limit(1)
    ).first()
    cursor = session.get(SourceCursor, cursor_name)
    last_poll = (row.last_finished_at if row else None) or (cursor.updated_at if cursor else None)
    if row is None:
        return last_poll, None, None
    return last_poll, None if row.last_ok else row.last_error, row.last_ok


def _backlog(session: Session, settings: Settings, entry: Connector) -> int | None:
    """Sources that take write-back: events waiting to sync. The mail transport in use: messages waiting to go out."""
    if entry.sync_back is not None:
        return sync_backlog(session, entry.name)
    if entry.transport is not None and entry.name == settings.OUTBOX_TRANSPORT:
        pending = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == OutboxState.PENDING)
        return int(session.scalar(pending) or 0)
    return None


def testable_connectors() -> list[str]:
    """The connectors a person can test: those with something to connect to."""
    return [entry.name for entry in registry.connectors() if entry.ping is not None]


@dataclass(frozen=True)
class ConnectorVariable:
    connector: str
    """The connector's label."""
    variable: str
    set: bool
    """Whether it differs from its default; its value is never shown."""


def connector_variables(settings: Settings) -> list[ConnectorVariable]:
    """Each connector's own environment variables and whether each is set."""
    rows = []
    for entry in registry.connectors():
        for name in entry.fields:
            field = entry.settings.model_fields[name]
            value = getattr(settings, name, field.default)
            rows.append(ConnectorVariable(entry.label, name, value != field.get_default(call_default_factory=True)))
    return rows


def test_connection(name: str, settings: Settings) -> ConnectorStatus:
    """One live call to `name` with the given settings: reachable? authenticated? and the error, if any."""
    entry = registry.connector(name)
    problems = entry.problems(settings)
    reachable, authenticated, error = (None, None, "; ".join(problems)) if problems else _probe(entry, settings)
    return ConnectorStatus(
        name=name,
        label=entry.label,
        configured=entry.configured(settings) and not problems,
        reachable=reachable,
        authenticated=authenticated,
        last_poll=None,
        last_error=redact_url_credentials(error) if error else None,
        backlog=None,
        source=entry.source is not None,
    )


test_connection.__test__ = False  # type: ignore[attr-defined]  # a name pytest would otherwise collect


def _probe(entry: Connector, settings: Settings) -> tuple[bool | None, bool | None, str | None]:
    """(reachable, authenticated, error) of one live call, tried once; missing permissions are the error."""
    if entry.ping is None:
        return None, None, f"{entry.label} has nothing to connect to"
    try:
        missing = entry.ping(settings.model_copy(update={"CONNECTOR_RETRY_ATTEMPTS": 1}))
    except AuthenticationError as error:
        return True, False, str(error)
    except (ConnectorError, ConfigurationError) as error:
        unreachable = getattr(error, "retryable", False) or isinstance(error, ConfigurationError)
        return not unreachable, None, str(error)
    return True, True, "; ".join(missing or []) or None
