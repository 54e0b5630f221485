"""The routing model on the Settings page: the precision its thresholds were chosen for, beside the precision
they kept on the newest tickets held back while choosing them, and on tickets the choice never saw (what a lead
can expect of "routed")."""

from __future__ import annotations

import streamlit as st

from engine.analysers.routing import RoutingSummary


def share_at(share: float | None, precision: float | None) -> str:
    if precision is None or not share:
        return "none (no threshold reached the target on those tickets)"
    return f"{share:.0%} of them, right {precision:.0%} of the time"


def routing_lines(summary: RoutingSummary) -> str:
    """What the thresholds kept where they were chosen, and where a choice made without those tickets landed."""
    validation = summary.validation
    held_back = int(validation.get("tickets") or 0)
    routed = share_at(validation.get("routed_share"), validation.get("routed_precision"))
    specialist = share_at(validation.get("specialist_share"), validation.get("specialist_precision"))
    lines = [
        f"- Sent to a team on its own: checked on the newest {held_back:,} of those tickets (held back while the "
        f"threshold was chosen), {routed}.",
        f"- Escalated as needing a specialist team: on the same tickets, {specialist}.",
    ]
    checked = int(validation.get("checked_tickets") or 0)
    if checked:
        kept = share_at(validation.get("checked_routed_share"), validation.get("checked_routed_precision"))
        lines.append(
            f"- On tickets the choice never saw: a threshold chosen on the older {held_back - checked:,} of them "
            f"alone routed {kept} on the newest {checked:,} (target {summary.target_precision:.0%}): expect "
            "about this on new tickets."
        )
    return "\n".join(lines)


def routing_panel(summary: RoutingSummary | None, *, target: float, minimum_history: int) -> None:
    st.markdown("**Team routing learned from resolved tickets**")
    if summary is None:
        st.caption(
            f"Not learned yet: it needs {minimum_history:,} resolved tickets. Until then tickets go to a team by "
            "their category, or stay with the first line."
        )
        return
    st.caption(
        f"Learned on {summary.trained_at:%Y-%m-%d %H:%M} from {summary.history:,} resolved tickets, "
        f"{summary.teams} teams. Target precision {target:.0%}; for the specialist signal "
        f"{summary.specialist_precision:.0%}."
    )
    st.markdown(routing_lines(summary))
