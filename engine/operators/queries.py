"""Read-only queries the dashboard renders: counts, the queue page, one ticket's story, audit, engine status.

Pages never build SQL themselves; everything they show comes from here, paged and filtered in the database,
so a page costs the same at 100 tickets as at 100,000.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from connectors.redaction import redact_url_credentials
from engine.core.enums import ActionState, TicketStatus
from engine.core.fulltext import ticket_ids_matching
from engine.core.models import (
    Action,
    Analysis,
    AnswerRecord,
    Attachment,
    AuditEntry,
    DeskPolicyVersion,
    EmailInteraction,
    Escalation,
    IngestError,
    JobStatus,
    KbChunk,
    KbDocument,
    LearnedAnswer,
    OutboxMessage,
    Ticket,
    TicketTag,
    TimelineEvent,
    utcnow,
)
from engine.operators.sla import SlaTargets, breaching_soon, time_left_order
from engine.outcomes.learned import (
    LEARNED,
    VERDICTS,
    TrackRecord,
    learned_subject,
    per_category,
    question_variants,
    record_subjects,
    reusable,
    subject_of,
    track_records,
)

SORTABLE = {
    "newest": (Ticket.id.desc(),),
    "oldest": (Ticket.id.asc(),),
    "recently updated": (Ticket.updated_at.desc(), Ticket.id.desc()),
}
OPEN_STATUSES = tuple(s.value for s in TicketStatus if s not in (TicketStatus.RESOLVED, TicketStatus.CLOSED))


@dataclass(frozen=True)
class QueueFilter:
    statuses: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    search: str = ""
    sort: Literal["newest", "oldest", "recently updated", "time left"] = "newest"
    """"time left": open tickets by their next SLA deadline, soonest first (engine/operators/sla.py)."""
    assignee: str = ""
    """Only tickets assigned to this operator ("assigned to me")."""
    breaching_soon: bool = False
    """Only open tickets past an SLA deadline or close to one."""
    tags: tuple[str, ...] = ()
    """Only tickets carrying any of these tags."""


SEARCH_COUNT_CAP = 1000
"""A search counts its tickets up to here and then says "1,000+": a word found in every ticket would otherwise count
100,000 matches on every page it shows."""


def status_counts(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
    return {status.value: counts.get(status.value, 0) for status in TicketStatus}


def sources(session: Session) -> list[str]:
    return list(session.scalars(select(Ticket.source).distinct().order_by(Ticket.source)))


def categories(session: Session) -> list[str]:
    """The ticket categories the analysers have used, lower case: what autopilot switches can match."""
    found = session.scalars(select(Ticket.category).where(Ticket.category.is_not(None)).distinct())
    return sorted({category.lower() for category in found if category})


def teams(session: Session) -> list[str]:
    return list(session.scalars(select(Ticket.team).where(Ticket.team.is_not(None)).distinct().order_by(Ticket.team)))


def _queue_conditions(session: Session, queue: QueueFilter) -> list[Any]:
    conditions: list[Any] = []
    if queue.statuses:
        conditions.append(Ticket.status.in_(queue.statuses))
    if queue.sources:
        conditions.append(Ticket.source.in_(queue.sources))
    if queue.teams:
        conditions.append(Ticket.team.in_(queue.teams))
    if queue.priorities:
        conditions.append(Ticket.priority.in_(queue.priorities))
    if queue.assignee:
        conditions.append(Ticket.assignee == queue.assignee)
    if queue.tags:
        conditions.append(Ticket.id.in_(select(TicketTag.ticket_id).where(TicketTag.tag.in_(queue.tags))))
    if text := queue.search.strip():
        if text.upper().startswith("TCKT-") and text[5:].isdigit():
            conditions.append(Ticket.id == int(text[5:]))
        else:
            found = [words] if (words := ticket_ids_matching(session, text)) is not None else []
            if "@" in text:  # part of an address ("@customer.example"): the full-text index holds whole ones
                found.append(func.lower(Ticket.email).like(f"%{text.lower()}%"))
            conditions.append(or_(*found) if found else false())
    return conditions


def sla_due(created_at: datetime, priority: str | None, hours_by_priority: dict[str, float]) -> datetime:
    """When the ticket should be resolved, by its priority's target (unknown priorities take the "" target)."""
    hours = hours_by_priority.get((priority or "").lower(), hours_by_priority.get("", 24.0))
    return created_at + timedelta(hours=hours)


def sla_label(
    created_at: datetime, priority: str | None, resolved_at: datetime | None, hours_by_priority: dict[str, float]
) -> str:
    """The SLA clock as a person reads it: time left, overdue by, or met / missed once resolved."""
    due = sla_due(created_at, priority, hours_by_priority)
    if resolved_at is not None:
        return "met" if resolved_at <= due else "missed"
    left = (due - utcnow()).total_seconds() / 3600
    return f"{left:.0f} h left" if left >= 0 else f"overdue {-left:.0f} h"


def _latest_per_ticket(session: Session, column: Any, model: Any, ticket_ids: list[int]) -> dict[int, Any]:
    """The newest row's `column` for each of a page's tickets: one indexed query for the whole page."""
    if not ticket_ids:
        return {}
    newest = (
        select(func.max(model.id)).where(model.ticket_id.in_(ticket_ids)).group_by(model.ticket_id).scalar_subquery()
    )
    return dict(session.execute(select(model.ticket_id, column).where(model.id.in_(newest))).all())


def queue_page(
    session: Session,
    queue: QueueFilter,
    *,
    offset: int = 0,
    limit: int = 50,
    sla_hours: dict[str, float] | None = None,
    sla: SlaTargets | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the queue and the total matching, filtered, sorted and paged in the database; a search's total
    stops at SEARCH_COUNT_CAP + 1 (read "more than SEARCH_COUNT_CAP").

    The "breaching soon" filter and the "time left" sort need `sla`, the targets in force.
    """
    conditions = _queue_conditions(session, queue)
    if queue.breaching_soon or queue.sort == "time left":
        if sla is None:
            raise ValueError("breaching soon and time left need the SLA targets")
        if queue.breaching_soon:
            conditions.append(breaching_soon(sla))
    order = time_left_order(session, sla) if queue.sort == "time left" and sla else SORTABLE[queue.sort]
    matching = select(Ticket.id).where(*conditions)
    if queue.search.strip():
        matching = matching.limit(SEARCH_COUNT_CAP + 1)
    total = session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.status,
            Ticket.source,
            Ticket.priority,
            Ticket.team,
            Ticket.subject,
            Ticket.email,
            Ticket.created_at,
            Ticket.resolved_at,
            Ticket.action_required,
            Ticket.assignee,
            Ticket.waiting_reason,
            Ticket.pending_since,
        )
        .where(*conditions)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    ).all()
    ids = [row.id for row in rows]
    confidence = _latest_per_ticket(session, Analysis.confidence, Analysis, ids)
    score = _latest_per_ticket(session, Escalation.weighted_score, Escalation, ids)
    drafts = open_drafts(session, ids)
    now = utcnow()
    hours = sla_hours or {"": 24.0}
    return [
        {
            "ticket": f"TCKT-{row.id}",
            "id": row.id,
            "status": row.status,
            "source": row.source,
            "priority": row.priority or "",
            "team": row.team or "",
            "subject": row.subject,
            "requester": row.email,
            "age_hours": round((now - row.created_at).total_seconds() / 3600, 1),
            "confidence": confidence.get(row.id),
            "escalation_score": score.get(row.id),
            "sla": sla_label(row.created_at, row.priority, row.resolved_at, hours),
            "draft": drafts.get(row.id),
            "assignee": row.assignee or "",
            "attention": bool(row.action_required),
            "waiting": (row.waiting_reason or "") if row.pending_since else "",  # a person's action ends a wait
        }
        for row in rows
    ], total


def open_drafts(session: Session, ticket_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Each ticket's draft awaiting approval as (action id, version): what a bulk approval binds to."""
    if not ticket_ids:
        return {}
    rows = session.execute(
        select(Action.ticket_id, Action.id, Action.version).where(
            Action.ticket_id.in_(ticket_ids), Action.state == ActionState.AWAITING_APPROVAL
        )
    ).all()
    return {row.ticket_id: (row.id, row.version) for row in rows}


@dataclass(frozen=True)
class TicketStory:
    ticket: Ticket
    timeline: list[TimelineEvent]
    messages: list[EmailInteraction]
    outbox: list[OutboxMessage]
    actions: list[Action]
    analyses: list[Analysis]
    attachments: list[Attachment]
    escalations: list[Escalation] = field(default_factory=list)
    claimed: Ticket | None = None
    """The ticket this one's first message claimed to continue although its sender was not on it."""
    claimants: list[Ticket] = field(default_factory=list)
    """Tickets whose senders, not on this ticket, claimed to continue it: each kept as their own."""

    @property
    def open_draft(self) -> Action | None:
        return next((a for a in reversed(self.actions) if a.state == ActionState.AWAITING_APPROVAL), None)

    @property
    def latest_analysis(self) -> Analysis | None:
        return self.analyses[-1] if self.analyses else None

    @property
    def latest_escalation(self) -> Escalation | None:
        return self.escalations[-1] if self.escalations else None

    @property
    def headline(self) -> tuple[object, ...]:
        """What the ticket page's header and draft panel show (status, owner, team, newest analysis and score, open
        draft and its version): when it differs from the one on screen, the whole page is drawn again."""
        analysis, escalation, draft = self.latest_analysis, self.latest_escalation, self.open_draft
        return (
            self.ticket.status,
            self.ticket.taken_over_by,
            self.ticket.team,
            self.ticket.priority,
            analysis.id if analysis else None,
            escalation.id if escalation else None,
            (draft.id, draft.version) if draft else None,
        )


def ticket_story(session: Session, ticket_id: int) -> TicketStory | None:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        return None

    def of(model: Any, order: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.ticket_id == ticket_id).order_by(order)))

    return TicketStory(
        ticket=ticket,
        timeline=of(TimelineEvent, TimelineEvent.id),
        messages=of(EmailInteraction, EmailInteraction.id),
        outbox=of(OutboxMessage, OutboxMessage.id),
        actions=of(Action, Action.id),
        analyses=of(Analysis, Analysis.id),
        attachments=of(Attachment, Attachment.id),
        escalations=of(Escalation, Escalation.id),
        claimed=session.get(Ticket, ticket.related_ticket_id) if ticket.related_ticket_id else None,
        claimants=list(
            session.scalars(select(Ticket).where(Ticket.related_ticket_id == ticket_id).order_by(Ticket.id))
        ),
    )


def recent_events(session: Session, limit: int = 20) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            TimelineEvent.timestamp,
            TimelineEvent.ticket_id,
            TimelineEvent.type,
            TimelineEvent.title,
            TimelineEvent.actor,
        )
        .order_by(TimelineEvent.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "when": row.timestamp,
            "ticket": f"TCKT-{row.ticket_id}",
            "event": row.type,
            "what": row.title,
            "by": row.actor,
        }
        for row in rows
    ]


def job_statuses(session: Session) -> list[dict[str, Any]]:
    """Each job's last run for the dashboard; errors stored before URL redaction existed are cleaned here too."""
    rows = session.scalars(select(JobStatus).order_by(JobStatus.job, JobStatus.worker)).all()
    return [
        {
            "job": row.job,
            "worker": row.worker,
            "last run": row.last_finished_at,
            "ok": row.last_ok,
            "runs": row.runs,
            "failures": row.failures,
            "last result": row.last_result,
            "last error": "" if row.last_ok else redact_url_credentials(row.last_error or ""),
        }
        for row in rows
    ]


def attention_counts(session: Session) -> dict[str, int]:
    """What a person must look at: drafts awaiting approval, open tickets a customer replied on (or whose mail or
    source update failed) while a person holds them, undelivered mail, unreadable source items."""
    return {
        "drafts awaiting approval": session.scalar(
            select(func.count()).select_from(Action).where(Action.state == ActionState.AWAITING_APPROVAL)
        )
        or 0,
        "open tickets needing attention": session.scalar(
            select(func.count())
            .select_from(Ticket)
            .where(Ticket.action_required.is_(True), Ticket.status.in_(tuple(OPEN_STATUSES)))
        )
        or 0,
        "messages failed or uncertain": session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state.in_(("failed", "uncertain")))
        )
        or 0,
        "unreadable source items": session.scalar(
            select(func.count()).select_from(IngestError).where(IngestError.resolved.is_(False))
        )
        or 0,
    }


HELD_REASON_FORMS = (
    (re.compile(r"^confidence [\d.]+ below ([\d.]+)$"), "below the minimum confidence"),
    (re.compile(r"^autopilot is off for ([^/]+)/.*$"), r"autopilot off for \1"),
    (re.compile(r"^guard: possible social engineering: ([^(;]+).*$"), r"sensitive request: \1"),
    (re.compile(r"^guard: ([^:'(]+).*$"), r"\1"),
    (re.compile(r"^input: .*$"), "input a person should read"),
    (re.compile(r"^analysis incomplete: .*$"), "analysis incomplete"),
)


def held_reason(reason: str) -> str:
    """A draft's hold reason without its particulars, so reasons can be counted: "below the minimum confidence"
    whatever the minimum was when the draft was held, so a raised minimum does not split one reason in two."""
    for pattern, form in HELD_REASON_FORMS:
        if pattern.match(reason):
            return pattern.sub(form, reason).strip()
    return reason


def held_draft_reasons(session: Session, limit: int = 5) -> list[tuple[str, int]]:
    """Why drafts wait for a person, most frequent first: every reason of every draft counts once. The database
    counts the drafts per list of reasons (a few hundred kinds where 20,000 drafts wait), so the reasons are read
    once per kind, not once per draft."""
    counts: Counter[str] = Counter()
    reasons = Action.policy["reasons"]
    kinds = session.execute(
        select(reasons, func.count()).where(Action.state == ActionState.AWAITING_APPROVAL).group_by(reasons)
    )
    for listed, drafts in kinds:
        for reason in {held_reason(reason) for reason in listed or []}:
            counts[reason] += drafts
    return counts.most_common(limit)


def resolved_since(session: Session, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Ticket).where(Ticket.resolved_at >= since)) or 0


@dataclass(frozen=True)
class TodaySummary:
    open: int
    awaiting_approval: int
    escalated: int
    resolved_today: int
    automation_rate: float | None
    """Share of tickets resolved today that no person touched; None when nothing was resolved."""
    first_response_p50_minutes: float | None
    """Median minutes to the first answer for tickets created in the last 7 days."""


def today_summary(session: Session, *, now: datetime | None = None) -> TodaySummary:
    now = now or utcnow()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = status_counts(session)
    resolved, automated = session.execute(
        select(func.count(), func.count().filter(Ticket.human_touched_at.is_(None))).where(
            Ticket.resolved_at >= midnight
        )
    ).one()
    pairs = session.execute(
        select(Ticket.created_at, Ticket.first_response_at)
        .where(Ticket.created_at >= now - timedelta(days=7), Ticket.first_response_at.is_not(None))
        .order_by(Ticket.created_at.desc())
        .limit(5000)
    ).all()
    waits = [(first - created).total_seconds() / 60 for created, first in pairs]
    return TodaySummary(
        open=sum(counts[s] for s in OPEN_STATUSES),
        awaiting_approval=counts[TicketStatus.AWAITING_APPROVAL],
        escalated=counts[TicketStatus.ESCALATED],
        resolved_today=resolved,
        automation_rate=(automated / resolved) if resolved else None,
        first_response_p50_minutes=statistics.median(waits) if waits else None,
    )


@dataclass(frozen=True)
class AuditFilter:
    actors: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    search: str = ""
    start: datetime | None = None
    end: datetime | None = None


def _audit_query(audit: AuditFilter, query: Select[Any]) -> Select[Any]:
    if audit.actors:
        query = query.where(AuditEntry.actor.in_(audit.actors))
    if audit.actions:
        query = query.where(AuditEntry.action.in_(audit.actions))
    if audit.start:
        query = query.where(AuditEntry.at >= audit.start)
    if audit.end:
        query = query.where(AuditEntry.at < audit.end)
    if text := audit.search.strip():
        query = query.where(AuditEntry.target_id == text.upper().removeprefix("TCKT-"))
    return query


def audit_page(
    session: Session, audit: AuditFilter, *, offset: int = 0, limit: int = 100
) -> tuple[list[dict[str, Any]], int]:
    """Who did what when, newest first, one page at a time."""
    total = session.scalar(_audit_query(audit, select(func.count()).select_from(AuditEntry))) or 0
    entries = session.scalars(
        _audit_query(audit, select(AuditEntry)).order_by(AuditEntry.id.desc()).offset(offset).limit(limit)
    ).all()
    return [
        {
            "when": entry.at,
            "who": entry.actor,
            "action": entry.action,
            "target_type": entry.target_type,
            "target_id": entry.target_id or "",
            "ticket": _audit_ticket(entry),
            "details": dict(entry.details),
        }
        for entry in entries
    ], total


def _audit_ticket(entry: AuditEntry) -> int | None:
    """The ticket an audit entry is about: its target, or the ticket a draft or a mail belonged to."""
    if entry.target_type == "ticket" and str(entry.target_id).isdigit():
        return int(entry.target_id)
    ticket = (entry.details or {}).get("ticket")
    return int(ticket) if isinstance(ticket, int) or (isinstance(ticket, str) and ticket.isdigit()) else None


def audit_vocabulary(session: Session) -> tuple[list[str], list[str]]:
    """The actors and action names present, for the audit filters."""
    actors = list(session.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)))
    actions = list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
    return actors, actions


def kb_documents(session: Session) -> list[KbDocument]:
    return list(session.scalars(select(KbDocument).order_by(KbDocument.id.desc())))


def kb_chunks(session: Session, document_id: int, limit: int = 50) -> list[KbChunk]:
    return list(
        session.scalars(
            select(KbChunk)
            .where(KbChunk.source_kind == "kb", KbChunk.source_id == document_id)
            .order_by(KbChunk.chunk_index)
            .limit(limit)
        )
    )


def ingest_errors(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(IngestError).where(IngestError.resolved.is_(False)).order_by(IngestError.id.desc()).limit(limit)
    ).all()
    return [
        {"when": row.created_at, "source": row.source, "item": row.external_id or "", "error": row.error}
        for row in rows
    ]


def policy_history(session: Session, limit: int = 10) -> list[dict[str, Any]]:
    """The newest desk-policy versions: who changed the policy and when."""
    rows = session.scalars(select(DeskPolicyVersion).order_by(DeskPolicyVersion.version.desc()).limit(limit)).all()
    return [{"version": row.version, "changed by": row.changed_by, "when": row.changed_at} for row in rows]


def record_line(record: TrackRecord) -> str:
    """One answer's track record in people's words: "approved 14×, confirmed 9×, re-opened 0×" (and the rest when
    any)."""
    shown = [("approved", record.approved), ("confirmed", record.confirmed), ("re-opened", record.reopened)]
    shown += [(name, value) for name, value in (("edited", record.edited), ("rejected", record.rejected)) if value]
    shown += [("assumed solved", record.assumed)] if record.assumed else []
    return ", ".join(f"{name} {value}×" for name, value in shown)


@dataclass(frozen=True)
class AnswerRecordView:
    """A cited answer on the ticket page: its label, key and record, and whether it is held for a lead."""

    label: str
    subject: str
    record: TrackRecord
    held: bool


def cited_answer_records(session: Session, evidence: list[dict[str, Any]], reopens: int) -> list[AnswerRecordView]:
    """The track record of each answer an analysis cited (learned answers and knowledge-base sections)."""
    cited = [item for item in evidence if item.get("cited")]
    subjects = record_subjects(session, cited)
    records = track_records(session, list(dict.fromkeys(subjects.values())))
    views = []
    for item in cited:
        subject = subjects[subject_of(item)]
        learned = subject.startswith(f"{LEARNED}:")
        label = "learned answer" if learned else str(item.get("title") or "passage")
        views.append(AnswerRecordView(label, subject, records[subject], records[subject].held(reopens)))
    return views


@dataclass(frozen=True)
class LearnedAnswerView:
    """A learned answer on the Knowledge Base page: its text, the questions it answered, its record, what holds it."""

    answer: LearnedAnswer
    questions: list[str]
    record: TrackRecord
    reusable: bool
    held: bool
    by_category: list[dict[str, Any]] = field(default_factory=list)


def learned_answer_views(session: Session, reopens: int, limit: int = 200) -> list[LearnedAnswerView]:
    """The newest learned answers, those waiting for a lead (particulars, re-opened) first."""
    answers = list(session.scalars(select(LearnedAnswer).order_by(LearnedAnswer.id.desc()).limit(limit)))
    records = track_records(session, [learned_subject(answer.id) for answer in answers])
    views = [
        LearnedAnswerView(
            answer,
            question_variants(session, answer.id),
            records[learned_subject(answer.id)],
            reusable(answer),
            records[learned_subject(answer.id)].held(reopens),
            per_category(session, learned_subject(answer.id)),
        )
        for answer in answers
    ]
    return sorted(views, key=lambda view: (view.reusable and not view.held, -view.answer.id))


def section_record_rows(session: Session, reopens: int, limit: int = 500) -> list[dict[str, Any]]:
    """Knowledge-base sections with a track record, per category, the most used first."""
    rows = session.scalars(
        select(AnswerRecord)
        .where(~AnswerRecord.subject.startswith(f"{LEARNED}:"))
        .order_by((AnswerRecord.approved + AnswerRecord.edited + AnswerRecord.rejected).desc(), AnswerRecord.id)
        .limit(limit)
    ).all()
    held = {
        subject
        for subject, record in track_records(session, list({r.subject for r in rows})).items()
        if record.held(reopens)
    }
    documents = dict(session.execute(select(KbDocument.id, KbDocument.title)).all())
    table = []
    for row in rows:
        kind, source_id, location = [*row.subject.split(":", 2), "", ""][:3]
        where = documents.get(int(source_id)) if kind == "kb" and source_id.isdigit() else None
        table.append(
            {
                "answer": f"{where or f'{kind} {source_id}'}" + (f" ({location})" if location else ""),
                "category": row.category or "uncategorised",
                **{name: getattr(row, name) for name in VERDICTS},
                "held for a lead": row.subject in held,
                "subject": row.subject,
            }
        )
    return table
