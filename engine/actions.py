"""What operators may do to tickets and drafts. Every function checks the role, writes the timeline and the audit log.

Approvals bind to the exact draft version the operator saw: an edit or a re-analysis changes or
voids the draft, and approving a version that is no longer current is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from engine.enums import ActionKind, ActionState, MessageKind, Role, TicketStatus
from engine.lifecycle import transition
from engine.models import Action, Ticket, utcnow
from engine.outbox import enqueue_email
from engine.pipeline import execute_action, void_open_drafts
from engine.settings import Settings
from engine.templates import EmailContent, to_html
from engine.timeline import record_audit, record_event

RANK = {Role.VIEWER: 0, Role.AGENT: 1, Role.LEAD: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Actor:
    """The signed-in person on whose behalf an action runs."""

    username: str
    role: Role

    @property
    def label(self) -> str:
        return f"operator:{self.username}"


class PermissionDeniedError(PermissionError):
    pass


class StaleDraftError(ValueError):
    """The draft changed (edited, re-analysed, decided) since the operator looked at it."""


def require(actor: Actor, role: Role) -> None:
    if RANK[actor.role] < RANK[role]:
        raise PermissionDeniedError(f"{actor.username} ({actor.role}) may not do this: needs {role} or above")


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"TCKT-{ticket_id} does not exist")
    return ticket


def _open_draft(session: Session, action_id: int, seen_version: int) -> tuple[Action, Ticket]:
    action = session.get(Action, action_id)
    if action is None:
        raise LookupError(f"action {action_id} does not exist")
    if action.state != ActionState.AWAITING_APPROVAL:
        raise StaleDraftError(f"draft {action_id} is {action.state}, not awaiting approval")
    if action.version != seen_version:
        raise StaleDraftError(f"draft {action_id} is at version {action.version}; you saw version {seen_version}")
    return action, _ticket(session, action.ticket_id)


def approve_draft(session: Session, settings: Settings, actor: Actor, action_id: int, seen_version: int) -> Action:
    """Send the draft exactly as the operator saw it."""
    require(actor, Role.AGENT)
    action, ticket = _open_draft(session, action_id, seen_version)
    record_event(
        session,
        ticket,
        "approved",
        f"{actor.username} approved {action.kind} v{action.version}",
        actor=actor.label,
        action_id=action.id,
    )
    execute_action(session, settings, ticket, action, actor=actor.label)
    record_audit(
        session, actor.username, "approve_draft", "action", action.id, version=action.version, ticket=ticket.id
    )
    return action


def edit_draft(session: Session, actor: Actor, action_id: int, seen_version: int, *, subject: str, body: str) -> Action:
    """Change the draft's text; the new version needs its own approval."""
    require(actor, Role.AGENT)
    action, ticket = _open_draft(session, action_id, seen_version)
    action.subject, action.body = subject, body
    action.version += 1
    action.policy = {**action.policy, "edited_by": actor.username}
    record_event(
        session,
        ticket,
        "edited",
        f"{actor.username} edited {action.kind} → v{action.version}",
        actor=actor.label,
        action_id=action.id,
    )
    record_audit(session, actor.username, "edit_draft", "action", action.id, version=action.version, ticket=ticket.id)
    return action


def reject_draft(session: Session, actor: Actor, action_id: int, seen_version: int, *, reason: str) -> Action:
    """Refuse the draft; the ticket goes to a person."""
    require(actor, Role.AGENT)
    if not reason.strip():
        raise ValueError("a rejection needs a reason")
    action, ticket = _open_draft(session, action_id, seen_version)
    action.state = ActionState.REJECTED
    action.decided_by, action.decided_at = actor.label, utcnow()
    action.reason = reason
    transition(session, ticket, TicketStatus.ESCALATED, actor=actor.label, reason=f"draft rejected: {reason}")
    record_audit(session, actor.username, "reject_draft", "action", action.id, reason=reason, ticket=ticket.id)
    return action


def take_over(session: Session, actor: Actor, ticket_id: int) -> Ticket:
    """A person owns the ticket from now on: automation stops for it, any claim in flight is void."""
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    ticket.taken_over_by = actor.username
    ticket.claim_token = ticket.claimed_by = ticket.claim_expires = None
    ticket.pending_since = None
    void_open_drafts(session, ticket, reason=f"taken over by {actor.username}", actor=actor.label)
    if ticket.status in (TicketStatus.NEW, TicketStatus.ANALYZING, TicketStatus.AWAITING_APPROVAL):
        transition(session, ticket, TicketStatus.ESCALATED, actor=actor.label, reason=f"taken over by {actor.username}")
    record_event(session, ticket, "taken_over", f"{actor.username} took the ticket over", actor=actor.label)
    record_audit(session, actor.username, "take_over", "ticket", ticket.id)
    return ticket


def request_reanalysis(session: Session, actor: Actor, ticket_id: int) -> Ticket:
    """Hand the ticket back to the engine for a fresh analysis; open drafts are void."""
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    ticket.taken_over_by = None
    ticket.pending_since = utcnow()
    void_open_drafts(session, ticket, reason="re-analysis requested", actor=actor.label)
    record_event(
        session, ticket, "reanalysis_requested", f"{actor.username} asked for a new analysis", actor=actor.label
    )
    record_audit(session, actor.username, "request_reanalysis", "ticket", ticket.id)
    return ticket


def send_manual_reply(
    session: Session, settings: Settings, actor: Actor, ticket_id: int, *, subject: str, body: str
) -> Ticket:
    """A person writes to the customer directly; it goes through the outbox like every message."""
    require(actor, Role.AGENT)
    if not body.strip():
        raise ValueError("a reply needs a body")
    ticket = _ticket(session, ticket_id)
    if ticket.reference not in subject:
        subject = f"{subject} [{ticket.reference}]".strip()
    action = Action(
        ticket_id=ticket.id,
        kind=ActionKind.MANUAL_REPLY,
        state=ActionState.EXECUTED,
        subject=subject,
        body=body,
        created_by=actor.label,
        decided_by=actor.label,
        decided_at=utcnow(),
    )
    session.add(action)
    session.flush()
    enqueue_email(
        session,
        settings,
        ticket,
        MessageKind.MANUAL_REPLY,
        EmailContent(subject=subject, body_text=body, body_html=to_html(body)),
        dedupe_key=f"action:{action.id}:v1",
        action=action,
        automated=False,
    )
    record_event(session, ticket, "manual_reply", f"{actor.username} replied", actor=actor.label, action_id=action.id)
    record_audit(session, actor.username, "manual_reply", "ticket", ticket.id, action_id=action.id)
    return ticket


def set_status(session: Session, actor: Actor, ticket_id: int, status: TicketStatus, *, reason: str = "") -> Ticket:
    """Resolve, close or re-route a ticket by hand, within the lifecycle's rules."""
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    transition(session, ticket, status, actor=actor.label, reason=reason or f"set by {actor.username}")
    if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        ticket.pending_since = None
        void_open_drafts(session, ticket, reason=f"ticket {status.lower()} by {actor.username}", actor=actor.label)
    record_audit(session, actor.username, "set_status", "ticket", ticket.id, status=status, reason=reason)
    return ticket
