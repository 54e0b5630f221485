"""Human words for the desk's internal names: every page shows statuses, events, criteria and labels through here.

The engine keeps its identifiers (they are stored, logged and exported); people read these words instead.
`INTERNAL_IDENTIFIERS` lists the names that must never reach the screen, for the browser test that checks it.
"""

from __future__ import annotations

import re
from typing import Any

from engine.core.enums import ActionKind, MessageKind, OutboxState, TicketStatus

STATUS: dict[str, str] = {
    TicketStatus.NEW: "New",
    TicketStatus.ANALYZING: "Analysing",
    TicketStatus.AWAITING_APPROVAL: "Awaiting approval",
    TicketStatus.AWAITING_CUSTOMER: "Awaiting customer",
    TicketStatus.IN_PROGRESS: "In progress (owned)",
    TicketStatus.ESCALATED: "Escalated",
    TicketStatus.RESOLVED: "Resolved",
    TicketStatus.CLOSED: "Closed",
}
STATUS_COLOUR: dict[str, str] = {
    TicketStatus.NEW: "blue",
    TicketStatus.ANALYZING: "violet",
    TicketStatus.AWAITING_APPROVAL: "orange",
    TicketStatus.AWAITING_CUSTOMER: "gray",
    TicketStatus.IN_PROGRESS: "blue",
    TicketStatus.ESCALATED: "red",
    TicketStatus.RESOLVED: "green",
    TicketStatus.CLOSED: "gray",
}
DRAFT_KIND: dict[str, str] = {
    ActionKind.PROPOSE_RESOLUTION: "resolution draft",
    ActionKind.REQUEST_INFO: "request for information",
    ActionKind.ESCALATE: "escalation",
    ActionKind.MANUAL_REPLY: "reply written by a person",
}
DELIVERY: dict[str, str] = {
    OutboxState.PENDING: "queued",
    OutboxState.SENDING: "sending",
    OutboxState.SENT: "delivered",
    OutboxState.FAILED: "failed",
    OutboxState.SUPPRESSED: "not sent (blocked)",
    OutboxState.UNCERTAIN: "delivery unconfirmed",
    OutboxState.BOUNCED: "bounced",
}
DELIVERY_COLOUR: dict[str, str] = {
    OutboxState.PENDING: "gray",
    OutboxState.SENDING: "blue",
    OutboxState.SENT: "green",
    OutboxState.FAILED: "red",
    OutboxState.SUPPRESSED: "orange",
    OutboxState.UNCERTAIN: "orange",
    OutboxState.BOUNCED: "red",
}
MESSAGE_KIND: dict[str, str] = {
    MessageKind.ACKNOWLEDGEMENT: "acknowledgement",
    MessageKind.RESOLUTION: "resolution",
    MessageKind.REQUEST_INFO: "request for information",
    MessageKind.MANUAL_REPLY: "reply",
    "original": "original request",
    "initial": "original request",
    "reply": "customer reply",
    "follow_up": "customer follow-up",
}
DECISION = {"resolve": "resolve", "ask": "ask the customer", "escalate": "escalate to a person"}
EVENT = {
    "received": "Received",
    "received_backlog": "Received from the backlog",
    "claim_released": "Queued for analysis again (engine stopping)",
    "received_history": "Imported with its history",
    "reply_received": "Customer replied",
    "resolution_confirmed": "Customer confirmed the answer solved it",
    "resolution_rejected": "Customer said the answer did not solve it",
    "resolution_outcome": "Outcome of the resolution",
    "reply_read": "Customer reply read by the AI model",
    "attachment_rejected": "Attachment refused",
    "updated": "Updated at the source",
    "status_changed": "Status changed",
    "analysed": "Analysed",
    "confidence_adjusted": "Confidence adjusted by customer outcomes",
    "analysis_discarded": "Analysis discarded",
    "action_proposed": "Draft proposed",
    "action_voided": "Draft withdrawn",
    "approved": "Draft approved",
    "edited": "Draft edited",
    "assigned": "Assigned",
    "overridden": "Decision overridden",
    "taken_over": "Taken over",
    "reanalysis_requested": "Re-analysis requested",
    "manual_reply": "Reply written",
    "automatic_message": "Automatic message",
    "automation_skipped": "Automation skipped",
    "claim_expired": "Retried after a stop",
    "requeued": "Queued again",
    "waiting_for_knowledge": "Waiting for the knowledge base",
    "input_held": "Held for a person",
    "email_held": "Mail held for a person",
    "related_ticket": "Linked to another ticket",
    "needs_attention": "Needs attention",
    "email_queued": "Mail queued",
    "email_sent": "Mail delivered",
    "email_suppressed": "Mail blocked",
    "email_unconfirmed": "Mail unconfirmed",
    "email_failed": "Mail failed",
    "email_bounced": "Mail bounced",
    "email_delayed": "Mail delayed",
    "email_delivered": "Mail delivered to the mailbox",
    "email_complained": "Mail marked as spam",
    "email_unsubscribed": "Recipient unsubscribed",
    "email_retry": "Mail retried",
    "email_uncertain": "Mail delivery uncertain",
    "sync_failed": "Update to the source failed",
    "sync_uncertain": "Update to the source unconfirmed",
}
AUDIT_ACTION = {
    "change_policy": "changed the desk policy",
    "edit_draft": "edited a draft",
    "approve_draft": "approved a draft",
    "reject_draft": "rejected a draft",
    "kb_delete": "deleted an article",
    "kb_reindex": "re-indexed the knowledge base",
    "kb_upload": "uploaded an article",
    "manual_reply": "replied by hand",
    "operator_changed": "changed an operator",
    "operator_created": "created an operator",
    "override_decision": "overrode a decision",
    "request_reanalysis": "asked for re-analysis",
    "resolve_uncertain": "settled an unconfirmed mail",
    "set_status": "set a status",
    "sign_in": "signed in",
    "sign_in_failed": "failed to sign in",
    "sign_in_refused": "was refused sign-in",
    "take_over": "took a ticket over",
    "assign": "assigned a ticket",
}
CRITERION = {
    "code_change_complexity": "Code change needed",
    "new_feature_scope": "New feature scope",
    "dev_team_involvement": "Developers needed",
    "estimated_hours": "Estimated effort",
    "system_impact": "System impact",
    "dependency_complexity": "Dependencies involved",
}
GAP = {
    "error": "the exact error message",
    "steps": "the steps that lead to the problem",
    "since": "when it started",
    "affected": "who or what is affected",
    "place": "where they connect from, on which device",
    "account": "which account and application",
    "mailbox": "which mailbox and mail app",
    "device": "which device",
    "application": "which application and version",
    "workspace": "which workspace",
    "browser": "which browser, and whether others see it too",
    "invoice": "which invoice or subscription",
    "discrepancy": "what is wrong on it",
}
FIELD = {
    "first_response_minutes": "First response (minutes)",
    "resolution_hours": "Resolution (hours)",
    "direction": "Direction",
    "in": "received",
    "out": "resolved",
    "measure": "Measure",
    "value": "Value",
    "tickets": "Tickets",
    "drafts": "Drafts",
    "source": "Source",
    "outcome": "Outcome",
    "reason": "Reason",
    "day": "Day",
    "category": "Category",
    "errors": "Errors",
    "confidence": "AI confidence",
    "autopilot": "autopilot",
    "escalation_weights": "escalation weights",
    "escalation_threshold": "escalation threshold",
    "cli": "the command line",
}
ACTOR = {"engine": "the engine", "cli": "the command line", "seed": "the demo seed"}

_ALL_NAMES: dict[str, str] = {
    **{str(key): value for key, value in STATUS.items()},
    **{str(key): value for key, value in DRAFT_KIND.items()},
    **{str(key): value for key, value in DELIVERY.items() if "_" in str(key)},
    **{key: value for key, value in EVENT.items() if "_" in key},
    **{key: value for key, value in AUDIT_ACTION.items() if "_" in key},
    **CRITERION,
    **{key: value for key, value in FIELD.items() if "_" in key},
}
INTERNAL_IDENTIFIERS = tuple(
    sorted(name for name in _ALL_NAMES if "_" in name or (name[0].isupper() and any(c.isupper() for c in name[1:])))
)
"""Names that give an engine identifier away: snake_case names and CamelCase statuses."""
TELLTALES = ("direction=", "measure=", "§8.1.2", "None", "{'", "propose_resolution")
"""Other fragments that only leak from internals: plotly facet labels, seed section numbers, Python reprs."""
_IDENTIFIER = re.compile(r"\b(" + "|".join(re.escape(name) for name in INTERNAL_IDENTIFIERS) + r")\b")


def words(text: str | None) -> str:
    """`text` with every internal name in it replaced by its human word (engine-written titles and reasons)."""
    return _IDENTIFIER.sub(lambda match: _ALL_NAMES[match.group(1)].lower(), text or "")


def humanise(name: str | None) -> str:
    """A label for an identifier the glossary does not list: underscores become spaces, first letter capital."""
    text = (name or "").replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def status(value: str | None) -> str:
    return STATUS.get(value, humanise(value)) if value else "—"


def status_badge(value: str) -> str:
    return f":{STATUS_COLOUR.get(value, 'gray')}-badge[{status(value)}]"


def event(value: str) -> str:
    return EVENT.get(value, humanise(value))


def delivery(value: str) -> str:
    return DELIVERY.get(value, humanise(value))


def delivery_badge(value: str) -> str:
    return f":{DELIVERY_COLOUR.get(value, 'gray')}-badge[{delivery(value)}]"


def message_kind(value: str) -> str:
    return MESSAGE_KIND.get(value, humanise(value))


def draft_kind(value: str) -> str:
    return DRAFT_KIND.get(value, humanise(value))


def criterion(value: str) -> str:
    return CRITERION.get(value, humanise(value))


def gap(value: str) -> str:
    return GAP.get(value, words(value))


def field(value: str) -> str:
    return FIELD.get(value, humanise(value))


def actor(value: str | None) -> str:
    return ACTOR.get(value or "", value or "—")


def audit_action(value: str) -> str:
    return AUDIT_ACTION.get(value, humanise(value).lower())


def details(values: dict[str, Any]) -> str:
    """Audit details as a sentence: `changed=['autopilot']` reads "changed: autopilot"."""
    parts = []
    for key, value in values.items():
        shown = ", ".join(field(str(item)).lower() for item in value) if isinstance(value, list | tuple) else value
        parts.append(f"{humanise(key).lower()}: {words(str(shown))}")
    return " · ".join(parts)


OUTCOME_COLOUR = {
    "approved as-is": "#16a34a",
    "auto-sent": "#0d9488",
    "edited": "#2563eb",
    "pending": "#f59e0b",
    "rejected": "#dc2626",
    "voided": "#9ca3af",
}
"""One colour per draft outcome, the same in every chart."""
