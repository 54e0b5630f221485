"""The routing model on the Settings page: the precision its thresholds were chosen for, beside the precision
they kept on the newest tickets held back while choosing them, on tickets the choice never saw, and on the desk's
own tickets since (what a lead can expect of "routed", and what it got)."""

from __future__ import annotations

import streamlit as st

from engine.analysers.routing import RoutedOutcome, RoutingSummary, wilson_interval

INTERVAL_Z = 1.645
"""Two-sided 90 % Wilson interval: a precision measured on a hundred tickets is only known to about ±6 points, and
the lead should see that before trusting the second digit (on the IT tickets, validation and later tickets
differed by up to 4 points either way, bench/routing.py)."""


def precision_on(right: float, counted: int) -> str:
    """ "right 86% of the time (90% interval 79–91%, 152 tickets)"."""
    low, high = wilson_interval(right, counted, INTERVAL_Z)
    return f"right {right:.0%} of the time (90% interval {low * 100:.0f}–{high:.0%}, {counted:,} tickets)"


def share_at(share: float | None, precision: float | None, tickets: int) -> str:
    if precision is None or not share:
        return "none (no threshold reached the target on those tickets)"
    return f"{share:.0%} of them, {precision_on(precision, max(1, round(share * tickets)))}"


def since_trained_line(outcome: RoutedOutcome, target: float) -> str:
    if not outcome.finished:
        return "- On this desk since it was learned: no ticket it sent to a team has finished yet."
    right = precision_on(outcome.kept / outcome.finished, outcome.finished)
    return (
        f"- On this desk since it was learned: of the {outcome.finished:,} finished tickets it sent to a team on "
        f"its own, {outcome.kept:,} finished with that team, {right} (target {target:.0%}; a person moved the others)."
    )


def routing_lines(summary: RoutingSummary) -> str:
    """What the thresholds kept where they were chosen, where a choice made without those tickets landed, and
    what routing got on the desk's tickets since."""
    validation = summary.validation
    held_back = int(validation.get("tickets") or 0)
    routed = share_at(validation.get("routed_share"), validation.get("routed_precision"), held_back)
    specialist = share_at(validation.get("specialist_share"), validation.get("specialist_precision"), held_back)
    lines = [
        f"- Sent to a team on its own: checked on the newest {held_back:,} of those tickets (held back while the "
        f"threshold was chosen), {routed}.",
        f"- Escalated as needing a specialist team: on the same tickets, {specialist}.",
    ]
    checked = int(validation.get("checked_tickets") or 0)
    if checked:
        kept = share_at(validation.get("checked_routed_share"), validation.get("checked_routed_precision"), checked)
        lines.append(
            f"- On tickets the choice never saw: a threshold chosen on the older {held_back - checked:,} of them "
            f"alone routed {kept} on the newest {checked:,} (target {summary.target_precision:.0%})."
        )
    if summary.since_trained is not None:
        lines.append(since_trained_line(summary.since_trained, summary.target_precision))
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
