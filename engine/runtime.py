"""Everything one engine process holds: settings, database, analyser, transport, sources, worker id.

The connector parts are built from connectors/registry.py for the connectors whose settings are present.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.base import DeliveryEvents, MailTransport, SyncBack, TicketSource
from engine.core.analysis import RETRIEVAL_ANALYSER, Analyser
from engine.core.settings import ConfigurationError, Settings
from engine.core.store import TicketStore, open_store
from engine.delivery.outbox import make_transport

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Runtime(TicketStore):
    worker: str
    transport: MailTransport
    sources: list[TicketSource] = field(default_factory=list)
    sync_targets: list[SyncBack] = field(default_factory=list)
    """The configured connectors that take decisions back to their source, when SYNC_BACK_ENABLED."""
    delivery_events: list[DeliveryEvents] = field(default_factory=list)
    """Event logs of the transport in use, so deliveries and bounces reach the timeline."""
    _analyser: Analyser | None = field(default=None, repr=False)
    _analyser_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def analyser(self) -> Analyser:
        """The analyser LLM_PROVIDER asks for, built at its first use (once, whichever thread asks first): a
        dashboard whose engine runs elsewhere never analyses, and the first page after a restart need not wait for
        the knowledge base's retrieval to be imported (about 0.35 s)."""
        with self._analyser_lock:
            if self._analyser is None:
                self._analyser = build_analyser(self.settings, self.factory)
            return self._analyser

    @property
    def analyser_name(self) -> str:
        """The analyser's name, without building it."""
        return self.settings.LLM_PROVIDER if uses_a_model(self.settings) else RETRIEVAL_ANALYSER


def _build(settings: Settings, part: str, build: Callable[[Settings], T]) -> T | None:
    """One connector part; one with a broken configuration is logged and left out."""
    try:
        return build(settings)
    except ConfigurationError as error:
        log.error("%s left out: %s", part, error)
        return None


def _build_configured(
    settings: Settings, part: str, builder: Callable[[registry.Connector], Callable[[Settings], T] | None]
) -> list[T]:
    """What `builder` names for every configured connector that has one; a part that fails to build is left out."""
    built = (
        _build(settings, f"{part} {entry.name}", build)
        for entry in registry.connectors()
        if (build := builder(entry)) is not None and entry.configured(settings)
    )
    return [item for item in built if item is not None]


def configured_sources(settings: Settings) -> list[TicketSource]:
    """The sources whose settings are present."""
    return _build_configured(settings, "source", lambda entry: entry.source)


def configured_sync_targets(settings: Settings) -> list[SyncBack]:
    """The configured sources that take write-back; none when SYNC_BACK_ENABLED is off."""
    if not settings.SYNC_BACK_ENABLED:
        return []
    return _build_configured(settings, "write-back to", lambda entry: entry.sync_back)


def configured_delivery_events(settings: Settings) -> list[DeliveryEvents]:
    """The event log of the connector that sends our mail, if it has one."""
    entry = registry.CONNECTORS.get(settings.OUTBOX_TRANSPORT)
    if entry is None or entry.delivery_events is None:
        return []
    events = _build(settings, f"delivery events of {entry.name}", entry.delivery_events)
    return [events] if events is not None else []


def uses_a_model(settings: Settings) -> bool:
    """Whether LLM_PROVIDER names a model to analyse with; `none` is the retrieval-only product mode."""
    return settings.LLM_PROVIDER in ("azure", "openai")


def build_analyser(settings: Settings, factory: sessionmaker[Session]) -> Analyser:
    """The analyser LLM_PROVIDER asks for (its name is `Runtime.analyser_name`)."""
    if uses_a_model(settings):
        from engine.analysers.llm_analyser import LlmAnalyser

        return LlmAnalyser(factory, settings)
    from engine.analysers.retrieval_analyser import RetrievalAnalyser

    return RetrievalAnalyser(factory, settings)


def build_runtime(settings: Settings, *, store: TicketStore | None = None) -> Runtime:
    """Assemble the engine's parts on `store` (opened here, migrating the database, when none is given)."""
    store = store or open_store(settings)
    return Runtime(
        settings=settings,
        engine=store.engine,
        factory=store.factory,
        worker=settings.WORKER_ID or f"{socket.gethostname()}-{os.getpid()}",
        transport=make_transport(settings),
        sources=configured_sources(settings),
        sync_targets=configured_sync_targets(settings),
        delivery_events=configured_delivery_events(settings),
    )
