"""Carrying out a decided action: the customer message goes to the outbox and the ticket moves on.

Shared by the engine (automatic sends) and operators (approvals, overrides), so an approved draft and an
automatic one leave the desk the same way.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.enums import ActionKind, ActionState, MessageKind, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import Action, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import EmailContent, to_html
from engine.core.timeline import record_event
from engine.delivery.confirmation_links import confirmation_block
from engine.delivery.outbox import enqueue_email
from engine.outcomes.outcomes import open_outcome

MESSAGE_KIND = {
    ActionKind.PROPOSE_RESOLUTION: MessageKind.RESOLUTION,
    ActionKind.REQUEST_INFO: MessageKind.REQUEST_INFO,
}


def execute_action(session: Session, settings: Settings, ticket: Ticket, action: Action, *, actor: str) -> None:
    """Carry out an approved (or auto-approved) customer message: queue it and move the ticket on."""
    message_kind = MESSAGE_KIND[ActionKind(action.kind)]
    body, links = action.body or "", ""
    if message_kind is MessageKind.RESOLUTION:
        outcome = open_outcome(session, ticket, action, automated=actor == "engine")
        links = confirmation_block(settings, outcome.id)
        body = "\n\n".join(part for part in (body.rstrip(), links) if part)
    content = EmailContent(subject=action.subject or "", body_text=body, body_html=to_html(body))
    enqueue_email(
        session,
        settings,
        ticket,
        message_kind,
        content,
        dedupe_key=f"action:{action.id}:v{action.version}",
        action=action,
        automated=actor == "engine",
        own_text=[links],
    )
    action.state = ActionState.EXECUTED
    action.decided_by = actor
    action.decided_at = utcnow()
    if action.kind == ActionKind.REQUEST_INFO:
        ticket.follow_up_count += 1
        transition(session, ticket, TicketStatus.AWAITING_CUSTOMER, actor=actor, reason="asked for information")
    else:
        ticket.resolution = action.body
        transition(session, ticket, TicketStatus.RESOLVED, actor=actor, reason="resolution sent")


def void_open_drafts(
    session: Session, ticket: Ticket, *, reason: str, actor: str = "engine", refused_by: str | None = None
) -> int:
    """Void drafts awaiting approval when the ticket is re-analysed or re-opened: approvals bind to what was seen.
    `refused_by` names the person who decided otherwise (an override): the drafts are their verdict, not sent as
    drafted (engine/analysers/confidence.py's `operator_verdicts` reads them)."""
    drafts = session.scalars(
        select(Action).where(Action.ticket_id == ticket.id, Action.state == ActionState.AWAITING_APPROVAL)
    ).all()
    for draft in drafts:
        draft.state = ActionState.VOIDED
        if refused_by:
            draft.decided_by, draft.decided_at = refused_by, utcnow()
        draft.reason = f"{draft.reason} — voided: {reason}".strip(" —")
        record_event(
            session,
            ticket,
            "action_voided",
            f"Draft {draft.kind} v{draft.version} voided: {reason}",
            actor=actor,
            action_id=draft.id,
        )
    return len(drafts)
