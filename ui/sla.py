"""SLA breaches on Home: what has missed its first-response or resolution target, and what is about to."""

from __future__ import annotations

import streamlit as st

from engine.operators.sla import SlaTargets, sla_breaches
from engine.runtime import Runtime


def _tickets(count: int) -> str:
    return f"{count:,} ticket" + ("" if count == 1 else "s")


def sla_notice(runtime: Runtime) -> None:
    """One line per kind of breach, only when there is one; the queue's Breaching soon view lists them."""
    sla = SlaTargets.of(runtime.settings)
    with runtime.factory() as session:
        breaches = sla_breaches(session, sla)
    late = []
    if breaches.first_response:
        late.append(f"{_tickets(breaches.first_response)} past the first-response target")
    if breaches.resolution:
        late.append(f"{_tickets(breaches.resolution)} past the resolution target")
    if late:
        st.error("SLA breached: " + " · ".join(late) + ". Queue → Breaching soon lists them.", icon="⏰")
    if breaches.soon:
        st.warning(
            f"{_tickets(breaches.soon)} will breach an SLA target within {sla.soon_hours:g} h.",
            icon="⏳",
        )
