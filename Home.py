"""Today at a glance: queue counts, what needs a person, the engine's jobs and the newest events."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from engine.health import health_report
from engine.models import utcnow
from engine.queries import attention_counts, job_statuses, recent_events, resolved_since, status_counts
from ui.runtime import app_runtime

st.set_page_config(page_title="No-Touch Support", page_icon="🎫", layout="wide")
runtime = app_runtime()
st.title("No-Touch Support")
st.caption(
    f"Analyser: **{runtime.analyser.name}** · mail transport: **{runtime.transport.name}** · "
    f"sources: **{', '.join(source.name for source in runtime.sources) or 'none configured'}**"
)


@st.fragment(run_every=timedelta(seconds=5))
def overview() -> None:
    with runtime.factory() as session:
        counts = status_counts(session)
        attention = attention_counts(session)
        resolved_today = resolved_since(session, utcnow().replace(hour=0, minute=0, second=0, microsecond=0))
        jobs = job_statuses(session)
        events = recent_events(session, limit=15)
    open_tickets = sum(n for status, n in counts.items() if status not in ("Resolved", "Closed"))
    columns = st.columns(5)
    columns[0].metric("Open", open_tickets)
    columns[1].metric("Awaiting approval", counts["AwaitingApproval"])
    columns[2].metric("Escalated", counts["Escalated"])
    columns[3].metric("Awaiting customer", counts["AwaitingCustomer"])
    columns[4].metric("Resolved today", resolved_today)
    needs = {what: n for what, n in attention.items() if n}
    if needs:
        st.warning("Needs a person: " + " · ".join(f"{n} {what}" for what, n in needs.items()))

    st.subheader("Engine")
    if not runtime.settings.ENGINE_ENABLED:
        st.info("The engine is off in this process (ENGINE_ENABLED=false); run `python -m engine run` as a worker.")
    if jobs:
        failing = [job for job in jobs if not job["ok"]]
        for job in failing:
            st.error(f"Job {job['job']} on {job['worker']} failed: {job['last error']}")
        st.dataframe(pd.DataFrame(jobs), hide_index=True, width="stretch")
    else:
        st.info("No engine job has run yet.")

    st.subheader("Newest events")
    if events:
        st.dataframe(pd.DataFrame(events), hide_index=True, width="stretch")
    else:
        st.info("Nothing has happened yet: tickets appear here as sources deliver them.")


overview()

with st.expander("Health check (JSON)"):
    if st.button("Run health check"):
        st.json(health_report(runtime))
