"""Everything one engine process holds: settings, database, analyser, transport, sources, worker id."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import MailTransport, TicketSource
from connectors.demo import DemoSource
from engine.analysis import Analyser
from engine.db import make_engine, make_session_factory, upgrade_database
from engine.outbox import make_transport
from engine.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]
    worker: str
    analyser: Analyser
    transport: MailTransport
    sources: list[TicketSource] = field(default_factory=list)


def configured_sources(settings: Settings) -> list[TicketSource]:
    """The sources whose settings are present."""
    sources: list[TicketSource] = []
    if settings.DEMO_FEED_ENABLED:
        sources.append(DemoSource(first_batch=settings.DEMO_FEED_FIRST_BATCH, batch=settings.DEMO_FEED_BATCH))
    return sources


def build_analyser(settings: Settings, factory: sessionmaker[Session]) -> Analyser:
    """The analyser LLM_PROVIDER asks for; `none` is the retrieval-only product mode."""
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
    )
