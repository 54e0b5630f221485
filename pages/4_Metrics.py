"""How the desk is doing: volume, automation, deflection, response times, escalations, approvals, AI confidence,
connector errors and the offline evaluation, for a date range and set of sources, each downloadable as CSV."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from engine.exports import to_safe_csv
from engine.metrics import (
    MetricsFilter,
    approval_outcomes,
    confidence_vs_outcome,
    connector_errors,
    escalation_reasons,
    evaluation_report,
    outcomes,
    poll_failures,
    response_times,
    tickets_per_day,
)
from engine.queries import sources
from ui.components import page
from ui.outcomes import resolution_funnel

runtime, actor = page("Metrics")
st.title("Metrics")

with runtime.factory() as session:
    known_sources = sources(session)
today = date.today()
controls = st.columns([2, 3])
chosen = controls[0].date_input(
    "Dates", value=(today - timedelta(days=29), today), max_value=today, key="metrics_dates"
)
chosen_sources = controls[1].multiselect("Sources", known_sources, key="metrics_sources", placeholder="All sources")
start_day, end_day = (chosen[0], chosen[-1]) if isinstance(chosen, tuple) and chosen else (today, today)
metrics = MetricsFilter(
    start=datetime.combine(start_day, time.min, UTC),
    end=datetime.combine(end_day + timedelta(days=1), time.min, UTC),
    sources=tuple(chosen_sources),
)
LAYOUT: dict[str, Any] = {"height": 320, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "legend_title_text": ""}


def csv_button(frame: pd.DataFrame, name: str) -> None:
    st.download_button(
        f"CSV · {name}",
        to_safe_csv(frame),
        file_name=f"{name.replace(' ', '_')}_{start_day}_{end_day}.csv",
        mime="text/csv",
        key=f"metrics_csv_{name}",
        icon=":material/download:",
    )


def percent(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "—"


with runtime.factory() as session:
    summary = outcomes(session, metrics)
    volume = pd.DataFrame(tickets_per_day(session, metrics), columns=["day", "source", "direction", "tickets"])
    times = pd.DataFrame(
        response_times(session, metrics), columns=["source", "first_response_minutes", "resolution_hours"]
    )
    reasons = pd.DataFrame(escalation_reasons(session, metrics), columns=["reason", "tickets"])
    approvals = pd.DataFrame(approval_outcomes(session, metrics), columns=["category", "outcome", "drafts"])
    confidence = pd.DataFrame(confidence_vs_outcome(session, metrics), columns=["confidence", "outcome", "drafts"])
    errors = pd.DataFrame(connector_errors(session, metrics), columns=["day", "source", "errors"])
    polls = pd.DataFrame(poll_failures(session))

cards = st.columns(5)
cards[0].metric("Received", f"{summary.received:,}", border=True)
cards[1].metric("Resolved", f"{summary.resolved:,}", border=True)
cards[2].metric(
    "Automation rate", percent(summary.automated, summary.resolved), help="Resolved with no human touch.", border=True
)
cards[3].metric(
    "Deflection",
    percent(summary.deflected, summary.resolved),
    help="Resolved with no human touch and no follow-up question.",
    border=True,
)
cards[4].metric(
    "Escalation rate", percent(summary.escalated, summary.received), help="Escalated / received.", border=True
)
csv_button(pd.DataFrame([{"start": start_day, "end": end_day, **summary.__dict__}]), "summary")

left, right = st.columns(2)
with left:
    st.subheader("Tickets in and out per day")
    if volume.empty:
        st.info("No tickets in this range.")
    else:
        figure = px.bar(
            volume.sort_values("day"), x="day", y="tickets", color="source", facet_row="direction", barmode="stack"
        )
        figure.update_xaxes(type="category")
        figure.update_layout(**{**LAYOUT, "height": 380})
        st.plotly_chart(figure, width="stretch", key="metrics_volume")
        csv_button(volume, "tickets per day")
with right:
    st.subheader("Response and resolution times")
    st.caption("The newest 5,000 tickets received in the range")
    if times.dropna(how="all", subset=["first_response_minutes", "resolution_hours"]).empty:
        st.info("No responses in this range yet.")
    else:
        melted = times.melt(id_vars="source", var_name="measure", value_name="value").dropna()
        figure = px.histogram(melted, x="value", color="source", facet_col="measure", nbins=40)
        figure.update_xaxes(matches=None)
        figure.update_layout(**{**LAYOUT, "height": 380})
        st.plotly_chart(figure, width="stretch", key="metrics_times")
        stats = times[["first_response_minutes", "resolution_hours"]].describe(percentiles=[0.5, 0.9]).T
        st.dataframe(stats[["count", "50%", "90%", "max"]].round(1), width="stretch")
        csv_button(times, "response times")

left, right = st.columns(2)
with left:
    st.subheader("Escalation reasons")
    if reasons.empty:
        st.info("Nothing escalated in this range.")
    else:
        figure = px.bar(reasons.sort_values("tickets"), x="tickets", y="reason", orientation="h")
        figure.update_layout(**LAYOUT)
        st.plotly_chart(figure, width="stretch", key="metrics_reasons")
        csv_button(reasons, "escalation reasons")
with right:
    st.subheader("Approval outcomes per category")
    if approvals.empty:
        st.info("No AI drafts in this range: with no analyser configured every ticket goes to a person.")
    else:
        figure = px.bar(approvals, x="category", y="drafts", color="outcome", barmode="stack")
        figure.update_layout(**LAYOUT)
        st.plotly_chart(figure, width="stretch", key="metrics_approvals")
        csv_button(approvals, "approval outcomes")

left, right = st.columns(2)
with left:
    st.subheader("AI confidence against outcome")
    if confidence.empty:
        st.info("No AI drafts to compare yet.")
    else:
        figure = px.bar(
            confidence.sort_values("confidence"), x="confidence", y="drafts", color="outcome", barmode="stack"
        )
        figure.update_xaxes(title="AI confidence (band)", dtick=0.1)
        figure.update_layout(**LAYOUT)
        st.plotly_chart(figure, width="stretch", key="metrics_confidence")
        csv_button(confidence, "confidence vs outcome")
with right:
    st.subheader("Connector errors")
    if errors.empty and (polls.empty or not polls["failures"].sum()):
        st.success("No connector errors in this range.")
    if not errors.empty:
        figure = px.bar(errors.sort_values("day"), x="day", y="errors", color="source")
        figure.update_xaxes(type="category")
        figure.update_layout(**LAYOUT)
        st.plotly_chart(figure, width="stretch", key="metrics_errors")
        csv_button(errors, "connector errors")
    if not polls.empty:
        st.dataframe(polls, hide_index=True, width="stretch")

resolution_funnel(runtime, metrics.start)

st.subheader("Offline evaluation")
report = evaluation_report(runtime.settings)
if report is None:
    st.info("No evaluation report yet: it appears here once the offline evaluation has run.")
else:
    st.caption(f"Generated {report.get('generated_at', '—')} on dataset {report.get('dataset', '—')}")
    scalar_keys = [
        key for key, value in report.items() if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    columns = st.columns(max(1, min(5, len(scalar_keys))))
    for index, key in enumerate(scalar_keys):
        value = report[key]
        columns[index % len(columns)].metric(
            key.replace("_", " "), f"{value:.3f}" if isinstance(value, float) else value
        )
    left, right = st.columns(2)
    matrix = report.get("confusion_matrix")
    if isinstance(matrix, dict) and matrix:
        grid = pd.DataFrame(matrix).T.fillna(0)
        figure = px.imshow(grid, text_auto=True, labels={"x": "predicted", "y": "expected", "color": "tickets"})
        figure.update_layout(**{**LAYOUT, "title": "Decision confusion matrix"})
        left.plotly_chart(figure, width="stretch", key="metrics_confusion")
    curve = report.get("threshold_curve")
    if isinstance(curve, list) and curve:
        frame = pd.DataFrame(curve)
        if {"threshold", "precision", "coverage"} <= set(frame.columns):
            figure = px.line(frame, x="threshold", y=["precision", "coverage"], markers=True)
            figure.update_layout(**{**LAYOUT, "title": "Auto-send threshold: precision and coverage"})
            right.plotly_chart(figure, width="stretch", key="metrics_curve")
    per_category = report.get("per_category")
    if isinstance(per_category, dict) and per_category:
        categories = pd.DataFrame(per_category).T.reset_index(names="category")
        st.dataframe(categories, hide_index=True, width="stretch")
        csv_button(categories, "evaluation per category")
