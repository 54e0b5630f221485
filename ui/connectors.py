"""Connector status for Home and Settings, whether or not `connectors.health` is installed yet.

With it: what each connector reports (configured, reachable, authenticated, backlog). Without it: the
configured sources and their poll jobs' last runs, which is what the engine itself knows.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace
from typing import Any

from engine.queries import job_statuses
from engine.redaction import redact_url_credentials
from engine.runtime import Runtime


def connector_health() -> ModuleType | None:
    try:
        return importlib.import_module("connectors.health")
    except ImportError:
        return None


def _as_row(status: Any) -> dict[str, Any]:
    """One table row; the error without credentials, whichever version of `connectors.health` produced it."""
    fields = ("name", "configured", "reachable", "authenticated", "last_poll", "last_error", "backlog")
    row = {name: getattr(status, name, None) for name in fields}
    if row["last_error"]:
        row["last_error"] = redact_url_credentials(str(row["last_error"]))
    return row


def connector_rows(runtime: Runtime) -> list[dict[str, Any]]:
    health = connector_health()
    if health is not None:
        try:
            return [_as_row(status) for status in health.check_connectors(runtime.settings)]
        except Exception as error:  # a broken check must not take the dashboard down
            return [_as_row(SimpleNamespace(name="connector check", last_error=f"{type(error).__name__}: {error}"))]
    with runtime.factory() as session:
        polls = {
            job["job"].removeprefix("poll_"): job for job in job_statuses(session) if job["job"].startswith("poll_")
        }
    return [
        {
            "name": source.name,
            "configured": True,
            "last_poll": polls.get(source.name, {}).get("last run"),
            "ok": polls.get(source.name, {}).get("ok"),
            "last_error": polls.get(source.name, {}).get("last error", ""),
        }
        for source in runtime.sources
    ] or [{"name": "no source configured", "configured": False}]


def test_connection(name: str, runtime: Runtime) -> dict[str, Any]:
    """Ask the connector to connect now; without `connectors.health` there is nothing to ask."""
    health = connector_health()
    if health is None:
        return {"name": name, "last_error": "connection tests arrive with connectors.health; not installed yet"}
    return _as_row(health.test_connection(name, runtime.settings))
