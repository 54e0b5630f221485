"""Normalise what sources deliver into tickets and conversation messages: idempotent, threaded, loop-safe.

Polling the same data twice creates nothing twice: tickets are keyed by (source, external_id) and
messages by (source, message external id). A message that names `TCKT-<id>` or continues a known
thread is a reply to that ticket only when its sender is on it (the requester or a participant); from anyone
else it is a ticket of its own, linked to the one it named and held for a person, and changes nothing there.
A comment read through a source's API is bound by that source: it was written on that ticket by its user.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import TicketIn
from engine.core.addresses import normalise_address, same_address
from engine.core.blobs import store_blob
from engine.core.enums import TicketStatus
from engine.core.lifecycle import ALLOWED, REOPENABLE, transition
from engine.core.models import Attachment, EmailInteraction, OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.timeline import record_event
from engine.intake.reply_classifier import classify_reply
from engine.outcomes.outcomes import record_reply_outcome
from engine.trust.guards import suspicious_input_reasons
from engine.trust.mailguard import automatic_reason, unverified_sender

log = logging.getLogger(__name__)
REFERENCE = re.compile(r"\bTCKT-(\d{1,12})\b", re.IGNORECASE)
MAX_NAMED_TICKETS = 10
"""A message naming more tickets than this is checked against the first ones only: a subject full of references
must not cost a look-up each."""


@dataclass(frozen=True)
class IngestResult:
    ticket_id: int | None
    """None only for an `unattached` comment: its ticket is not one we hold, so it is recorded nowhere."""
    outcome: Literal["created", "history", "updated", "reply", "duplicate", "automatic", "unattached"]


CLOSED_AT_SOURCE = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})


def ingest(session: Session, item: TicketIn, settings: Settings) -> IngestResult:
    """Record `item` once: a new ticket, an update, or a message on the ticket it continues."""
    if item.kind in ("email", "comment") and (existing := _known_message(session, item)):
        return IngestResult(existing.ticket_id, "duplicate")
    if item.kind == "comment":
        return _comment(session, item, settings)
    ticket = session.scalar(select(Ticket).where(Ticket.source == item.source, Ticket.external_id == item.external_id))
    if ticket is not None:
        return _update(session, ticket, item)
    named = None
    if item.kind == "email" and (tickets := _tickets_named(session, item)):
        verified = unverified_sender(item.headers, item.requester_email, settings.MAIL_AUTHSERV_ID) is None
        thread = next((t for t in tickets if is_participant(session, t, item.requester_email)), None)
        if verified and thread is not None:
            return _reply(session, thread, item, settings)
        named = thread or tickets[0]
    try:
        with session.begin_nested():
            return _create(session, item, settings, named)
    except IntegrityError:
        # Another worker created it between our look-up and insert: it is a duplicate now.
        log.info("concurrent ingest of %s/%s", item.source, item.external_id)
        ticket = session.scalar(
            select(Ticket).where(Ticket.source == item.source, Ticket.external_id == item.external_id)
        )
        if ticket is None:
            raise
        return IngestResult(ticket.id, "duplicate")


def _known_message(session: Session, item: TicketIn) -> EmailInteraction | None:
    return session.scalar(
        select(EmailInteraction).where(
            EmailInteraction.source == item.source, EmailInteraction.external_id == item.external_id
        )
    )


def _tickets_named(session: Session, item: TicketIn) -> list[Ticket]:
    """The tickets this message says it continues, most explicit first: by `TCKT-<id>` in the subject, by the
    In-Reply-To/References chain, by conversation id (newest first)."""
    found: dict[int, None] = dict.fromkeys(int(match.group(1)) for match in REFERENCE.finditer(item.subject))
    ids = [value for value in (item.in_reply_to, *item.references) if value]
    if ids:
        found.update(
            dict.fromkeys(session.scalars(select(OutboxMessage.ticket_id).where(OutboxMessage.message_id.in_(ids))))
        )
        found.update(
            dict.fromkeys(
                session.scalars(select(EmailInteraction.ticket_id).where(EmailInteraction.message_id.in_(ids)))
            )
        )
    if item.thread_id:
        found.update(
            dict.fromkeys(
                session.scalars(select(Ticket.id).where(Ticket.thread_key == item.thread_id).order_by(Ticket.id.desc()))
            )
        )
    return [ticket for ticket_id in list(found)[:MAX_NAMED_TICKETS] if (ticket := session.get(Ticket, ticket_id))]


def participants(session: Session, ticket: Ticket) -> set[str]:
    """Who may continue `ticket`: its requester, every address the desk wrote to or heard from on it, and the people
    its source names as part of it (`additional_info["participants"]`), each in normal form."""
    named = (ticket.additional_info or {}).get("participants") or []
    addresses = {ticket.email, *(str(address) for address in named if isinstance(address, str))}
    addresses.update(session.scalars(select(OutboxMessage.to_address).where(OutboxMessage.ticket_id == ticket.id)))
    addresses.update(
        session.scalars(
            select(EmailInteraction.from_address).where(
                EmailInteraction.ticket_id == ticket.id, EmailInteraction.direction == "inbound"
            )
        )
    )
    return {normal for address in addresses if (normal := normalise_address(address))}


def is_participant(session: Session, ticket: Ticket, sender: str) -> bool:
    """Whether `sender` is on `ticket`, so their message may thread onto it."""
    return normalise_address(sender) in participants(session, ticket)


def _comment(session: Session, item: TicketIn, settings: Settings) -> IngestResult:
    """A reply written at the source: the same path as an e-mail reply, on the ticket it was written on.

    The source bound it: its user wrote it on that ticket (the Jira connector passes only the reporter's), so its
    author is a participant; only the requester's comment still settles or re-opens a resolution."""
    ticket = session.scalar(
        select(Ticket).where(Ticket.source == item.source, Ticket.external_id == item.parent_external_id)
    )
    if ticket is None:
        log.info("comment %s/%s: ticket %s is not one we hold", item.source, item.external_id, item.parent_external_id)
        return IngestResult(None, "unattached")
    return _reply(session, ticket, item, settings)


def _create(session: Session, item: TicketIn, settings: Settings, named: Ticket | None = None) -> IngestResult:
    """A new ticket; `named` is the ticket the message claimed to continue although its sender is not on it."""
    if item.history:
        return _create_history(session, item, settings)
    reason = automatic_reason(item.headers, item.requester_email, item.subject, settings.from_address)
    ticket = _new_ticket(
        session,
        item,
        status=TicketStatus.NEW,
        additional_info=item.additional_info or None,
        automatic_reason=reason,
        related_ticket_id=named.id if named else None,
        pending=True,
    )
    message = _add_message(session, ticket, item, "initial", reason) if item.kind == "email" else None
    _store_attachments(session, ticket, message, item, settings)
    warnings = input_warnings(item, settings)
    if named is not None:
        warnings.append(_keep_apart(session, ticket, named, item, settings))
    hold_for_review(session, ticket, warnings)
    record_event(
        session,
        ticket,
        "received",
        f"Received from {item.source}: {item.subject[:120]}",
        actor=f"source:{item.source}",
        external_id=item.external_id,
        automatic=reason,
    )
    if reason:
        record_event(session, ticket, "automatic_message", f"Automatic message ({reason}): no automated reply")
    return IngestResult(ticket.id, "created")


def _keep_apart(session: Session, ticket: Ticket, named: Ticket, item: TicketIn, settings: Settings) -> str:
    """Tell the people on both tickets that `ticket` claimed to continue `named`; the reason it is held."""
    sender = item.requester_email
    if is_participant(session, named, sender):  # on the ticket, but the mail server did not verify the address
        reason = f"claims to continue {named.reference} from {sender}, an address the mail server did not verify"
    else:
        reason = (
            f"claims to continue {named.reference}, but {sender} is not its requester or a participant "
            "(a reply to someone else's ticket: possible phishing)"
        )
    record_event(
        session,
        named,
        "related_ticket",
        f"{ticket.reference} from {sender} claims to continue it: kept as its own ticket ({reason}), nothing "
        "changed here",
        actor="customer",
        related_ticket_id=ticket.id,
    )
    record_event(
        session,
        ticket,
        "related_ticket",
        f"Not threaded onto {named.reference}: kept as its own ticket ({reason})",
        actor="customer",
        related_ticket_id=named.id,
    )
    return reason


def _new_ticket(session: Session, item: TicketIn, *, status: TicketStatus, pending: bool, **fields: Any) -> Ticket:
    """The ticket an item describes, stored; `pending` queues it for the pipeline."""
    now = utcnow()
    ticket = Ticket(
        source=item.source,
        external_id=item.external_id,
        external_url=item.external_url,
        email=item.requester_email,
        requester_name=item.requester_name,
        requester_name_verified=item.requester_name_from_directory,
        subject=item.subject[:500],
        description=item.body or item.subject,
        status=status,
        priority=item.priority,
        category=item.category,
        thread_key=item.thread_id or item.message_id,
        pending_since=now if pending else None,
        source_updated_at=item.updated_at,
        created_at=now,
        **fields,
    )
    session.add(ticket)
    session.flush()
    return ticket


def _create_history(session: Session, item: TicketIn, settings: Settings) -> IngestResult:
    """Work finished at the source before we saw it: kept to learn from, with nothing to do and nothing to say."""
    status = TicketStatus.RESOLVED if item.additional_info.get("source_status") == "resolved" else TicketStatus.CLOSED
    resolution = item.additional_info.get("resolution")
    ticket = _new_ticket(
        session,
        item,
        status=status,
        resolution=str(resolution) if resolution else None,
        team=item.team,
        additional_info={**item.additional_info, "history": True},
        pending=False,
    )
    _store_attachments(session, ticket, None, item, settings)
    record_event(
        session,
        ticket,
        "received_history",
        f"Received as history from {item.source} ({status}): not acknowledged, analysed or written back",
        actor=f"source:{item.source}",
        external_id=item.external_id,
    )
    return IngestResult(ticket.id, "history")


def _update(session: Session, ticket: Ticket, item: TicketIn) -> IngestResult:
    """A changed ticket at the source: keep our copy current without re-triggering work twice."""
    if (
        item.updated_at is not None
        and ticket.source_updated_at is not None
        and item.updated_at <= ticket.source_updated_at
    ):
        return IngestResult(ticket.id, "duplicate")
    changed = {
        name: value
        for name, value in (("subject", item.subject[:500]), ("description", item.body), ("priority", item.priority))
        if value and getattr(ticket, name) != value
    }
    ticket.source_updated_at = item.updated_at or ticket.source_updated_at
    if (named := item.additional_info.get("participants")) and named != (ticket.additional_info or {}).get(
        "participants"
    ):
        ticket.additional_info = {**(ticket.additional_info or {}), "participants": named}
    closed = item.history and _close_from_source(session, ticket, item)
    if not changed:
        return IngestResult(ticket.id, "updated" if closed else "duplicate")
    for name, value in changed.items():
        setattr(ticket, name, value)
    record_event(
        session,
        ticket,
        "updated",
        f"Updated at {item.source}: {', '.join(changed)}",
        actor=f"source:{item.source}",
        fields=sorted(changed),
    )
    return IngestResult(ticket.id, "updated")


def _close_from_source(session: Session, ticket: Ticket, item: TicketIn) -> bool:
    """The source closed a ticket we hold as open work: close ours too where the lifecycle allows; never reopen."""
    current = TicketStatus(ticket.status)
    if current in CLOSED_AT_SOURCE:
        return False
    if TicketStatus.CLOSED not in ALLOWED[current]:
        log.warning("%s was closed at %s but is %s here: left as it is", ticket.reference, item.source, current)
        return False
    resolution = item.additional_info.get("resolution")
    if resolution and not ticket.resolution:
        ticket.resolution = str(resolution)
    ticket.pending_since = None
    transition(session, ticket, TicketStatus.CLOSED, actor=f"source:{item.source}", reason=f"closed at {item.source}")
    return True


def _surviving(session: Session, ticket: Ticket) -> Ticket:
    """The ticket a merged duplicate went into (through merges of merges): where its conversation goes on."""
    seen = {ticket.id}
    while ticket.merged_into_id is not None and ticket.merged_into_id not in seen:
        target = session.get(Ticket, ticket.merged_into_id)
        if target is None:
            break
        seen.add(target.id)
        ticket = target
    return ticket


def _reply(session: Session, ticket: Ticket, item: TicketIn, settings: Settings) -> IngestResult:
    if (surviving := _surviving(session, ticket)) is not ticket:
        # A customer answering the duplicate a person merged away: the reply belongs to the ticket it went into.
        record_event(
            session,
            ticket,
            "reply_redirected",
            f"Reply from {item.requester_email} moved to {surviving.reference}, the ticket this one was merged into",
            actor="customer",
            into=surviving.id,
        )
        record_event(
            session,
            surviving,
            "reply_redirected",
            f"Reply from {item.requester_email} to {ticket.reference} (merged into this one) moved here",
            actor="customer",
            merged=ticket.id,
        )
        ticket = surviving
    reason = automatic_reason(item.headers, item.requester_email, item.subject, settings.from_address)
    message = _add_message(session, ticket, item, "automatic" if reason else "reply", reason)
    _store_attachments(session, ticket, message, item, settings)
    hold_for_review(session, ticket, input_warnings(item, settings))
    if reason:
        record_event(
            session,
            ticket,
            "automatic_message",
            f"Automatic message received ({reason}): not answered",
            actor=f"source:{item.source}",
            message_id=message.id,
        )
        return IngestResult(ticket.id, "automatic")
    record_event(
        session, ticket, "reply_received", f"Reply from {item.requester_email}", actor="customer", message_id=message.id
    )
    finished = ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
    if ticket.taken_over_by or ticket.status == TicketStatus.ESCALATED:
        ticket.action_required = True
        record_event(session, ticket, "needs_attention", "Customer replied on a ticket held by a person")
    elif finished and not same_address(item.requester_email, ticket.email):
        # Only the requester's word settles or re-opens a resolution; a participant's goes to a person.
        ticket.action_required = True
        record_event(
            session,
            ticket,
            "needs_attention",
            f"{item.requester_email}, a participant but not the requester, replied on a {ticket.status} ticket: "
            "the resolution stands until a person decides",
        )
        return IngestResult(ticket.id, "reply")
    elif finished and record_reply_outcome(session, ticket, classify_reply(item.body), sender=item.requester_email):
        return IngestResult(ticket.id, "reply")
    elif TicketStatus(ticket.status) in REOPENABLE:
        transition(session, ticket, TicketStatus.NEW, actor="customer", reason="customer replied")
        ticket.pending_since = utcnow()
    else:
        ticket.pending_since = utcnow()
    return IngestResult(ticket.id, "reply")


def input_warnings(item: TicketIn, settings: Settings) -> list[str]:
    """What about this message means a person should read it before anything automatic goes back."""
    warnings = suspicious_input_reasons(f"{item.subject}\n{item.body}")
    if item.kind == "email" and (
        unverified := unverified_sender(item.headers, item.requester_email, settings.MAIL_AUTHSERV_ID)
    ):
        warnings.append(unverified)
    if item.control_characters_removed:
        warnings.append("control characters were removed from the text")
    if hidden := item.additional_info.get("hidden_text"):
        ways = sorted({str(entry.get("how")) for entry in hidden if isinstance(entry, dict)})  # type: ignore[union-attr]
        warnings.append(f"the HTML hides text from its reader ({', '.join(ways)}): shown apart, marked hidden")
    for attachment in item.attachments:
        if attachment.left_at_source == "not_fetched":
            warnings.append(f"attachment {attachment.filename} was not fetched: {attachment.reason}")
        elif attachment.left_at_source == "too_large" or len(attachment.data) > settings.MAX_ATTACHMENT_BYTES:
            warnings.append(f"attachment {attachment.filename} was too large to examine")
    return warnings


def hold_for_review(session: Session, ticket: Ticket, warnings: list[str]) -> None:
    """Record input warnings on the ticket; the auto-send policy holds every message for it while any exist."""
    if not warnings:
        return
    info = dict(ticket.additional_info or {})
    info["input_warnings"] = sorted({*info.get("input_warnings", []), *warnings})
    ticket.additional_info = info
    record_event(session, ticket, "input_held", "Held for a person: " + "; ".join(warnings), warnings=warnings)


def _add_message(
    session: Session, ticket: Ticket, item: TicketIn, email_type: str, reason: str | None
) -> EmailInteraction:
    message = EmailInteraction(
        ticket_id=ticket.id,
        direction="inbound",
        email_type=email_type,
        source=item.source,
        external_id=item.external_id,
        message_id=item.message_id,
        in_reply_to=item.in_reply_to,
        references=" ".join(item.references) or None,
        from_address=item.requester_email,
        subject=item.subject[:500],
        body=item.body,
        headers=item.headers,
        automatic_reason=reason,
    )
    session.add(message)
    session.flush()
    return message


def _store_attachments(
    session: Session, ticket: Ticket, message: EmailInteraction | None, item: TicketIn, settings: Settings
) -> None:
    """Keep each attachment's bytes once per content hash; an oversized one is recorded, not stored."""
    for attachment in item.attachments:
        size = len(attachment.data)
        row = Attachment(
            ticket_id=ticket.id,
            email_interaction_id=message.id if message else None,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=size,
        )
        if attachment.left_at_source is not None:
            row.status, row.error = attachment.left_at_source, attachment.reason
            row.size = attachment.declared_size or 0
            record_event(
                session,
                ticket,
                "attachment_rejected",
                f"Attachment {attachment.filename} not fetched from {item.source}: {attachment.reason}",
            )
        elif size > settings.MAX_ATTACHMENT_BYTES:
            row.status = "too_large"
            row.error = f"{size} bytes is over the {settings.MAX_ATTACHMENT_BYTES}-byte limit (MAX_ATTACHMENT_BYTES)"
            record_event(
                session, ticket, "attachment_rejected", f"Attachment {attachment.filename} not stored: too large"
            )
        else:
            row.sha256 = store_blob(session, attachment.data)
        session.add(row)
