"""What mail providers report about the messages we sent (delivered, bounced, complained, unsubscribed), on
the tickets' timelines.

Connectors read their provider's event log or webhooks into `DeliveryEvent` records; this module is the
engine side: it finds the outbox message an event is about and records the event once per provider event
id, so a webhook and a later poll of the same event never show it twice. A delivery status notification
(RFC 3464) that arrives in a polled mailbox is read the same way: it lands on the ticket of the message it
returns, marks that message bounced, and opens no ticket of its own.
"""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import DeliveryEvent, DeliveryEvents, TicketIn
from engine.core.db import exclusive, transaction
from engine.core.enums import OutboxState
from engine.core.models import OutboxMessage, SourceCursor, Ticket, TimelineEvent, utcnow
from engine.core.timeline import record_event

DELIVERY_TYPES = ("email_delivered", "email_bounced", "email_delayed", "email_complained", "email_unsubscribed")
REPORTED_ACTIONS = {"failed": "email_bounced", "delayed": "email_delayed", "delivered": "email_delivered"}
"""RFC 3464 Action values and the event each is; `relayed` and `expanded` say nothing about the mailbox."""
NEEDS_A_PERSON = frozenset({"email_bounced", "email_complained", "email_unsubscribed"})


def cursor_name(events: DeliveryEvents) -> str:
    return f"{events.name}:events"


def record_delivery_event(session: Session, event: DeliveryEvent) -> str | None:
    """Put one delivery event on its ticket's timeline, once; returns the timeline type, or None if ignored
    (not a message of ours, or already recorded)."""
    outbox = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == event.message_id))
    if outbox is None:
        return None
    key = f"{event.provider}_event_id"
    earlier = session.scalars(
        select(TimelineEvent.data).where(
            TimelineEvent.ticket_id == outbox.ticket_id, TimelineEvent.type.in_(DELIVERY_TYPES)
        )
    ).all()
    if any(data.get(key) == event.event_id for data in earlier):
        return None
    ticket = session.get(Ticket, outbox.ticket_id)
    assert ticket is not None
    recipient = event.recipient or outbox.to_address
    titles = {
        "email_delivered": f"{outbox.kind} delivered to {recipient}",
        "email_bounced": f"{outbox.kind} to {recipient} bounced" + (f": {event.reason}" if event.reason else ""),
        "email_delayed": f"{outbox.kind} to {recipient} delayed" + (f": {event.reason}" if event.reason else ""),
        "email_complained": f"{recipient} marked the {outbox.kind} as spam",
        "email_unsubscribed": f"{recipient} unsubscribed",
    }
    if event.kind in NEEDS_A_PERSON:
        ticket.action_required = True
    if event.kind == "email_bounced":
        outbox.state = OutboxState.BOUNCED
        outbox.last_error = f"bounced: {event.reason}"[:2000] if event.reason else "bounced"
    record_event(
        session,
        ticket,
        event.kind,
        titles[event.kind],
        actor=event.provider,
        outbox_id=outbox.id,
        message_id=outbox.message_id,
        reason=event.reason,
        **{key: event.event_id},
    )
    return event.kind


def record_returned_mail(session: Session, item: TicketIn) -> str | None:
    """A delivery status notification about a message of ours, put on that message's ticket instead of opening a
    ticket. Returns the outcome to count, or None when the item is not one (or names no message of ours: it is then
    taken in as any other mail, where the automatic-mail check holds it)."""
    report = item.delivery_report
    if report is None or not report.message_ids or report.action not in REPORTED_ACTIONS:
        return None
    outbox = session.scalar(
        select(OutboxMessage).where(OutboxMessage.message_id.in_(report.message_ids)).order_by(OutboxMessage.id)
    )
    if outbox is None:
        return None
    event = DeliveryEvent(
        provider=item.source,
        event_id=item.external_id,
        kind=REPORTED_ACTIONS[report.action],  # type: ignore[arg-type]
        message_id=outbox.message_id,
        recipient=report.recipient,
        reason=" ".join(part for part in (report.status, report.diagnostic) if part),
    )
    kind = record_delivery_event(session, event)
    return kind.removeprefix("email_") if kind else "duplicate"


def poll_delivery_events(engine: Engine, factory: sessionmaker[Session], events: DeliveryEvents) -> dict[str, int]:
    """Read the provider's event log after the stored cursor and put deliveries, bounces and complaints on tickets."""
    counts: dict[str, int] = {}
    name = cursor_name(events)
    with exclusive(engine, name) as acquired:
        if not acquired:
            return {"skipped": 1}
        with factory() as session:
            stored = session.get(SourceCursor, name)
            cursor = stored.cursor if stored else None
        for page in events.pages(cursor):
            with transaction(factory) as session:
                for event in page.events:
                    kind = record_delivery_event(session, event) or "ignored"
                    counts[kind] = counts.get(kind, 0) + 1
                if page.ignored:
                    counts["ignored"] = counts.get("ignored", 0) + page.ignored
                session.merge(SourceCursor(source=name, cursor=page.cursor, updated_at=utcnow()))
    return counts
