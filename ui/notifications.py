"""The bell in the sidebar: customer replies on the operator's and their team's tickets, and @mentions, each a
link to its ticket; it refreshes on its own and "Mark all read" clears the count."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import streamlit as st

from engine.core.db import transaction
from engine.operators.notifications import mark_notifications_read, notifications
from engine.operators.permissions import Actor
from ui.auth import session_alive

if TYPE_CHECKING:
    from engine.runtime import Runtime

SHOWN = 8


def notification_bell(runtime: Runtime, actor: Actor) -> None:
    """Call inside the sidebar: the fragment writes only into its own container."""

    @st.fragment(run_every=timedelta(seconds=runtime.settings.DASHBOARD_REFRESH_SECONDS))
    def bell() -> None:
        if not session_alive():
            return
        with runtime.factory() as session:
            items = notifications(session, actor.username)
        unread = sum(item.unread for item in items)
        with st.expander(f"🔔 {unread} new" if unread else "🔔 Notifications", expanded=False):
            if not items:
                st.caption("Nothing new this week: replies on your and your team's tickets, and mentions, show here.")
                return
            for item in items[:SHOWN]:
                mark = "**" if item.unread else ""
                st.markdown(
                    f"{mark}[TCKT-{item.ticket_id}](Ticket?id={item.ticket_id}) · {item.what}{mark} · "
                    f"{item.at:%m-%d %H:%M}"
                )
            if unread and st.button("Mark all read", key="notifications_read"):
                with transaction(runtime.factory) as session:
                    mark_notifications_read(session, actor)
                st.rerun()

    bell()
