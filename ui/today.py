"""The Today page's content (Home.py draws it past the sign-in gate): queue counts, automation, first response,
what needs a person, engine and connector health."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from engine.health import health_report
from engine.operators.queries import attention_counts, held_draft_reasons, job_statuses, recent_events, today_summary
from engine.runtime import Runtime
from ui import glossary
from ui.auth import session_alive
from ui.components import health_cards, why_drafts_wait
from ui.connectors import connector_cards
from ui.outcomes import autopilot_floor_notices
from ui.sla import sla_notice
from ui.tables import show_table


def show_today(runtime: Runtime) -> None:
    st.title("Today")
    st.caption(
        f"Analyser **{runtime.analyser_name}** · mail transport **{runtime.transport.name}** · "
        f"sources **{', '.join(source.name for source in runtime.sources) or 'none configured'}**"
    )

    @st.fragment(run_every=timedelta(seconds=runtime.settings.DASHBOARD_REFRESH_SECONDS))
    def overview() -> None:
        """Refreshes on its own; widgets elsewhere on the page keep what the operator typed."""
        if not session_alive():
            return
        with runtime.factory() as session:
            today = today_summary(session)
            attention = attention_counts(session)
            held = held_draft_reasons(session)
            jobs = job_statuses(session)
            events = recent_events(session, limit=15)
        cards = st.columns(6)
        cards[0].metric("Open", f"{today.open:,}", border=True)
        drafts_waiting = attention.pop("drafts awaiting approval")
        cards[1].metric(
            "Drafts to approve",
            f"{drafts_waiting:,}",
            help="AI drafts waiting for a person's approval; the reasons they wait are listed below.",
            border=True,
        )
        cards[2].metric("Escalated", f"{today.escalated:,}", border=True)
        cards[3].metric("Resolved today", f"{today.resolved_today:,}", border=True)
        cards[4].metric(
            "Automation rate",
            "—" if today.automation_rate is None else f"{today.automation_rate:.0%}",
            delta=None
            if today.automation_rate is None
            else f"{round(today.automation_rate * today.resolved_today)} of {today.resolved_today:,} resolved today",
            delta_color="off",
            delta_arrow="off",
            help="Of the tickets resolved today, the share no person touched (not a share of the tickets received).",
            border=True,
        )
        cards[5].metric(
            "First reply",
            "—" if today.first_response_p50_minutes is None else f"{today.first_response_p50_minutes:.0f} min",
            help="Median time to the first answer, tickets of the last 7 days.",
            border=True,
        )
        why_drafts_wait(held)
        sla_notice(runtime)
        needs = {what: n for what, n in attention.items() if n}
        if needs:
            st.warning("Needs a person: " + " · ".join(f"{n:,} {what}" for what, n in needs.items()), icon="⚠️")

        events_column, health_column = st.columns([3, 2])
        with events_column:
            st.subheader("Newest events")
            if events:
                readable = [
                    {
                        **event,
                        "event": glossary.event(event["event"]),
                        "what": glossary.words(event["what"]),
                        "by": glossary.actor(event["by"]),
                    }
                    for event in events
                ]
                show_table(
                    pd.DataFrame(readable),
                    hide_index=True,
                    width="stretch",
                    column_config={"when": st.column_config.DatetimeColumn("when", format="HH:mm:ss")},
                )
            else:
                st.info("Nothing has happened yet: tickets appear here as sources deliver them.")
        with health_column:
            st.subheader("Engine")
            if not runtime.settings.ENGINE_ENABLED:
                st.info(
                    "The engine does not run inside this dashboard: a separate worker "
                    "(`python -m engine run`) does the work."
                )
            failing = [job for job in jobs if not job["ok"]]
            for job in failing:
                st.error(f"Job “{glossary.humanise(job['job'])}” on {job['worker']} failed: {job['last error']}")
            if jobs:
                table = pd.DataFrame(jobs)
                table["job"] = table["job"].map(glossary.humanise)
                table["ok"] = table["ok"].map(lambda ok: "✓ ok" if ok else "✗ failed")
                show_table(
                    table[["job", "ok", "last run", "runs", "failures"]],
                    hide_index=True,
                    width="stretch",
                    column_config={"last run": st.column_config.DatetimeColumn("last run", format="HH:mm:ss")},
                )
            else:
                st.caption("No engine job has run yet.")
            st.subheader("Connectors")
            connector_cards(runtime, columns=1)

    overview()
    autopilot_floor_notices(runtime)

    with st.expander("Full health check", key="home_health_panel", on_change="rerun"):
        if st.button("Run health check", key="home_health"):
            st.session_state["home_health_report"] = health_report(runtime)
        if report := st.session_state.get("home_health_report"):
            health_cards(report)
