"""Whether a proposed customer message goes out on its own or waits for a person."""

from __future__ import annotations

from dataclasses import dataclass

from engine.analysis import AnalysisResult
from engine.desk_policy import DeskPolicy
from engine.models import Ticket


@dataclass(frozen=True)
class PolicyVerdict:
    auto_send: bool
    reasons: list[str]


def delivery_verdict(ticket: Ticket, result: AnalysisResult, policy: DeskPolicy) -> PolicyVerdict:
    """Auto-send only when every condition holds; each unmet one is a reason a person sees."""
    held = []
    if not policy.autopilot_on(ticket.source, ticket.category):
        held.append(f"autopilot is off for {ticket.source}/{ticket.category or 'any category'}")
    if ticket.taken_over_by:
        held.append(f"taken over by {ticket.taken_over_by}")
    if result.confidence < policy.auto_send_min_confidence:
        held.append(f"confidence {result.confidence:.2f} below {policy.auto_send_min_confidence:.2f}")
    if result.decision == "resolve" and not result.evidence:
        held.append("no evidence cited")
    if result.error:
        held.append(f"analysis incomplete: {result.error}")
    held.extend(f"guard: {guard}" for guard in result.guards)
    held.extend(f"input: {warning}" for warning in (ticket.additional_info or {}).get("input_warnings", []))
    return PolicyVerdict(auto_send=not held, reasons=held or ["all auto-send conditions met"])
