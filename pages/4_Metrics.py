"""How the desk is doing: volume, automation, deflection, response times, escalations, approvals, AI confidence,
connector errors and the offline evaluation, for a date range and set of sources, each downloadable as CSV."""

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from engine.operators.exports import to_safe_csv
from engine.operators.queries import sources
from engine.outcomes.metrics import (
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
from engine.outcomes.outcome_calibration import MAX_RAISE, MIN_LABELS, PRIOR_CASES, outcome_calibration_table
from engine.outcomes.threshold_history import threshold_history
from ui import glossary
from ui.components import page
from ui.outcomes import resolution_funnel
from ui.tables import in_words, short_headers, show_table

JUDGED_HEADERS = {
    "confirmed or durable": ("solved", "confirmed by the customer, or no complaint for long enough (durable)"),
    "mean confidence": ("confidence", "the answers' mean AI confidence"),
    "adjustment (logit)": ("adjustment", "the offset applied to new confidences in this category (logit)"),
    "fitted ": ("minimum becomes", "the auto-send minimum after this category's adjustment"),
}
THRESHOLD_HEADERS = {
    "minimum confidence": ("minimum", "the auto-send minimum confidence tried"),
    "current setting": ("today", "the desk's minimum today"),
    "sent automatically": ("sent", "drafts that would have gone out on their own"),
    "approved as-is": ("approved", "a person approved them unchanged (right)"),
    "edited": ("edited", "a person edited them before sending (wrong)"),
    "rejected": ("rejected", "a person rejected them (wrong)"),
    "confirmed by the customer": ("confirmed", "the customer confirmed the answer (right)"),
    "re-opened by the customer": ("re-opened", "the customer re-opened the ticket (wrong)"),
    "not known yet": ("unknown", "nobody has said yet"),
    "right when known": ("right", "share right of those whose outcome is known"),
    "coverage": ("coverage", "share of analysed tickets answered automatically"),
}

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
LABELS = {
    name: glossary.field(name)
    for name in ("day", "tickets", "drafts", "source", "outcome", "reason", "errors", "direction", "category")
}
# Every chart split by outcome uses the same colours in the same order.
OUTCOMES: dict[str, Any] = {
    "color_discrete_map": glossary.OUTCOME_COLOUR,
    "category_orders": {"outcome": list(glossary.OUTCOME_COLOUR)},
}


def whole_counts(figure: Any, largest: float, axis: str = "y") -> None:
    """Counts are whole tickets: ticks a whole number apart, about six of them up to the `largest` bar."""
    step = max(1, math.ceil(float(largest) / 6))
    getattr(figure, f"update_{axis}axes")(tick0=0, dtick=step, tickformat=",d", rangemode="tozero")


def wrapped(label: str, width: int = 38) -> str:
    """A long axis label over several lines instead of cut off."""
    words, lines = label.split(), [""]
    for word in words:
        if lines[-1] and len(lines[-1]) + len(word) > width:
            lines.append("")
        lines[-1] = f"{lines[-1]} {word}".strip()
    return "<br>".join(lines)


@st.cache_data(ttl=60, show_spinner="Counting…", max_entries=20)
def load(metrics: MetricsFilter) -> dict[str, Any]:
    """The page's figures for one range and set of sources; a minute's cache makes switching back to Metrics instant."""
    with runtime.factory() as session:
        return {
            "summary": outcomes(session, metrics),
            "volume": tickets_per_day(session, metrics),
            "times": response_times(session, metrics),
            "reasons": escalation_reasons(session, metrics),
            "approvals": approval_outcomes(session, metrics),
            "confidence": confidence_vs_outcome(session, metrics),
            "errors": connector_errors(session, metrics),
            "polls": poll_failures(session),
        }


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


figures = load(metrics)
summary = figures["summary"]
volume = pd.DataFrame(figures["volume"], columns=["day", "source", "direction", "tickets"])
times = pd.DataFrame(figures["times"], columns=["source", "first_response_minutes", "resolution_hours"])
reasons = pd.DataFrame(figures["reasons"], columns=["reason", "tickets"])
approvals = pd.DataFrame(figures["approvals"], columns=["category", "outcome", "drafts"])
confidence = pd.DataFrame(figures["confidence"], columns=["confidence", "outcome", "drafts"])
errors = pd.DataFrame(figures["errors"], columns=["day", "source", "errors"])
polls = pd.DataFrame(figures["polls"])

cards = st.columns(5)
cards[0].metric("Received", f"{summary.received:,}", border=True)
cards[1].metric("Resolved", f"{summary.resolved:,}", border=True)
cards[2].metric(
    "Automation rate",
    percent(summary.automated, summary.resolved),
    delta=f"{summary.automated:,} of {glossary.plural(summary.resolved, 'resolved ticket')}",
    delta_color="off",
    delta_arrow="off",
    help="Of the tickets resolved in this range, the share no person touched (not a share of those received).",
    border=True,
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
            volume.sort_values("day").assign(direction=volume["direction"].map(glossary.field)),
            x="day",
            y="tickets",
            color="source",
            facet_row="direction",
            barmode="stack",
            labels=LABELS,
        )
        figure.update_xaxes(type="category")
        figure.for_each_annotation(lambda note: note.update(text=note.text.split("=")[-1]))
        whole_counts(figure, volume.groupby(["day", "direction"])["tickets"].sum().max())
        figure.update_layout(**{**LAYOUT, "height": 380})
        st.plotly_chart(figure, width="stretch", key="metrics_volume")
        csv_button(volume, "tickets per day")
with right:
    st.subheader("Response and resolution times")
    st.caption("The newest 5,000 tickets received in the range")
    if times.dropna(how="all", subset=["first_response_minutes", "resolution_hours"]).empty:
        st.info("No responses in this range yet.")
    else:
        for measure, panel in zip(("first_response_minutes", "resolution_hours"), st.columns(2), strict=True):
            values = times.dropna(subset=[measure])
            if values.empty:
                panel.caption(f"{glossary.field(measure)}: none yet.")
                continue
            top = max(float(values[measure].max()) * 1.1, 1.0)
            figure = px.histogram(
                values, x=measure, color="source", range_x=[0, top], labels={**LABELS, measure: glossary.field(measure)}
            )
            figure.update_traces(xbins={"start": 0, "end": top, "size": top / 30})
            whole_counts(figure, np.histogram(values[measure], bins=30, range=(0, top))[0].max())
            figure.update_layout(**{**LAYOUT, "height": 300, "yaxis_title": "Tickets", "showlegend": False})
            panel.plotly_chart(figure, width="stretch", key=f"metrics_times_{measure}")
        stats = times[["first_response_minutes", "resolution_hours"]].describe(percentiles=[0.5, 0.9]).T
        stats.index = stats.index.map(glossary.field)
        stats = (
            stats[["count", "50%", "90%", "max"]].round(1).rename(columns={"50%": "median", "90%": "90th percentile"})
        )
        show_table(stats, width="stretch")
        csv_button(times, "response times")

left, right = st.columns(2)
with left:
    st.subheader("Escalation reasons")
    if reasons.empty:
        st.info("Nothing escalated in this range.")
    else:
        figure = px.bar(
            reasons.sort_values("tickets").assign(reason=reasons["reason"].map(lambda r: wrapped(glossary.words(r)))),
            x="tickets",
            y="reason",
            orientation="h",
            labels=LABELS,
        )
        figure.update_yaxes(automargin=True, title=None)
        whole_counts(figure, reasons["tickets"].max(), "x")
        lines = sum(1 + glossary.words(reason).count(" ") // 5 for reason in reasons["reason"])  # wrapped() lines
        figure.update_layout(**{**LAYOUT, "height": max(320, 60 + 24 * lines + 14 * len(reasons))})
        st.plotly_chart(figure, width="stretch", key="metrics_reasons")
        csv_button(reasons, "escalation reasons")
with right:
    st.subheader("Approval outcomes per category")
    if approvals.empty:
        st.info("No AI drafts in this range: with no analyser configured every ticket goes to a person.")
    else:
        figure = px.bar(
            approvals.assign(category=approvals["category"].map(glossary.category)),
            x="category",
            y="drafts",
            color="outcome",
            barmode="stack",
            labels=LABELS,
            **OUTCOMES,
        )
        whole_counts(figure, approvals.groupby("category")["drafts"].sum().max())
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
            confidence.sort_values("confidence"),
            x="confidence",
            y="drafts",
            color="outcome",
            barmode="stack",
            labels=LABELS,
            **OUTCOMES,
        )
        figure.update_xaxes(title="AI confidence (band)", dtick=0.1, range=[-0.05, 1.05])
        whole_counts(figure, confidence.groupby("confidence")["drafts"].sum().max())
        figure.update_layout(**LAYOUT)
        st.plotly_chart(figure, width="stretch", key="metrics_confidence")
        csv_button(confidence, "confidence vs outcome")
with right:
    st.subheader("Connector errors")
    if errors.empty and (polls.empty or not polls["failures"].sum()):
        st.success("No connector errors in this range.")
    if not errors.empty:
        figure = px.bar(errors.sort_values("day"), x="day", y="errors", color="source", labels=LABELS)
        figure.update_xaxes(type="category")
        whole_counts(figure, errors.groupby("day")["errors"].sum().max())
        figure.update_layout(**LAYOUT)
        st.plotly_chart(figure, width="stretch", key="metrics_errors")
        csv_button(errors, "connector errors")
    if not polls.empty:
        polls["last error"] = polls["last error"].where(polls["last error"] != "", "none: the last poll worked")
        show_table(
            in_words(polls.rename(columns={"failures": "failed polls (all time)"})), hide_index=True, width="stretch"
        )

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
        show_table(in_words(categories), hide_index=True, width="stretch")
        csv_button(categories, "evaluation per category")

st.subheader("Customer outcomes of automatic answers")
st.caption(
    "Per category, every automatic answer the customer judged (all time, not just these dates): confirmed or "
    f"durable counts as solved, re-opened as not. From {MIN_LABELS} judged answers on, the gap between the solved "
    "rate and the confidence the answers had is applied to new confidences in that category (as a logit offset, "
    f"shrunk toward the prediction with {PRIOR_CASES:.0f} pseudo-answers); raising is capped at +{MAX_RAISE}, "
    "because a customer who gave up looks like a silent, satisfied one."
)
with runtime.factory() as session:
    judged = pd.DataFrame(outcome_calibration_table(session, runtime.settings))
if judged.empty:
    st.info("No automatic answers judged by customers yet: confirmed, durable and re-opened ones appear here.")
else:
    show_table(
        in_words(judged),
        hide_index=True,
        width="stretch",
        key="metrics_outcome_calibration",
        column_config=short_headers(JUDGED_HEADERS, judged.columns),
    )
    csv_button(judged, "customer outcomes of automatic answers")

st.subheader("Auto-send threshold on this desk's history")
with runtime.factory() as session:
    what_if = threshold_history(session, runtime.settings, metrics)
if not what_if.eligible:
    st.info("No AI resolution drafts in this range yet: the what-if appears once the engine has proposed some.")
else:
    st.caption(
        f"The engine analysed tickets {what_if.analysed:,} times in this range; {what_if.eligible:,} resolution "
        "drafts could have "
        "been sent on their confidence alone (the others were held by a safety check or were not resolutions). "
        "For each minimum AI confidence: how many drafts would have gone out automatically, and what became of "
        "them: a person approved them as-is or the customer confirmed them (right), a person edited or rejected "
        "them or the customer re-opened the ticket (wrong), or nobody has said yet. Right when known leaves the "
        f"unknown out; coverage is the share of analysed tickets answered automatically. Today's minimum is "
        f"{what_if.current:.2f}."
    )
    table = pd.DataFrame(what_if.rows)
    table["current setting"] = table["current setting"].map({True: "◀ today", False: ""})
    share = {
        name: (lambda value: "—" if pd.isna(value) else f"{value:.0%}") for name in ("right when known", "coverage")
    }
    shown = table.style.format({"minimum confidence": "{:.2f}", **share}).apply(
        lambda row: ["font-weight: bold; background-color: #fef3c7" if row["current setting"] else ""] * len(row),
        axis=1,
    )
    show_table(
        shown,
        hide_index=True,
        width="stretch",
        key="metrics_threshold_history",
        column_config=short_headers(THRESHOLD_HEADERS, table.columns),
    )
    csv_button(table, "auto-send threshold on history")
