"""Each registered connector's state and variables for Home, the Settings page and `python -m engine health`: the
one place the UI learns about connectors, so pages never read the registry themselves.

`check_connectors` is cheap (settings and the database only: last poll, last error, backlog, breaker);
`test_connection` makes one live, authenticated call to the vendor and says what it found. Errors are shown
to operators, so credentials written into a connector URL are removed from them.

A source's open records last changed before its start window are never polled: `open_before_window` counts them
(one call, remembered for a few minutes) and `take_backlog` lets a lead bring them in as backlog.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.base import BacklogSource, OpenBacklog, WindowedSource
from connectors.http import AuthenticationError, ConnectorError, breaker_for
from connectors.redaction import redact_url_credentials
from connectors.registry import Connector
from engine.core.db import exclusive, make_engine, make_session_factory, transaction
from engine.core.enums import OutboxState, Role
from engine.core.models import (
    AuditEntry,
    IngestError,
    JobStatus,
    OutboxMessage,
    SourceCursor,
    Ticket,
    utcnow,
)
from engine.core.settings import ConfigurationError, Settings
from engine.core.timeline import record_audit, record_event
from engine.delivery.sync import sync_backlog
from engine.operators.permissions import Actor, require

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
    tested: bool = False
    """Reachable and authenticated come from a call made just now, not from the last run."""
    before_window: int | None = None
    """Open records at the source last changed before its start window, which polls never read (None: unknown)."""
    window_start: str | None = None
    bounced: int | None = None
    """The mail transport in use: messages it sent that came back as bounces (None for other connectors)."""


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
        bounced=_bounced(session, settings, entry) if session is not None and wanted else None,
        window_start=_window_start(session, settings, entry) if session is not None and wanted else None,
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


def _window_start(session: Session, settings: Settings, entry: Connector) -> str | None:
    """A source whose start window can be moved: where its window starts now (read from its cursor, no call)."""
    source = _windowed_source(entry.name, settings)
    if source is None:
        return None
    stored = session.get(SourceCursor, entry.name)
    return source.window_start(stored.cursor if stored else None)


def _bounced(session: Session, settings: Settings, entry: Connector) -> int | None:
    """The mail transport in use: how many of its messages bounced."""
    if entry.transport is None or entry.name != settings.OUTBOX_TRANSPORT:
        return None
    bounced = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == OutboxState.BOUNCED)
    return int(session.scalar(bounced) or 0)


def connector_names() -> list[str]:
    """Every registered connector, the demo feed included (the "Test connection" picker shows them by label)."""
    return [entry.name for entry in registry.connectors()]


def connector_label(name: str | None) -> str | None:
    """A connector's or source's name as people know it ("demo" is the "Demo feed"); None for no connector."""
    entry = registry.CONNECTORS.get(name or "")
    return entry.label if entry else None


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
    backlog = open_before_window(name, settings, max_age=0) if authenticated else None
    if isinstance(backlog, str):
        error = "; ".join(filter(None, [error, backlog]))
    counted = backlog if isinstance(backlog, OpenBacklog) else None
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
        before_window=counted.count if counted else None,
        window_start=counted.window_start if counted else None,
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


COUNT_MAX_AGE = 600.0
"""Seconds a count of the records before the window is shown before it is asked again."""
_counts: dict[str, tuple[float, OpenBacklog | str]] = {}


def _backlog_source(name: str, settings: Settings) -> BacklogSource | None:
    entry = registry.connector(name)
    if entry.source is None or not entry.configured(settings) or entry.problems(settings):
        return None
    source = entry.source(settings.model_copy(update={"CONNECTOR_RETRY_ATTEMPTS": 1}))
    return source if isinstance(source, BacklogSource) else None


def _windowed_source(name: str, settings: Settings) -> WindowedSource | None:
    entry = registry.connector(name)
    if not hasattr(entry.source, "moved_window") or not entry.configured(settings) or entry.problems(settings):
        return None  # only a source whose window can move is built (each card render asks)
    source = entry.source(settings)
    return source if isinstance(source, WindowedSource) else None


def move_start_window(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, name: str, start: datetime, actor: Actor
) -> str:
    """A lead moves source `name`'s start window to `start` (UTC) while it runs, as its START_AT setting would have
    set it before the first poll: the next poll reads from there, and what was taken in already is recognised, never
    taken twice. Audit-logged; the new start is returned."""
    require(actor, Role.LEAD)
    source = _windowed_source(name, settings)
    if source is None:
        raise ConfigurationError(f"{name} is not a configured source whose start window can be moved")
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    with exclusive(engine, f"poll:{name}") as acquired:
        if not acquired:
            raise RuntimeError(f"{name} is being polled right now; try again in a moment")
        with transaction(factory) as session:
            stored = session.get(SourceCursor, name)
            before = source.window_start(stored.cursor if stored else None)
            cursor = source.moved_window(stored.cursor if stored else None, start)
            session.merge(SourceCursor(source=name, cursor=cursor, updated_at=utcnow()))
            moved = source.window_start(cursor)
            record_audit(session, actor.label, "move_start_window", "connector", name, before=before, after=moved)
    _counts.pop(name, None)
    log.info("%s moved the start window of %s from %s to %s UTC", actor.label, name, before, moved)
    return moved


def _cursor(settings: Settings, name: str) -> str | None:
    """The source's poll cursor, which holds its start window; None (the window starts now) when unreadable."""
    try:
        _, factory = _factory(settings.database_url)
        with factory() as session:
            stored = session.get(SourceCursor, name)
            return stored.cursor if stored else None
    except SQLAlchemyError as error:
        log.warning("cursor of %s not read, counting from now: %s", name, error)
        return None


def open_before_window(name: str, settings: Settings, *, max_age: float = COUNT_MAX_AGE) -> OpenBacklog | str | None:
    """How many open records at source `name` lie before its start window (one live call, tried once, and
    remembered for `max_age` seconds); the error as text when the source could not say; None for a connector
    that is no such source or is not set up."""
    known = _counts.get(name)
    if known is not None and time.monotonic() - known[0] < max_age:
        return known[1]
    try:
        source = _backlog_source(name, settings)
        if source is None:
            return None
        found: OpenBacklog | str = source.open_before_window(_cursor(settings, name))
    except (ConnectorError, ConfigurationError) as error:
        found = redact_url_credentials(f"open records before the start window not counted: {error}")
    _counts[name] = (time.monotonic(), found)
    return found


def backlog_sources() -> list[str]:
    """The sources whose open records before the window a lead can take as backlog."""
    return [entry.name for entry in registry.connectors() if hasattr(entry.source, "open_backlog")]


@dataclass(frozen=True)
class BacklogTaken:
    """When a lead last took a source's backlog, for the connector card."""

    actor: str
    at: datetime
    created: int


def backlog_taken(session: Session, name: str) -> BacklogTaken | None:
    entry = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "take_backlog", AuditEntry.target_type == "connector", AuditEntry.target_id == name)
        .order_by(AuditEntry.id.desc())
        .limit(1)
    ).first()
    if entry is None:
        return None
    return BacklogTaken(entry.actor, entry.at, int((entry.details or {}).get("created") or 0))


def take_backlog(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, name: str, actor: Actor, *, acknowledge: bool
) -> dict[str, int]:
    """A lead brings source `name`'s open records from before its start window in as tickets: stored, shown and
    analysed like new ones, acknowledged only when `acknowledge`, and never announced at the source (their
    arrival is no event that write-back sends). The poll's cursor does not move; one audit entry says who and how
    many. (Ingest is imported here: it loads the trust rules and numpy, which the pages that only show the
    connectors' status, Home's first of all, never need.)"""
    from engine.intake.ingest import ingest

    require(actor, Role.LEAD)
    source = _backlog_source(name, settings)
    if source is None:
        raise ConfigurationError(f"{name} is not a configured source that can hand over its backlog")
    counts: Counter[str] = Counter()
    with exclusive(engine, f"poll:{name}") as acquired:
        if not acquired:
            raise RuntimeError(f"{name} is being polled right now; try again in a moment")
        with factory() as session:
            stored = session.get(SourceCursor, name)
        for page in source.open_backlog(stored.cursor if stored else None):
            with transaction(factory) as session:
                for item in page.items:
                    try:
                        with session.begin_nested():
                            result = ingest(session, item, settings)
                            counts[result.outcome] += 1
                            if result.outcome == "created" and result.ticket_id is not None:
                                _mark_backlog(session, result.ticket_id, name, actor, acknowledge)
                    except Exception as error:
                        log.exception("could not take %s/%s as backlog", name, item.external_id)
                        session.add(
                            IngestError(
                                source=name,
                                external_id=item.external_id,
                                error=redact_url_credentials(f"{type(error).__name__}: {error}")[:4000],
                                payload=item.model_dump_json(exclude={"attachments"}),
                            )
                        )
                        counts["errors"] += 1
                for rejected in page.rejected:
                    session.add(
                        IngestError(
                            source=name,
                            external_id=rejected.external_id,
                            error=redact_url_credentials(rejected.error),
                            payload=rejected.payload,
                        )
                    )
                    counts["errors"] += 1
    with transaction(factory) as session:
        record_audit(session, actor.label, "take_backlog", "connector", name, acknowledge=acknowledge, **dict(counts))
    _counts.pop(name, None)
    log.info("%s took the backlog of %s: %s", actor.label, name, dict(counts))
    return dict(counts)


def _mark_backlog(session: Session, ticket_id: int, name: str, actor: Actor, acknowledge: bool) -> None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return
    ticket.additional_info = {**(ticket.additional_info or {}), "backlog": {"acknowledge": acknowledge}}
    said = "the requester is acknowledged" if acknowledge else "no acknowledgement is sent"
    record_event(
        session,
        ticket,
        "received_backlog",
        f"Taken as backlog by {actor.username}: open at {name} before the start window; {said}",
        actor=actor.label,
        acknowledge=acknowledge,
    )
