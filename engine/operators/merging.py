"""Tickets that belong together: merging a customer's duplicate into their other ticket, linking two tickets, and
tags.

A merged duplicate is closed with a pointer to the ticket it went into (`Ticket.merged_into_id`); its messages
stay where they are and the target shows them, so nothing is copied and nothing is lost. Only duplicates from one
requester merge: their conversation then stays with that requester.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from engine.core.enums import Role, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import EmailInteraction, Ticket, TicketLink, TicketTag, utcnow
from engine.core.timeline import record_audit, record_event
from engine.delivery.execution import void_open_drafts
from engine.operators.permissions import Actor, require

TAG = re.compile(r"^[a-z0-9][a-z0-9 ._-]{0,49}$")


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"TCKT-{ticket_id} does not exist")
    return ticket


def merge_ticket(session: Session, actor: Actor, duplicate_id: int, target_id: int, *, reason: str = "") -> Ticket:
    """Close `duplicate_id` as merged into `target_id`: its open drafts are void, both timelines say so."""
    require(actor, Role.AGENT)
    if duplicate_id == target_id:
        raise ValueError("a ticket cannot be merged into itself")
    duplicate, target = _ticket(session, duplicate_id), _ticket(session, target_id)
    if duplicate.merged_into_id is not None:
        raise ValueError(f"{duplicate.reference} is already merged into TCKT-{duplicate.merged_into_id}")
    if target.merged_into_id is not None:
        raise ValueError(f"{target.reference} was itself merged into TCKT-{target.merged_into_id}: merge into that")
    if duplicate.email.lower() != target.email.lower():
        raise ValueError(
            f"{duplicate.reference} and {target.reference} come from different requesters: link them instead"
        )
    duplicate.merged_into_id = target.id
    duplicate.human_touched_at = duplicate.human_touched_at or utcnow()
    duplicate.pending_since = duplicate.claim_token = duplicate.claimed_by = duplicate.claim_expires = None
    void_open_drafts(session, duplicate, reason=f"merged into {target.reference}", actor=actor.label)
    why = f": {reason.strip()}" if reason.strip() else ""
    if duplicate.status != TicketStatus.CLOSED:
        transition(session, duplicate, TicketStatus.CLOSED, actor=actor.label, reason=f"merged into {target.reference}")
    record_event(
        session,
        duplicate,
        "merged_into",
        f"{actor.username} merged it into {target.reference}{why}",
        actor=actor.label,
        target=target.id,
    )
    record_event(
        session,
        target,
        "merged_from",
        f"{actor.username} merged {duplicate.reference} into it{why}",
        actor=actor.label,
        duplicate=duplicate.id,
    )
    record_audit(session, actor.username, "merge_ticket", "ticket", duplicate.id, into=target.id, reason=reason)
    return duplicate


@dataclass(frozen=True)
class MergedConversation:
    """A duplicate merged into a ticket: its first message and every message after it, oldest first."""

    ticket: Ticket
    messages: list[EmailInteraction]


def merged_into(session: Session, target_id: int) -> list[MergedConversation]:
    duplicates = session.scalars(select(Ticket).where(Ticket.merged_into_id == target_id).order_by(Ticket.id)).all()
    return [
        MergedConversation(
            duplicate,
            list(
                session.scalars(
                    select(EmailInteraction)
                    .where(EmailInteraction.ticket_id == duplicate.id, EmailInteraction.direction == "inbound")
                    .order_by(EmailInteraction.id)
                )
            ),
        )
        for duplicate in duplicates
    ]


def link_tickets(session: Session, actor: Actor, ticket_id: int, other_id: int) -> None:
    """Say two tickets belong together (an outage reported twice, a follow-up); each stays its own ticket."""
    require(actor, Role.AGENT)
    if ticket_id == other_id:
        raise ValueError("a ticket cannot be linked to itself")
    first, second = sorted((_ticket(session, ticket_id), _ticket(session, other_id)), key=lambda ticket: ticket.id)
    if session.get(TicketLink, (first.id, second.id)) is not None:
        return
    session.add(TicketLink(ticket_id=first.id, linked_id=second.id, created_by=actor.username))
    for ticket, other in ((first, second), (second, first)):
        record_event(
            session,
            ticket,
            "linked",
            f"{actor.username} linked it to {other.reference}",
            actor=actor.label,
            other=other.id,
        )
    record_audit(session, actor.username, "link_tickets", "ticket", first.id, other=second.id)


def linked_tickets(session: Session, ticket_id: int) -> list[Ticket]:
    links = session.execute(
        select(TicketLink.ticket_id, TicketLink.linked_id).where(
            or_(TicketLink.ticket_id == ticket_id, TicketLink.linked_id == ticket_id)
        )
    ).all()
    others = sorted({b if a == ticket_id else a for a, b in links})
    return list(session.scalars(select(Ticket).where(Ticket.id.in_(others)).order_by(Ticket.id))) if others else []


def clean_tag(tag: str) -> str:
    """A tag as stored: lower case, single spaces; ValueError for one that is empty, too long or odd."""
    cleaned = " ".join(tag.lower().split())
    if not TAG.match(cleaned):
        raise ValueError(f"“{tag[:60]}” is no tag: up to 50 letters, digits, spaces, dots, dashes or underscores")
    return cleaned


def set_tags(session: Session, actor: Actor, ticket_id: int, tags: list[str]) -> list[str]:
    """Replace the ticket's tags; the timeline and audit log say which were added and removed."""
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    wanted = sorted({clean_tag(tag) for tag in tags})
    current = set(ticket_tags(session, ticket.id))
    added, removed = sorted(set(wanted) - current), sorted(current - set(wanted))
    if not added and not removed:
        return wanted
    session.execute(delete(TicketTag).where(TicketTag.ticket_id == ticket.id, TicketTag.tag.in_(removed)))
    session.add_all(TicketTag(ticket_id=ticket.id, tag=tag) for tag in added)
    change = ", ".join([*(f"+{tag}" for tag in added), *(f"−{tag}" for tag in removed)])
    record_event(session, ticket, "tagged", f"{actor.username} changed the tags: {change}", actor=actor.label)
    record_audit(session, actor.username, "set_tags", "ticket", ticket.id, added=added, removed=removed)
    return wanted


def ticket_tags(session: Session, ticket_id: int) -> list[str]:
    return list(session.scalars(select(TicketTag.tag).where(TicketTag.ticket_id == ticket_id).order_by(TicketTag.tag)))


def known_tags(session: Session) -> list[str]:
    return list(session.scalars(select(TicketTag.tag).distinct().order_by(TicketTag.tag)))
