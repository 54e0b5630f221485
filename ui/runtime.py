"""The process-wide engine for the Streamlit app: built once per server process, not once per browser session."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from engine.core.logs import configure_logging
from engine.core.settings import ConfigurationError, get_settings
from engine.ops.engine_lock import EngineAlreadyRunningError
from engine.runtime import Runtime, build_runtime

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler


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
