"""Each connector's state for the Settings page and `python -m engine health`.

`check_connectors` is cheap (settings and the database only: last poll, last error, backlog, breaker);
`test_connection` makes one live, authenticated call to the vendor and says what it found. Errors are shown
to operators, so credentials written into a connector URL are removed from them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors import graph_mail, imap, jira, mailgun, servicenow
from connectors.http import AuthenticationError, ConnectorError, breaker_for
from engine.db import make_engine, make_session_factory
from engine.enums import OutboxState
from engine.models import JobStatus, OutboxMessage, SourceCursor
from engine.redaction import redact_url_credentials
from engine.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    configured: bool
    reachable: bool | None
    authenticated: bool | None
    last_poll: datetime | None
    last_error: str | None
    backlog: int | None


def _smtp_problems(settings: Settings) -> list[str]:
    return [] if settings.SMTP_HOST else ["SMTP_HOST: not set"]


def _smtp_configured(settings: Settings) -> bool:
    return bool(settings.SMTP_HOST)


def _serpapi_problems(settings: Settings) -> list[str]:
    return [] if settings.SERPAPI_API_KEY.get_secret_value() else ["SERPAPI_API_KEY: not set"]


def _serpapi_configured(settings: Settings) -> bool:
    return bool(settings.SERPAPI_API_KEY.get_secret_value())


CONNECTORS: dict[str, tuple[Callable[[Settings], bool], Callable[[Settings], list[str]]]] = {
    "servicenow": (servicenow.is_configured, servicenow.configuration_problems),
    "jira": (jira.is_configured, jira.configuration_problems),
    "outlook": (graph_mail.is_configured, graph_mail.configuration_problems),
    "imap": (imap.is_configured, imap.configuration_problems),
    "mailgun": (mailgun.is_configured, mailgun.configuration_problems),
    "smtp": (_smtp_configured, _smtp_problems),
    "serpapi": (_serpapi_configured, _serpapi_problems),
}
SOURCES = frozenset({"servicenow", "jira", "outlook", "imap"})
WRITE_BACK = frozenset({"servicenow", "jira"})


def configuration_problems(name: str, settings: Settings) -> list[str]:
    """What is missing or wrong in `name`'s settings, one message per variable."""
    return CONNECTORS[name][1](settings)


@lru_cache(maxsize=4)
def _factory(url: str) -> tuple[Engine, sessionmaker[Session]]:
    engine = make_engine(url)
    return engine, make_session_factory(engine)


def check_connectors(settings: Settings) -> list[ConnectorStatus]:
    """Every connector's state from settings and the database, without calling any vendor."""
    statuses = []
    try:
        _, factory = _factory(settings.database_url)
        with factory() as session:
            for name in CONNECTORS:
                statuses.append(_status(session, settings, name))
    except Exception as error:
        log.error("connector status unavailable: %s", error)
        return [_status(None, settings, name) for name in CONNECTORS]
    return statuses


def _status(session: Session | None, settings: Settings, name: str) -> ConnectorStatus:
    configured = CONNECTORS[name][0](settings)
    problems = CONNECTORS[name][1](settings) if configured else []
    last_poll, job_error, job_ok = _last_run(session, name) if session is not None else (None, None, None)
    breaker = breaker_for(name)
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
        name=name,
        configured=configured and not problems,
        reachable=reachable,
        authenticated=authenticated,
        last_poll=last_poll,
        last_error=redact_url_credentials(error) if error else None,
        backlog=_backlog(session, settings, name) if session is not None and configured else None,
    )


def _last_run(session: Session, name: str) -> tuple[datetime | None, str | None, bool | None]:
    jobs = {"mailgun": "poll_mailgun_events"}.get(name, f"poll_{name}")
    row = session.scalars(
        select(JobStatus).where(JobStatus.job == jobs).order_by(JobStatus.last_finished_at.desc()).limit(1)
    ).first()
    cursor = session.get(SourceCursor, "mailgun:events" if name == "mailgun" else name)
    last_poll = (row.last_finished_at if row else None) or (cursor.updated_at if cursor else None)
    if row is None:
        return last_poll, None, None
    return last_poll, None if row.last_ok else row.last_error, row.last_ok


def _backlog(session: Session, settings: Settings, name: str) -> int | None:
    """Sources that take write-back: events waiting to sync. Mail transports: messages waiting to go out."""
    if name in WRITE_BACK:
        from engine.sync import sync_backlog

        return sync_backlog(session, name)
    if name in ("mailgun", "smtp") and name == settings.OUTBOX_TRANSPORT:
        return int(
            session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == OutboxState.PENDING)
            )
            or 0
        )
    return None


def test_connection(name: str, settings: Settings) -> ConnectorStatus:
    """One live call to `name` with the given settings: reachable? authenticated? and the error, if any."""
    if name not in CONNECTORS:
        raise ValueError(f"unknown connector {name!r}; known: {', '.join(CONNECTORS)}")
    problems = CONNECTORS[name][1](settings)
    reachable, authenticated, error = (None, None, "; ".join(problems)) if problems else _probe_outcome(name, settings)
    return ConnectorStatus(
        name=name,
        configured=CONNECTORS[name][0](settings) and not problems,
        reachable=reachable,
        authenticated=authenticated,
        last_poll=None,
        last_error=redact_url_credentials(error) if error else None,
        backlog=None,
    )


def _probe_outcome(name: str, settings: Settings) -> tuple[bool | None, bool | None, str | None]:
    """(reachable, authenticated, error) of one live call."""
    try:
        missing = _probe(name, settings)
    except AuthenticationError as error:
        return True, False, str(error)
    except (ConnectorError, ConfigurationError) as error:
        unreachable = getattr(error, "retryable", False) or isinstance(error, ConfigurationError)
        return not unreachable, None, str(error)
    return True, True, "; ".join(missing) or None


test_connection.__test__ = False  # type: ignore[attr-defined]  # a name pytest would otherwise collect


def _probe(name: str, settings: Settings) -> list[str]:
    """Raise when `name` cannot be used at all; else the permissions it lacks (only ServiceNow names them)."""
    one_try = settings.model_copy(update={"CONNECTOR_RETRY_ATTEMPTS": 1})
    probes: dict[str, Callable[[], Any]] = {
        "servicenow": lambda: servicenow.ServiceNowClient(one_try).ping(),
        "jira": lambda: jira.JiraSource(one_try).ping(),
        "outlook": lambda: graph_mail.GraphMailSource(one_try).ping(),
        "imap": lambda: imap.ImapSource(one_try).ping(),
        "mailgun": lambda: mailgun.MailgunTransport(one_try).ping(),
        "smtp": lambda: _smtp_ping(one_try),
        "serpapi": lambda: _serpapi_ping(one_try),
    }
    missing = probes[name]()
    return missing if isinstance(missing, list) else []


def _smtp_ping(settings: Settings) -> None:
    import smtplib

    from connectors.smtp import SmtpTransport

    transport = SmtpTransport(settings)
    try:
        with transport._connect() as client:
            if transport.username:
                client.login(transport.username, transport.password.get_secret_value())
            client.noop()
    except smtplib.SMTPAuthenticationError:
        raise AuthenticationError("smtp", "login refused: check SMTP_USERNAME/SMTP_PASSWORD", status=535) from None
    except (OSError, smtplib.SMTPException) as error:
        raise ConnectorError(
            "smtp", f"{settings.SMTP_HOST}:{settings.SMTP_PORT} unreachable: {type(error).__name__}", retryable=True
        ) from None


def _serpapi_ping(settings: Settings) -> None:
    from connectors.serpapi import SerpApiClient

    SerpApiClient(settings).account()
