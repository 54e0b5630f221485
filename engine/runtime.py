"""Everything one engine process holds: settings, database, analyser, transport, sources, worker id."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import MailTransport, SyncBack, TicketSource
from connectors.demo import DemoSource
from engine.analysis import Analyser
from engine.db import make_engine, make_session_factory, upgrade_database
from engine.outbox import make_transport
from engine.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    worker: str
    analyser: Analyser
    transport: MailTransport
    sources: list[TicketSource] = field(default_factory=list)
    delivery_events: Any = None

    @property
    def sync_targets(self) -> list[SyncBack]:
        """The sources that take decisions back (ServiceNow, Jira)."""
        return [source for source in self.sources if isinstance(source, SyncBack)]


def _source_builders() -> list[tuple[str, Callable[[Settings], bool], Callable[[Settings], TicketSource]]]:
    from connectors import graph_mail, imap, jira, servicenow

    return [
        ("servicenow", servicenow.is_configured, servicenow.ServiceNowSource),
        ("jira", jira.is_configured, jira.JiraSource),
        ("outlook", graph_mail.is_configured, graph_mail.GraphMailSource),
        ("imap", imap.is_configured, imap.ImapSource),
    ]


def configured_sources(settings: Settings) -> list[TicketSource]:
    """The sources whose settings are present; one with a broken configuration is logged and left out."""
    sources: list[TicketSource] = []
    if settings.DEMO_FEED_ENABLED:
        sources.append(DemoSource(first_batch=settings.DEMO_FEED_FIRST_BATCH, batch=settings.DEMO_FEED_BATCH))
    for name, is_configured, build in _source_builders():
        if not is_configured(settings):
            continue
        try:
            sources.append(build(settings))
        except ConfigurationError as error:
            log.error("source %s left out: %s", name, error)
    return sources


def delivery_events(settings: Settings) -> Any:
    """Mailgun's event log when Mailgun sends our mail, so deliveries and bounces reach the timeline."""
    if settings.OUTBOX_TRANSPORT != "mailgun":
        return None
    from connectors.mailgun import MailgunEvents

    return MailgunEvents(settings)


def build_analyser(settings: Settings, factory: sessionmaker[Session]) -> Analyser:
    """The analyser LLM_PROVIDER asks for; `none` is the retrieval-only product mode."""
    if settings.LLM_PROVIDER in ("azure", "openai"):
        from engine.llm_analyser import LlmAnalyser

        return LlmAnalyser(factory, settings)
    from engine.retrieval_analyser import RetrievalAnalyser

    return RetrievalAnalyser(factory, settings)


def build_runtime(settings: Settings) -> Runtime:
    """Open the database (migrating it to the newest schema) and assemble the engine's parts."""
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    return Runtime(
        settings=settings,
        engine=engine,
        factory=factory,
        worker=settings.WORKER_ID or f"{socket.gethostname()}-{os.getpid()}",
        analyser=build_analyser(settings, factory),
        transport=make_transport(settings),
        sources=configured_sources(settings),
        delivery_events=delivery_events(settings),
    )
