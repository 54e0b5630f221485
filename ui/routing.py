"""The routing model on the Settings page: the precision its thresholds were chosen for, beside the precision
they kept on the newest tickets held back while choosing them (what a lead can expect of "routed")."""

from __future__ import annotations

import streamlit as st

from engine.analysers.routing import RoutingSummary


def share_at(share: float | None, precision: float | None) -> str:
    if precision is None or not share:
        return "none (no threshold reached the target on those tickets)"
    return f"{share:.0%} of them, right {precision:.0%} of the time"


def routing_panel(summary: RoutingSummary | None, *, target: float, minimum_history: int) -> None:
    st.markdown("**Team routing learned from resolved tickets**")
    if summary is None:
        st.caption(
            f"Not learned yet: it needs {minimum_history:,} resolved tickets. Until then tickets go to a team by "
            "their category, or stay with the first line."
        )
        return
    held_back = int(summary.validation.get("tickets") or 0)
    st.caption(
        f"Learned on {summary.trained_at:%Y-%m-%d %H:%M} from {summary.history:,} resolved tickets, "
        f"{summary.teams} teams. Target precision {target:.0%}; for the specialist signal "
        f"{summary.specialist_precision:.0%}."
    )
    routed = share_at(summary.validation.get("routed_share"), summary.validation.get("routed_precision"))
    specialist = share_at(summary.validation.get("specialist_share"), summary.validation.get("specialist_precision"))
    st.markdown(
        f"- Sent to a team on its own: checked on the newest {held_back:,} of those tickets (held back while the "
        f"threshold was chosen), {routed}.\n"
        f"- Escalated as needing a specialist team: on the same tickets, {specialist}."
    )
