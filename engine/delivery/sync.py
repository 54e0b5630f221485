"""Write what the desk decides back to the source system.

`sync_back` reads the timeline (written in the same transaction as every change, so nothing is missed)
after a per-source cursor and pushes each event that matters as a note or a state change. Each event stands
alone: one the source refuses (4xx, an illegal transition) is recorded as `sync_failed` on its ticket and the
run goes on; one that meets a transient failure (5xx, timeout) waits in the cursor's retry list with its own
attempt count and back-off, holding back only its own ticket's later events (so they stay in order), until
SYNC_BACK_MAX_ATTEMPTS. A source that cannot be reached at all (refused, open circuit breaker) stops the run
without counting anything, so an outage drops nothing. A push whose answer was lost may have been applied:
its retry asks the source to look for the note's marker first, so a note is never written twice; when that
look-up fails, the event is `sync_uncertain` for a person to check, and the rest goes on. Events the source
itself caused and history tickets are never written back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import SourceUpdate, SyncBack
from connectors.http import CircuitOpenError, ConnectorError, UnreachableError
from engine.core.db import exclusive, transaction
from engine.core.enums import MessageKind, TicketStatus
from engine.core.models import OutboxMessage, SourceCursor, Ticket, TicketNote, TimelineEvent, utcnow
from engine.core.settings import Settings
from engine.core.timeline import record_event

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
        "resolution_confirmed",
        "resolution_rejected",
        "resolution_outcome",
        "note_added",
    }
)
SYNCED_TYPES = NOTE_TYPES | {"status_changed"}
CUSTOMER_FACING = frozenset({MessageKind.RESOLUTION, MessageKind.REQUEST_INFO, MessageKind.MANUAL_REPLY})
"""Messages written to the customer: the only write-back the customer may see at the source."""
BATCH = 200
MAX_BACKOFF = timedelta(hours=1)


@dataclass
class SyncReport:
    pushed: int = 0
    failed: int = 0
    uncertain: int = 0
    retrying: int = 0
    stopped: str | None = None
    sources: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every event handled this run reached its source (a run paused by an outage is still ok)."""
        return not (self.failed or self.uncertain)

    @property
    def problem(self) -> str:
        return f"{self.failed} event(s) failed and {self.uncertain} uncertain; see the tickets' timelines"

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value not in (None, {}, 0)}


@dataclass
class _Work:
    event_id: int
    ticket_id: int
    update: SourceUpdate | None
    """None: nothing to write back (the source caused it, or the ticket is history)."""


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
        work = _work(session, target.name, state)
    now = utcnow()
    blocked: set[int] = set()
    for item in work:
        key = str(item.event_id)
        entry = state["retry"].get(key)
        if item.ticket_id in blocked or (entry and datetime.fromisoformat(entry["next_at"]) > now):
            # Behind an earlier event of its ticket, or backing off: later, in order, without holding others.
            state["retry"][key] = entry or _entry(0, "waiting behind an earlier event of its ticket", now)
            blocked.add(item.ticket_id)
            state["after"] = max(state["after"], item.event_id)
            _save(factory, target.name, state)
            continue
        try:
            if item.update is not None:
                target.push(item.update, check_first=bool(entry and entry["unconfirmed"]))
        except ConnectorError as error:
            if isinstance(error, CircuitOpenError) or error.not_sent:
                # The source cannot be reached at all: wait for it; this is no attempt of the event's.
                report.stopped = f"{target.name}: {error}"
                log.warning("sync to %s paused: %s", target.name, error)
                return
            if _fail(factory, settings, target.name, state, item, error, report):
                blocked.add(item.ticket_id)
            continue
        state["retry"].pop(key, None)
        state["after"] = max(state["after"], item.event_id)
        _save(factory, target.name, state)
        if item.update is not None:
            report.pushed += 1
            report.sources[target.name] = report.sources.get(target.name, 0) + 1


def _work(session: Session, source: str, state: dict[str, Any]) -> list[_Work]:
    """The events waiting for a retry and the next new ones, oldest first."""
    query = (
        select(TimelineEvent, Ticket)
        .join(Ticket, Ticket.id == TimelineEvent.ticket_id)
        .where(Ticket.source == source, TimelineEvent.type.in_(SYNCED_TYPES))
        .order_by(TimelineEvent.id)
    )
    waiting = [int(key) for key in state["retry"]]
    rows = list(session.execute(query.where(TimelineEvent.id.in_(waiting)))) if waiting else []
    found = {event.id for event, _ in rows}
    for gone in set(waiting) - found:
        state["retry"].pop(str(gone))  # its ticket was deleted: nothing left to write back
    rows += session.execute(query.where(TimelineEvent.id > state["after"]).limit(BATCH)).all()
    rows.sort(key=lambda row: row[0].id)
    return [_Work(event.id, ticket.id, _update_for(session, event, ticket, source)) for event, ticket in rows]


def _update_for(session: Session, event: TimelineEvent, ticket: Ticket, source: str) -> SourceUpdate | None:
    if (ticket.additional_info or {}).get("history") or event.actor == f"source:{source}":
        return None
    return as_update(session, event, ticket)


def _entry(attempts: int, error: str, next_at: datetime, *, unconfirmed: bool = False) -> dict[str, Any]:
    return {"attempts": attempts, "error": error[:1000], "next_at": next_at.isoformat(), "unconfirmed": unconfirmed}


def _fail(
    factory: sessionmaker[Session],
    settings: Settings,
    source: str,
    state: dict[str, Any],
    item: _Work,
    error: ConnectorError,
    report: SyncReport,
) -> bool:
    """Handle one failed push; True when the event waits for a retry (its ticket's later events wait behind it)."""
    key = str(item.event_id)
    entry = state["retry"].get(key) or _entry(0, "", utcnow())
    unconfirmed = bool(entry["unconfirmed"]) or (isinstance(error, UnreachableError) and not error.not_sent)
    attempts = int(entry["attempts"]) + 1
    state["after"] = max(state["after"], item.event_id)
    if error.retryable and attempts < settings.SYNC_BACK_MAX_ATTEMPTS:
        backoff = min(timedelta(seconds=settings.SYNC_BACK_INTERVAL_SECONDS * 2 ** (attempts - 1)), MAX_BACKOFF)
        state["retry"][key] = _entry(attempts, str(error), utcnow() + backoff, unconfirmed=unconfirmed)
        _save(factory, source, state)
        log.warning("sync of event %s to %s will be retried (try %s): %s", item.event_id, source, attempts, error)
        report.retrying += 1
        return True
    state["retry"].pop(key, None)
    uncertain = unconfirmed
    tries = f" after {attempts} tries" if attempts > 1 else ""
    if uncertain:
        title = f"Event {item.event_id} may or may not have reached {source}: an earlier write lost its answer "
        title += f"and it could not be checked{tries}: {error}"
        report.uncertain += 1
    else:
        title = f"Could not write event {item.event_id} back to {source}{tries}: {error}"
        report.failed += 1
    log.warning("%s (ticket %s)", title, item.ticket_id)
    with transaction(factory) as session:
        ticket = session.get(Ticket, item.ticket_id)
        if ticket is not None:
            ticket.action_required = True
            record_event(
                session,
                ticket,
                "sync_uncertain" if uncertain else "sync_failed",
                title[:300],
                actor=f"sync:{source}",
                event_id=item.event_id,
                error=str(error)[:1000],
            )
        _store(session, source, state)
    return False


def as_update(session: Session, event: TimelineEvent, ticket: Ticket) -> SourceUpdate:
    """The source-side form of one timeline event: the state to set, or a note that says what happened.

    Only a message that went to the customer is public; status changes and the desk's notes stay internal.
    """
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
    text, quote = f"{_tag(ticket, event)} {event.title}", ""
    if event.actor == "customer" and (words := str((event.data or {}).get("comment") or "").strip()):
        # The customer's words go as a quotation the connector keeps inert, not inside our sentence.
        sentence = event.title.partition(": “")[0] or event.title
        text, quote = f"{_tag(ticket, event)} {sentence}. The customer's words, quoted as written:", words
    public = False
    if event.type == "note_added" and (note := session.get(TicketNote, event.data.get("note_id") or 0)) is not None:
        text += f"\n\n{note.body}"  # an operator's note for operators: internal at the source, like every note
    if event.type == "email_sent" and (outbox_id := event.data.get("outbox_id")):
        message = session.get(OutboxMessage, outbox_id)
        if message is not None:
            text += f"\n\nSubject: {message.subject}\n\n{message.body_text}"
            public = message.kind in CUSTOMER_FACING
    team = str(event.data["team"]) if event.type == "assigned" and event.data.get("team") else None
    return SourceUpdate(
        event_id=event.id, external_id=ticket.external_id, kind="note", text=text, team=team, public=public, quote=quote
    )


def _tag(ticket: Ticket, event: TimelineEvent) -> str:
    """The note's opening tag; its end is SourceUpdate.marker, so a note written once can be found again."""
    return f"[No-Touch Support {ticket.reference} · event {event.id}]"


def _escalation_team(ticket: Ticket) -> str | None:
    """The team an escalation names, from the ticket's escalation record when the ticket itself has none."""
    team = (ticket.escalation_criteria or {}).get("team")
    return str(team) if team else None


def _load(session: Session, source: str) -> dict[str, Any]:
    row = session.get(SourceCursor, cursor_name(source))
    if row is None:
        return {"after": 0, "retry": {}}
    try:
        state = json.loads(row.cursor)
        retry = {str(key): dict(value) for key, value in state.get("retry", {}).items()}
        now = utcnow()
        # The cursor before per-event retries: a refusal count per event and one unconfirmed event.
        for key, attempts in state.get("failures", {}).items():
            retry[str(key)] = _entry(int(attempts), "refused before", now)
        if state.get("unconfirmed") is not None:
            retry[str(state["unconfirmed"])] = _entry(0, "answer lost before", now, unconfirmed=True)
        return {"after": int(state["after"]), "retry": retry}
    except (ValueError, KeyError, TypeError, AttributeError):
        log.error("unreadable sync cursor for %s: %r; starting after the newest event", source, row.cursor[:100])
        newest = session.scalar(select(TimelineEvent.id).order_by(TimelineEvent.id.desc()).limit(1)) or 0
        return {"after": newest, "retry": {}}


def _save(factory: sessionmaker[Session], source: str, state: dict[str, Any]) -> None:
    with transaction(factory) as session:
        _store(session, source, state)


def _store(session: Session, source: str, state: dict[str, Any]) -> None:
    session.merge(SourceCursor(source=cursor_name(source), cursor=json.dumps(state), updated_at=utcnow()))


def sync_backlog(session: Session, source: str) -> int:
    """How many timeline events of `source`'s tickets wait to be written back (new ones and retries)."""
    state = _load(session, source)
    return len(state["retry"]) + int(
        session.scalar(
            select(func.count())
            .select_from(TimelineEvent)
            .join(Ticket, Ticket.id == TimelineEvent.ticket_id)
            .where(Ticket.source == source, TimelineEvent.id > state["after"], TimelineEvent.type.in_(SYNCED_TYPES))
        )
        or 0
    )
