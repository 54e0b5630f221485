"""Human words for the desk's internal names: every page shows statuses, events, criteria and labels through here.

The engine keeps its identifiers (they are stored, logged and exported); people read these words instead.
`INTERNAL_IDENTIFIERS` lists the names that must never reach the screen, for the browser test that checks it.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from engine.connector_status import connector_label
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
    "model_confidence": "AI model's confidence calibrated",
    "analysis_discarded": "Analysis discarded",
    "action_proposed": "Draft proposed",
    "action_voided": "Draft withdrawn",
    "approved": "Draft approved",
    "edited": "Draft edited",
    "assigned": "Assigned",
    "assigned_to_person": "Assigned to a person",
    "note_added": "Internal note",
    "merged_into": "Merged into another ticket",
    "merged_from": "Another ticket merged in",
    "reply_redirected": "Reply moved to the surviving ticket",
    "linked": "Linked to another ticket",
    "tagged": "Tags changed",
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
    "sign_out": "signed out",
    "session_ended": "ended a session",
    "kb_approve_chunk": "approved a quarantined passage",
    "take_backlog": "took a backlog",
    "sign_in_delay_lifted": "lifted a sign-in delay",
    "autopilot_switched_off": "switched autopilot off",
    "sign_in_failed": "failed to sign in",
    "sign_in_refused": "was refused sign-in",
    "take_over": "took a ticket over",
    "assign": "assigned a ticket",
    "learned_mark_general": "let a learned answer be given to other customers",
    "answer_restore": "restored an answer customers had re-opened",
    "learned_publish": "published a learned answer as an article",
    "assign_person": "assigned a ticket to a person",
    "set_operator_team": "put an operator in a team",
    "add_note": "added an internal note",
    "save_canned_reply": "saved a canned reply",
    "delete_canned_reply": "deleted a canned reply",
    "merge_ticket": "merged a ticket",
    "link_tickets": "linked tickets",
    "set_tags": "changed a ticket's tags",
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
ACTOR = {"engine": "the engine", "cli": "the command line", "seed": "the demo seed", "desk": "the desk"}
TEMPLATE = {
    "acknowledgement": "Acknowledgement",
    "resolution": "Resolution",
    "request_info": "Request for information",
}
CATEGORY = {"product_howto": "Product how-to", "product_bug": "Product bug", "*": "any category"}
HEALTH_PART = {
    "database": "Database",
    "outbox": "Outgoing mail",
    "jobs": "Engine jobs",
    "llm": "AI model",
    "mail_transport": "Mail transport",
    "connectors": "Connectors",
    "sources": "Ticket sources",
    "resources": "This machine",
}
FACT = {
    "cpu_percent": "processor in use (%)",
    "memory_percent": "memory in use (%)",
    "disk_percent": "disk in use (%)",
    "oldest_pending_seconds": "oldest queued mail (seconds)",
    "not_yet_tested": "not yet tested",
    "last_error": "last error",
    "last_poll": "last poll",
    "last_finished_at": "last finished",
    "runs": "runs",
    "ok": "working",
    "reopen_rate": "re-open rate",
    "csat": "satisfaction (1–5)",
    "solved_share": "solved share",
    "target_type": "target",
    "auto_send_min_confidence": "auto-send minimum confidence",
    "follow_up_limit": "follow-up questions before escalating",
    "allowed_domains": "allowed domains",
    "contact_points": "contact points",
    "quote_customer_summary": "customer's subject in drafts",
    "durable_floor": "durable floor",
    "durable_floor_min_resolutions": "answers judged before the floor applies",
    "team_routes": "team per category",
}
AUDIT_TARGET = {
    "desk_policy": "policy version",
    "kb_chunk": "knowledge-base passage",
    "kb_document": "knowledge-base document",
    "operator": "operator",
    "connector": "connector",
    "category": "category",
    "outbox": "outgoing mail",
    "action": "draft",
}

_ALL_NAMES: dict[str, str] = {
    **{str(key): value for key, value in STATUS.items()},
    **{str(key): value for key, value in DRAFT_KIND.items()},
    **{str(key): value for key, value in DELIVERY.items() if "_" in str(key)},
    **{key: value for key, value in EVENT.items() if "_" in key},
    **{key: value for key, value in AUDIT_ACTION.items() if "_" in key},
    **CRITERION,
    **{key: value for key, value in FIELD.items() if "_" in key},
    **{key: value for key, value in TEMPLATE.items() if "_" in key},
    **{key: value for key, value in CATEGORY.items() if "_" in key},
    **{key: value for key, value in FACT.items() if "_" in key},
    **{key: value for key, value in HEALTH_PART.items() if "_" in key},
}
INTERNAL_IDENTIFIERS = tuple(
    sorted(name for name in _ALL_NAMES if "_" in name or (name[0].isupper() and any(c.isupper() for c in name[1:])))
)
"""Names that give an engine identifier away: snake_case names and CamelCase statuses."""
TELLTALES = ("direction=", "measure=", "§8.1.2", "None", "{'", "['", "propose_resolution", "operator:", "source:")
"""Other fragments that only leak from internals: plotly facet labels, seed section numbers, Python reprs."""
_IDENTIFIER = re.compile(
    r"\b(" + "|".join(re.escape(name) for name in (*INTERNAL_IDENTIFIERS, TicketStatus.ANALYZING)) + r")\b"
)
_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
_MAIL_TITLE = re.compile(r"^(" + "|".join(re.escape(str(kind)) for kind in MessageKind) + r") ")
"""The outbox's titles open with the kind of message: "manual_reply sent to …" reads "reply sent to …"."""


def words(text: str | None) -> str:
    """`text` with every internal name in it replaced by its human word (engine-written titles and reasons)."""
    text = _MAIL_TITLE.sub(lambda match: f"{MESSAGE_KIND[match.group(1)]} ", text or "")
    return _IDENTIFIER.sub(lambda match: _ALL_NAMES[match.group(1)].lower(), text)


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


def label(name: str) -> str:
    """A column or fact name in words: the glossary's word, else the name with spaces for underscores."""
    return FACT.get(name) or FIELD.get(name) or humanise(name)


def category(value: str | None) -> str:
    return CATEGORY.get(value or "", humanise(value)) if value else "—"


def template(value: str) -> str:
    return TEMPLATE.get(value, humanise(value))


def connector(name: str | None) -> str:
    """A connector's or source's name as people know it ("demo" reads "Demo feed")."""
    return connector_label(name) or humanise(name) or "—"


def actor(value: str | None) -> str:
    """Who did something: an operator by name, a source by its label, the engine in words."""
    name = value or ""
    if name.startswith("operator:"):
        return name.removeprefix("operator:")
    if name.startswith("source:"):
        return connector(name.removeprefix("source:"))
    return ACTOR.get(name, name or "—")


def confidence(share: float | None) -> str:
    """An AI confidence as a whole percent, rounded down as the auto-send check compares it: 0.749 reads 74 %."""
    return "—" if share is None or math.isnan(share) else f"{math.floor(share * 100 + 1e-9)}%"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """ "1 ticket", "2 tickets": a count with its noun in the right number, thousands separated."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def value(item: Any) -> str:
    """Any stored value as text a person reads: no `None`, no Python brackets, names in words, numbers rounded."""
    if item is None or (isinstance(item, float) and math.isnan(item)):
        return "—"
    if isinstance(item, bool):
        return "yes" if item else "no"
    if isinstance(item, datetime):
        return f"{item:%Y-%m-%d %H:%M}"
    if isinstance(item, float):
        return f"{item:,.2f}".rstrip("0").rstrip(".")
    if isinstance(item, dict):
        return "; ".join(f"{label(str(key)).lower()} {value(part)}" for key, part in item.items() if part is not None)
    if isinstance(item, list | tuple | set):
        return ", ".join(value(part) for part in item) or "none"
    text = str(item)
    return humanise(text).lower() if _SNAKE.fullmatch(text) and text not in _ALL_NAMES else words(text)


def audit_action(value: str, facts: dict[str, Any] | None = None) -> str:
    """What an operator did; an ended session reads as the sign-out it was, when it was one."""
    if value == "session_ended" and (facts or {}).get("reason") in ("signed_out", "signed_out_everywhere"):
        return "signed out" if facts and facts["reason"] == "signed_out" else "signed out everywhere"
    return AUDIT_ACTION.get(value, humanise(value).lower())


def audit_target(kind: str, target_id: str, facts: dict[str, Any]) -> str:
    """What an audit entry acted on, in words: the ticket when there is one, else the policy version, the passage,
    the operator by name."""
    ticket = facts.get("ticket")
    if kind == "ticket" or ticket:
        return f"TCKT-{ticket or target_id}"
    if kind == "operator":
        return f"operator {facts.get('of') or facts.get('username') or target_id}"
    if kind == "category":
        return f"category {category(target_id)}"
    if kind == "connector":
        return connector(target_id)
    return f"{AUDIT_TARGET.get(kind, humanise(kind).lower())} {target_id}".strip()


def details(values: dict[str, Any]) -> str:
    """Audit details as a sentence: `changed=['autopilot']` reads "changed: autopilot"; empty values are left out,
    a before/after pair reads "auto send min confidence 0.75 → 0.8"."""
    parts = []
    shown_as_pairs = set(values.get("changes") or {})
    for key, item in values.items():
        if key == "changed" and isinstance(item, list):
            item = [name for name in item if name not in shown_as_pairs]
        if item in (None, "", [], {}):
            continue
        if key == "changes" and isinstance(item, dict):
            parts.extend(f"{label(name).lower()}: {value(pair[0])} → {value(pair[1])}" for name, pair in item.items())
            continue
        shown = ", ".join(label(str(part)).lower() for part in item) if isinstance(item, list | tuple) else value(item)
        parts.append(f"{label(key).lower()}: {shown}")
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
