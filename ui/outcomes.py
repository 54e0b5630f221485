"""The outcome views shared by the pages: the resolution funnel (Metrics), knowledge gaps (Knowledge Base) and the
autopilot switched off by the durable floor (Home). Each reads through the engine and renders; no rules here."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from engine.core.models import utcnow
from engine.operators.exports import to_safe_csv
from engine.outcomes.outcomes import autopilot_switch_offs, outcome_breakdown, outcome_funnel, outcome_labels
from engine.runtime import Runtime
from kb.gaps import knowledge_gaps
from ui.components import plain
from ui.tables import in_words, show_table

FLOOR_NOTICE_DAYS = 7


def resolution_funnel(runtime: Runtime, start: datetime) -> None:
    """Received → answered automatically → confirmed or assumed → durable, reopen rate and CSAT, automatic vs human."""
    with runtime.factory() as session:
        funnel = outcome_funnel(session, start)
        labels = outcome_labels(session)
        tables = {by: pd.DataFrame(outcome_breakdown(session, start, by)) for by in ("category", "source", "week")}
    automatic, human = funnel["automatic"], funnel["human"]
    st.subheader("Resolution outcomes")
    st.caption(
        "Confirmed: the customer said yes (link or reply). Assumed: no reply within the window. "
        "Durable: not re-opened within the durable window. Re-opened: the customer said no or wrote back."
    )
    stages = pd.DataFrame(
        {
            "stage": ["received", "answered automatically", "confirmed or assumed", "durable"],
            "tickets": [
                funnel["received"],
                automatic["resolved"],
                automatic["confirmed"] + automatic["assumed"],
                automatic["durable"],
            ],
        }
    )
    cards = st.columns(5)
    cards[0].metric("Answered automatically", f"{automatic['resolved']:,}", border=True)
    cards[1].metric("Confirmed", f"{automatic['confirmed']:,}", border=True)
    cards[2].metric("Durable", f"{automatic['durable']:,}", border=True)
    for card, (name, part) in zip(cards[3:], (("automatic", automatic), ("human", human)), strict=True):
        csat = "no ratings yet" if part["csat"] is None else f"{part['csat']:.1f} out of 5"
        card.metric(
            f"Re-opened ({name})",
            f"{part['reopen_rate']:.0%}",
            help=f"Share of the {name} resolutions the customer re-opened. Satisfaction: {csat}.",
            border=True,
        )
    show_table(stages, hide_index=True, width="stretch", key="outcomes_funnel")
    compare = pd.DataFrame([{"resolved by": name, **funnel[name]} for name in ("automatic", "human")])
    compare["reopen_rate"] = compare["reopen_rate"].map(lambda share: f"{share:.0%}")
    show_table(in_words(compare), hide_index=True, width="stretch", key="outcomes_compare")
    verdicts = pd.DataFrame([label.__dict__ for label in labels], columns=["category", "confidence", "solved"])
    if not verdicts.empty:
        st.markdown("**AI confidence against the customer's verdict** (confirmed or durable = solved, re-opened = not)")
        verdicts["confidence band"] = (verdicts["confidence"] * 10).astype(int).clip(upper=9) / 10
        calibration = (
            verdicts.groupby(["category", "confidence band"])["solved"]
            .agg(answers="count", solved_share="mean")
            .reset_index()
        )
        show_table(in_words(calibration.round(3)), hide_index=True, width="stretch", key="outcomes_calibration")
    for by, frame in tables.items():
        if frame.empty:
            continue
        st.markdown(f"**Per {by}**")
        show_table(in_words(frame), hide_index=True, width="stretch", key=f"outcomes_by_{by}")
        st.download_button(
            f"CSV · outcomes per {by}",
            to_safe_csv(frame),
            file_name=f"outcomes_per_{by}.csv",
            mime="text/csv",
            key=f"outcomes_csv_{by}",
            icon=":material/download:",
        )


def knowledge_gap_list(runtime: Runtime) -> None:
    """Topics customers ask about that the knowledge base answers weakly: what to write next."""
    days = st.selectbox(
        "Tickets of the last", (7, 30, 90), index=1, format_func=lambda d: f"{d} days", key="kb_gap_days"
    )
    with runtime.factory() as session:
        gaps = knowledge_gaps(session, utcnow() - timedelta(days=days))
    if not gaps:
        st.success("No knowledge gaps: every recent ticket was answered with good evidence.")
        return
    st.caption("Tickets answered with weak or no evidence, and automatic answers the customer re-opened, by topic.")
    frame = pd.DataFrame(
        [
            {
                "write an article about": gap.label,
                "tickets": gap.tickets,
                "re-opened": gap.reopened,
                "examples": " | ".join(gap.examples),
            }
            for gap in gaps
        ]
    )
    show_table(frame, hide_index=True, width="stretch", key="kb_gaps_table")
    st.download_button(
        "CSV · knowledge gaps",
        to_safe_csv(frame),
        file_name="knowledge_gaps.csv",
        mime="text/csv",
        key="kb_gaps_csv",
        icon=":material/download:",
    )


def autopilot_floor_notices(runtime: Runtime) -> None:
    """Tell the leads when the engine switched a category's autopilot off (audit-logged by
    engine/outcomes/outcomes.py)."""
    with runtime.factory() as session:
        entries = autopilot_switch_offs(session, utcnow() - timedelta(days=FLOOR_NOTICE_DAYS))
    for entry in entries:
        details = entry.details
        st.warning(
            f"Autopilot switched off for **{plain(entry.target_id)}** on {entry.at:%Y-%m-%d %H:%M}: "
            f"{details.get('durable_rate', 0):.0%} of its automatic answers stayed solved, below the floor of "
            f"{details.get('floor', 0):.0%}. A lead can switch it on again in Settings.",
            icon="⚠️",
        )
