"""The process-wide engine for the Streamlit app: built once per server process, not once per browser session.

Two cached resources, in order: the ticket store (settings and the migrated database: all that the sign-in form
needs), then the runtime on top of it (analyser, transport, connectors: imported and built only here). After a
restart the sign-in form is shown as soon as the store is open, while the rest is still being built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import streamlit as st

from engine.core.logs import configure_logging
from engine.core.settings import ConfigurationError, get_settings
from engine.core.store import TicketStore, open_store
from engine.ops.engine_lock import EngineAlreadyRunningError

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from engine.runtime import Runtime

log = logging.getLogger(__name__)
STARTING_THREAD = "engine-start"
FIRST_RUNS_AFTER = timedelta(seconds=10)
"""The dashboard's own engine begins its jobs this long after the server starts: the pages and the engine share one
process (one interpreter lock) on the machine's cores, so the first page after a restart, with a person waiting,
goes first (start to sign-in form with the demo feed, 2 cores: 2.9–4.6 s with the first runs at once, 2.2–2.4 s
with them 10 s later; 3.1 s on a fresh install, which migrates). A separate worker (`python -m engine run`)
starts its jobs at once."""
T = TypeVar("T")


@st.cache_resource(show_spinner="Opening the ticket store…", on_release=lambda store: store.engine.dispose())
def ticket_store() -> TicketStore:
    settings = get_settings()
    configure_logging(settings)
    return open_store(settings)


@st.cache_resource(show_spinner="Starting the engine…")
def engine_runtime() -> Runtime:
    from engine.runtime import build_runtime

    store = ticket_store()
    return build_runtime(store.settings, store=store)


@st.cache_resource(on_release=lambda scheduler: scheduler and scheduler.shutdown(wait=False))
def engine_scheduler() -> BackgroundScheduler | None:
    """The engine's jobs, started once for the whole server unless ENGINE_ENABLED=false.

    On SQLite another process may already run the engine (`python -m engine run`): the dashboard then shows its
    work and says so; the error is not cached, so this server takes over once that process stops. The jobs' modules
    (the knowledge base's file readers among them) are imported only then: a dashboard beside a separate worker
    never needs them.
    """
    runtime = engine_runtime()
    if not runtime.settings.ENGINE_ENABLED:
        return None
    from engine.core.models import utcnow
    from engine.scheduler import start_scheduler

    return start_scheduler(runtime, first_run_at=utcnow() + FIRST_RUNS_AFTER)


def _started(build: Callable[[], T]) -> T:
    """`build()`; a configuration error stops the page with its message."""
    try:
        return build()
    except ConfigurationError as error:
        st.error(f"The app cannot start: {error}. Fix the variable in `.env` or the environment and reload.")
        st.stop()


def app_store() -> TicketStore:
    """The ticket store: what the sign-in form needs, without waiting for the rest of the engine."""
    return _started(ticket_store)


def app_runtime() -> Runtime:
    """The runtime, with the scheduler running; a configuration error stops the page with its message."""
    runtime = _started(engine_runtime)
    try:
        engine_scheduler()
    except EngineAlreadyRunningError as error:
        st.caption(f"This dashboard runs no engine of its own: {error}.")
    return runtime


def start_with_the_server() -> None:
    """Build the runtime and start the engine's jobs when the server starts (app.py), not when the first page
    opens: after a restart the sources are polled before anyone signs in, and the first page finds the runtime
    built. Both are the pages' own cached resources, so a page arriving meanwhile waits for this build instead of
    making another. A failure is logged here and not cached: the first page meets it again and shows it."""
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(_not_from_the_start)
    try:
        engine_scheduler()
    except ConfigurationError as error:
        log.error("the engine did not start with the server: %s", error)
    except EngineAlreadyRunningError as error:
        log.info("this server runs no engine of its own: %s", error)
    except Exception:  # the first page retries and shows what failed; the server itself must come up
        log.exception("the engine did not start with the server; the first page will try again")


def _not_from_the_start(record: logging.LogRecord) -> bool:
    """Streamlit warns that a cached resource is built outside a page ("missing ScriptRunContext"): here on
    purpose, so not worth an operator's attention."""
    return record.threadName != STARTING_THREAD
