"""Connector status for Home and Settings: every registered connector, what it reports, and its variables."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import streamlit as st

from connectors.redaction import redact_url_credentials
from engine.connector_status import ConnectorStatus, check_connectors, testable_connectors
from engine.connector_status import connector_variables as variables
from engine.connector_status import test_connection as probe
from engine.runtime import Runtime
from ui.components import ago, plain

COLUMNS = ("name", "label", "configured", "reachable", "authenticated", "last_poll", "last_error", "backlog")


def _as_row(status: ConnectorStatus) -> dict[str, Any]:
    return {column: getattr(status, column) for column in COLUMNS}


def connector_rows(runtime: Runtime) -> list[dict[str, Any]]:
    """One row per registered connector; a broken check shows as one row instead of taking the page down."""
    try:
        return [_as_row(status) for status in check_connectors(runtime.settings)]
    except Exception as error:
        return [{"name": "connector check", "last_error": redact_url_credentials(f"{type(error).__name__}: {error}")}]


def connector_names() -> list[str]:
    """The connectors a person can test: those with something to connect to."""
    return testable_connectors()


def connector_variables(runtime: Runtime) -> list[dict[str, Any]]:
    """Each connector's environment variables and whether each is set; values are never shown."""
    return [asdict(variable) for variable in variables(runtime.settings)]


def test_connection(name: str, runtime: Runtime) -> dict[str, Any]:
    """Ask the connector to connect now, with the running settings."""
    return _as_row(probe(name, runtime.settings))


def _state(value: object, yes: str, no: str) -> str:
    if value is None:
        return ":gray-badge[not checked]"
    return f":green-badge[{yes}]" if value else f":red-badge[{no}]"


def connector_cards(runtime: Runtime, columns: int = 2) -> None:
    """Each connector as a card a person can read at a glance; the raw status only behind "details"."""
    rows = connector_rows(runtime)
    grid = st.columns(columns)
    for index, row in enumerate(rows):
        with grid[index % columns].container(border=True):
            configured = row.get("configured")
            st.markdown(
                f"**{plain(str(row.get('label') or row.get('name')))}** "
                + (":green-badge[configured]" if configured else ":gray-badge[not configured]")
            )
            if configured:
                st.markdown(
                    _state(row.get("reachable"), "reachable", "unreachable")
                    + " "
                    + _state(row.get("authenticated"), "signed in", "sign-in refused")
                )
                facts = [f"last poll {ago(row.get('last_poll'))}"]
                if row.get("backlog") is not None:
                    facts.append(f"{row['backlog']:,} waiting")
                st.caption(" · ".join(facts))
            if row.get("last_error"):
                st.error(str(row["last_error"]), icon="⚠️")
            with st.expander("details"):
                st.json(json.dumps({k: v for k, v in row.items() if v is not None}, default=str), expanded=False)
