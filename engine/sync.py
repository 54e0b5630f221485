"""Write what the desk decides back to the source system, and read delivery events from the mail provider.

`sync_back` reads the timeline (written in the same transaction as every change, so nothing is missed)
after a per-source cursor and pushes each event that matters as a note or a state change. The cursor
moves only past events the source accepted. An event the source refuses (4xx) is tried again next run
and, after SYNC_BACK_MAX_ATTEMPTS refusals, recorded as `sync_failed` and passed; while the source is
down or its breaker is open, the run stops and nothing is counted, so an outage drops nothing. A push whose
answer was lost (timeout, reset, cut-off body) may have been applied: the next run asks the source to look
for that note's marker first, so a note is never written twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import SourceUpdate, SyncBack
from connectors.http import ConnectorError, UnreachableError
from engine.db import transaction
from engine.enums import TicketStatus
from engine.jobs import exclusive
from engine.models import OutboxMessage, SourceCursor, Ticket, TimelineEvent, utcnow
from engine.settings import Settings
from engine.timeline import record_event

log = logging.getLogger(__name__)
NOTE_TYPES = frozenset(
    {
        "email_sent",
        "manual_reply",
        "approved",
        "rejected",
        "taken_over",
        "assigned",
        "overridden",
        "email_bounced",
        "email_complained",
    }
)
SYNCED_TYPES = NOTE_TYPES | {"status_changed"}
BATCH = 200


@dataclass
class SyncReport:
    pushed: int = 0
    failed: int = 0
    given_up: int = 0
    stopped: str | None = None
    sources: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value not in (None, {})}


def cursor_name(source: str) -> str:
    return f"sync:{source}"


def sync_back(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, targets: list[SyncBack]
) -> SyncReport:
    """One run of the job: for each source that takes write-back, push its tickets' new timeline events in order."""
    report = SyncReport()
    for target in targets:
        with exclusive(engine, cursor_name(target.name)) as acquired:
            if acquired:
                _sync_one(factory, settings, target, report)
    return report


def _sync_one(factory: sessionmaker[Session], settings: Settings, target: SyncBack, report: SyncReport) -> None:
    with factory() as session:
        state = _load(session, target.name)
        events = session.execute(
            select(TimelineEvent, Ticket)
            .join(Ticket, Ticket.id == TimelineEvent.ticket_id)
            .where(
                Ticket.source == target.name,
                TimelineEvent.id > state["after"],
                TimelineEvent.type.in_(SYNCED_TYPES),
            )
            .order_by(TimelineEvent.id)
            .limit(BATCH)
        ).all()
        updates = [(event.id, ticket.id, as_update(session, event, ticket)) for event, ticket in events]
    for event_id, ticket_id, update in updates:
        try:
            target.push(update, check_first=state["unconfirmed"] == event_id)
        except ConnectorError as error:
            if error.retryable:
                if isinstance(error, UnreachableError) and not error.not_sent:
                    state["unconfirmed"] = event_id
                    _save(factory, target.name, state)
                report.stopped = f"{target.name}: {error}"
                log.warning("sync to %s paused: %s", target.name, error)
                break
            if not _count_failure(factory, settings, target.name, state, event_id, ticket_id, str(error)):
                report.failed += 1
                break
            report.given_up += 1
            continue
        state["after"] = event_id
        state["failures"].pop(str(event_id), None)
        state["unconfirmed"] = None
        _save(factory, target.name, state)
        report.pushed += 1
        report.sources[target.name] = report.sources.get(target.name, 0) + 1


def as_update(session: Session, event: TimelineEvent, ticket: Ticket) -> SourceUpdate:
    """The source-side form of one timeline event: the state to set, or a note that says what happened."""
    if event.type == "status_changed":
        status = str(event.data.get("status") or ticket.status)
        return SourceUpdate(
            event_id=event.id,
            external_id=ticket.external_id,
            kind="status",
            text=f"{_tag(ticket, event)} {event.title}",
            status=status,
            team=(ticket.team or _escalation_team(ticket)) if status == TicketStatus.ESCALATED else None,
            resolution=ticket.resolution if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED) else None,
        )
    text = f"{_tag(ticket, event)} {event.title}"
    if event.type == "email_sent" and (outbox_id := event.data.get("outbox_id")):
        message = session.get(OutboxMessage, outbox_id)
        if message is not None:
            text += f"\n\nSubject: {message.subject}\n\n{message.body_text}"
    return SourceUpdate(event_id=event.id, external_id=ticket.external_id, kind="note", text=text)


def _tag(ticket: Ticket, event: TimelineEvent) -> str:
    """The note's opening tag; its end is SourceUpdate.marker, so a note written once can be found again."""
    return f"[No-Touch Support {ticket.reference} · event {event.id}]"


def _escalation_team(ticket: Ticket) -> str | None:
    """The team an escalation names, from the ticket's escalation record when the ticket itself has none."""
    team = (ticket.escalation_criteria or {}).get("team")
    return str(team) if team else None


def _count_failure(
    factory: sessionmaker[Session],
    settings: Settings,
    source: str,
    state: dict[str, Any],
    event_id: int,
    ticket_id: int,
    error: str,
) -> bool:
    """Count one refusal of `event_id`; True when it has now failed too often and the cursor moved past it."""
    failures = state["failures"].get(str(event_id), 0) + 1
    with transaction(factory) as session:
        if failures < settings.SYNC_BACK_MAX_ATTEMPTS:
            state["failures"][str(event_id)] = failures
            _store(session, source, state)
            return False
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None:
            ticket.action_required = True
            record_event(
                session,
                ticket,
                "sync_failed",
                f"Could not write event {event_id} back to {source} after {failures} tries: {error}",
                actor=f"sync:{source}",
                event_id=event_id,
                error=error[:1000],
            )
        state["after"] = event_id
        state["failures"].pop(str(event_id), None)
        _store(session, source, state)
    return True


def _load(session: Session, source: str) -> dict[str, Any]:
    row = session.get(SourceCursor, cursor_name(source))
    if row is None:
        return {"after": 0, "failures": {}, "unconfirmed": None}
    try:
        state = json.loads(row.cursor)
        return {
            "after": int(state["after"]),
            "failures": dict(state.get("failures", {})),
            "unconfirmed": state.get("unconfirmed"),
        }
    except (ValueError, KeyError, TypeError):
        log.error("unreadable sync cursor for %s: %r; starting after the newest event", source, row.cursor[:100])
        newest = session.scalar(select(TimelineEvent.id).order_by(TimelineEvent.id.desc()).limit(1)) or 0
        return {"after": newest, "failures": {}, "unconfirmed": None}


def _save(factory: sessionmaker[Session], source: str, state: dict[str, Any]) -> None:
    with transaction(factory) as session:
        _store(session, source, state)


def _store(session: Session, source: str, state: dict[str, Any]) -> None:
    session.merge(SourceCursor(source=cursor_name(source), cursor=json.dumps(state), updated_at=utcnow()))


def sync_backlog(session: Session, source: str) -> int:
    """How many timeline events of `source`'s tickets wait to be written back."""
    state = _load(session, source)
    return int(
        session.scalar(
            select(func.count())
            .select_from(TimelineEvent)
            .join(Ticket, Ticket.id == TimelineEvent.ticket_id)
            .where(Ticket.source == source, TimelineEvent.id > state["after"], TimelineEvent.type.in_(SYNCED_TYPES))
        )
        or 0
    )


def poll_mailgun_events(engine: Engine, factory: sessionmaker[Session], events: Any) -> dict[str, int]:
    """Read Mailgun's event log after the stored cursor and put deliveries, bounces and complaints on tickets."""
    from connectors.mailgun import ingest_mailgun_event

    counts: dict[str, int] = {}
    name = "mailgun:events"
    with exclusive(engine, name) as acquired:
        if not acquired:
            return {"skipped": 1}
        with factory() as session:
            stored = session.get(SourceCursor, name)
            cursor = stored.cursor if stored else None
        for items, next_cursor in events.pages(cursor):
            with transaction(factory) as session:
                for item in items:
                    kind = ingest_mailgun_event(session, item) if isinstance(item, dict) else None
                    counts[kind or "ignored"] = counts.get(kind or "ignored", 0) + 1
                session.merge(SourceCursor(source=name, cursor=next_cursor, updated_at=utcnow()))
    return counts
