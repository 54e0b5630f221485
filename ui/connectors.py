"""Connector status for Home and Settings: every registered connector, what it reports, and its variables."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import streamlit as st

from connectors.base import OpenBacklog
from connectors.redaction import redact_url_credentials
from engine.connector_status import (
    ConnectorStatus,
    backlog_sources,
    backlog_taken,
    check_connectors,
    move_start_window,
    open_before_window,
    take_backlog,
    testable_connectors,
)
from engine.connector_status import connector_variables as variables
from engine.connector_status import test_connection as probe
from engine.core.enums import Role
from engine.operators.permissions import Actor, PermissionDeniedError
from engine.runtime import Runtime
from ui import glossary
from ui.auth import allowed
from ui.components import ago, flash, plain, role_hint

COLUMNS = (
    "name",
    "label",
    "configured",
    "reachable",
    "authenticated",
    "last_poll",
    "last_error",
    "backlog",
    "before_window",
    "window_start",
    "bounced",
)


CARDS_KEY = "connector_cards"
NO_FADE = f"""<style>
.st-key-{CARDS_KEY} [data-stale="true"] {{ opacity: 1 !important; transition: none !important; }}
</style>"""
"""Streamlit fades what a running script has not redrawn yet; the cards redraw on every refresh of the live part
they sit in and look the same almost always, so they stay as they are until their new state arrives."""


def _as_row(status: ConnectorStatus) -> dict[str, Any]:
    return {column: getattr(status, column) for column in COLUMNS}


def connector_rows(runtime: Runtime) -> list[dict[str, Any]]:
    """One row per registered connector; a broken check shows as one row instead of taking the page down."""
    try:
        return [_as_row(status) for status in check_connectors(runtime.settings)]
    except Exception as error:
        return [{"name": "connector check", "last_error": redact_url_credentials(f"{type(error).__name__}: {error}")}]


def connector_variables(runtime: Runtime) -> list[dict[str, Any]]:
    """Each connector's environment variables and whether each is set; values are never shown."""
    return [asdict(variable) for variable in variables(runtime.settings)]


def test_connection(name: str, runtime: Runtime) -> tuple[bool, str]:
    """Ask the connector to connect now, with the running settings: (worked, what happened in a sentence).
    A connector with nothing to connect to (the demo feed) says so instead of failing."""
    label = glossary.connector(name)
    if name not in testable_connectors():
        return True, f"{label} runs inside the desk: there is nothing to connect to."
    status = probe(name, runtime.settings)
    if not status.configured:
        return False, f"{label} is not configured: {status.last_error or 'its settings are missing'}."
    facts = [
        {True: "reachable", False: "unreachable", None: "reachability not checked"}[status.reachable],
        {True: "signed in", False: "sign-in refused", None: "sign-in not checked"}[status.authenticated],
    ]
    if status.before_window is not None:
        facts.append(f"{glossary.plural(status.before_window, 'open record')} before the start window")
    worked = not status.last_error and status.reachable is not False and status.authenticated is not False
    return worked, f"{label}: " + ", ".join(facts) + (f". {status.last_error}" if status.last_error else ".")


def _state(value: object, yes: str, no: str) -> str:
    if value is None:
        return ":gray-badge[not checked]"
    return f":green-badge[{yes}]" if value else f":red-badge[{no}]"


def connector_cards(runtime: Runtime, columns: int = 2, actor: Actor | None = None) -> None:
    """Each connector as a card a person can read at a glance; the raw status only behind "details". With an
    `actor`, a source's open records before its start window can be taken as backlog there."""
    rows = connector_rows(runtime)
    takes_backlog = set(backlog_sources())
    st.html(NO_FADE)
    grid = st.container(key=CARDS_KEY).columns(columns)
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
                if row.get("bounced"):
                    facts.append(f"{row['bounced']:,} bounced")
                if row.get("window_start"):
                    facts.append(f"reads what arrived from {row['window_start']} UTC on")
                st.caption(" · ".join(facts))
            if row.get("last_error"):
                st.error(str(row["last_error"]), icon="⚠️")
            if configured and row.get("window_start") and actor is not None:
                _start_window(runtime, str(row["name"]), str(row["window_start"]), actor)
            if configured and row.get("name") in takes_backlog:
                _backlog(runtime, str(row["name"]), actor)
            with st.expander("details"):
                for key, item in row.items():
                    if item is not None and key != "name":
                        st.caption(f"{glossary.label(key)}: {plain(glossary.value(item))}")


def _start_window(runtime: Runtime, name: str, window_start: str, actor: Actor) -> None:
    """A lead moves the start window: earlier takes in what arrived since then as new, later leaves it out."""
    current = datetime.strptime(window_start, "%Y-%m-%d %H:%M:%S")
    lead = allowed(actor, Role.LEAD)
    with st.popover("Move the start window", disabled=not lead, help=role_hint(actor, Role.LEAD)):
        st.caption(
            "Mail that arrived from this moment on is taken in as new tickets and acknowledged; what is already "
            "in is never taken twice. To take older unread mail without acknowledging it, take it as backlog."
        )
        day = st.date_input("From (UTC)", value=current.date(), key=f"window_day_{name}")
        moment = st.time_input("at", value=current.time(), key=f"window_time_{name}", step=60)
        if st.button("Move", key=f"window_move_{name}", disabled=not lead):
            try:
                moved = move_start_window(
                    runtime.engine, runtime.factory, runtime.settings, name, datetime.combine(day, moment), actor
                )
            except PermissionDeniedError as error:
                st.error(f"Refused: {error}")
                return
            except Exception as error:
                st.error(redact_url_credentials(f"Start window not moved: {error}"))
                return
            flash(f"{name}: the start window now begins {moved} UTC; the next poll reads from there.", "success")
            st.rerun()


def _backlog(runtime: Runtime, name: str, actor: Actor | None) -> None:
    """What lies before the start window, and for a lead the one click that takes it as backlog."""
    found = open_before_window(name, runtime.settings)
    with runtime.factory() as session:
        taken = backlog_taken(session, name)
    if taken is not None:
        who = taken.actor.removeprefix("operator:")
        st.caption(f"Backlog taken by {plain(who)} {ago(taken.at)}: {glossary.plural(taken.created, 'ticket')}.")
    if isinstance(found, str):
        st.caption(plain(found))
    if not isinstance(found, OpenBacklog) or found.count == 0:
        return
    about = "about " if found.approximate else ""
    text = (
        f"{about}{glossary.plural(found.count, found.noun)} {found.since} before the start window "
        f"({found.window_start} UTC): polling never reads them."
    )
    if taken is None:
        st.warning(text, icon="📥")
    else:
        st.caption(text)
    if actor is None:
        return
    acknowledge = st.checkbox(
        "Acknowledge each requester", value=False, key=f"backlog_ack_{name}", disabled=not allowed(actor, Role.LEAD)
    )
    if st.button(
        f"Take {about}{found.count:,} as backlog",
        key=f"backlog_take_{name}",
        disabled=not allowed(actor, Role.LEAD),
        help=role_hint(actor, Role.LEAD),
    ):
        try:
            counts = take_backlog(
                runtime.engine, runtime.factory, runtime.settings, name, actor, acknowledge=acknowledge
            )
        except PermissionDeniedError as error:
            st.error(f"Refused: {error}")
            return
        except Exception as error:
            st.error(redact_url_credentials(f"Backlog not taken: {error}"))
            return
        flash(
            f"{glossary.connector(name)}: {glossary.plural(counts.get('created', 0), 'ticket')} taken as backlog"
            + (f", {counts['errors']:,} could not be read (see ingest errors)" if counts.get("errors") else "")
            + ("; requesters are acknowledged." if acknowledge else "; no acknowledgements sent."),
            "success",
        )
        st.rerun()
