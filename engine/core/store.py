"""The ticket store: the settings and the migrated database, all that signing in needs.

Opened before the rest of the engine (engine/runtime.py: analyser, transport and connectors, built on it),
so that a dashboard can show its sign-in form while the rest is still being built after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import make_engine, make_session_factory, upgrade_database
from engine.core.private_files import private_directory
from engine.core.settings import Settings


@dataclass
class TicketStore:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]


def open_store(settings: Settings) -> TicketStore:
    """Open the database, migrating it to the newest schema."""
    private_directory(settings.DATA_DIR)
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    return TicketStore(settings=settings, engine=engine, factory=make_session_factory(engine))
