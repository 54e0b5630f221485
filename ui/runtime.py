"""The process-wide engine for the Streamlit app: built once per server process, not once per browser session."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import streamlit as st

from engine.core.logs import configure_logging
from engine.core.settings import ConfigurationError, get_settings
from engine.ops.engine_lock import EngineAlreadyRunningError
from engine.runtime import Runtime, build_runtime

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)
STARTING_THREAD = "engine-start"


@st.cache_resource(show_spinner="Opening the ticket store…", on_release=lambda runtime: runtime.engine.dispose())
def engine_runtime() -> Runtime:
    settings = get_settings()
    configure_logging(settings)
    return build_runtime(settings)


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
    from engine.scheduler import start_scheduler

    return start_scheduler(runtime)


def app_runtime() -> Runtime:
    """The runtime, with the scheduler running; a configuration error stops the page with its message."""
    try:
        runtime = engine_runtime()
    except ConfigurationError as error:
        st.error(f"The app cannot start: {error}. Fix the variable in `.env` or the environment and reload.")
        st.stop()
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
