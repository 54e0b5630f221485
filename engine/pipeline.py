"""The stages of one ticket: claim → acknowledge → analyse → decide → act.

A claim is a lease (token + expiry) taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
engine processes share the queue and each ticket is worked once. Analysis runs outside any
transaction (a model may take seconds); its results commit only if the claim still holds, in one
transaction with the timeline, the action and any outgoing message. A crash anywhere leaves either
nothing or everything, and an expired lease lets another worker pick the ticket up again.

Each ticket is analysed and committed on its own (`AnalysisPool`): one slow ticket, such as one whose attachment
is read to its time limit, never holds the others of its batch, and the scheduler's next run claims more
meanwhile. Attachments are read in a bounded child process (kb/sandbox.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.llm_confidence import MODEL_CONFIDENCE_EVENT, describe_model_confidence
from engine.core.analysis import Analyser, AnalysisResult, TicketSnapshot
from engine.core.db import is_postgres, transaction
from engine.core.desk_policy import DeskPolicy, current_policy
from engine.core.enums import ActionKind, ActionState, MessageKind, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import Action, Analysis, Attachment, Blob, EmailInteraction, Escalation, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.core.timeline import record_event
from engine.delivery.execution import execute_action, void_open_drafts
from engine.delivery.outbox import enqueue_email
from engine.intake.ingest import hold_for_review
from engine.ops.failpoints import failpoint
from engine.ops.observability import observe_analysis
from engine.outcomes.outcome_calibration import describe_adjustment
from engine.readiness import knowledge_wait_reason, not_waiting, refresh_waiting, waits
from engine.trust.decision import delivery_verdict
from engine.trust.guards import injection_reasons, social_engineering_reasons
from engine.trust.provenance import UntrustedTextError
from kb.extract import OK, Extraction
from kb.sandbox import ExtractionCancelledError, extract_bounded, stop_extractions

log = logging.getLogger(__name__)

DECISION_KIND = {
    "resolve": ActionKind.PROPOSE_RESOLUTION,
    "ask": ActionKind.REQUEST_INFO,
    "escalate": ActionKind.ESCALATE,
}


@dataclass(frozen=True)
class Claim:
    ticket_id: int
    token: str
    snapshot: TicketSnapshot
    pending_since: object
    policy: DeskPolicy
    """The desk policy read once at the claim: the analysis and its verdict both use this one version."""
    claimed_at: float = 0.0
    """time.monotonic() at the claim: work that starts late renews the lease first."""


@dataclass
class ProcessReport:
    claimed: int = 0
    processed: int = 0
    abandoned: int = 0
    failed: int = 0
    released: int = 0
    """Claims given back untouched because the engine was stopping."""
    in_flight: int = 0
    """Tickets still being worked on when the report was made (the scheduler's runs do not wait for them)."""

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class AnalysisPool:
    """Threads that analyse claimed tickets, each committed as soon as its own analysis ends.

    The scheduler keeps one for the life of the engine: a run of `process_pending` claims what the pool has room
    for, hands it over and returns, so a ticket still at work (a file read to its time limit, a slow model) holds
    neither its batch nor the next run. Tickets in the pool are never claimed again by this process. The threads are
    daemons: a stopping engine gives the claims back (`stop`) and does not wait for a model call to return.
    """

    def __init__(self, factory: sessionmaker[Session], threads: int, waiting: int) -> None:
        self.factory = factory
        self.threads = threads
        self.waiting = waiting
        """At most this many claimed tickets wait for a thread."""
        self.stopping = threading.Event()
        self._queue: queue.SimpleQueue[tuple[Claim, Callable[[], tuple[str, ...]]] | None] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._claims: dict[int, Claim] = {}
        self._started: set[int] = set()
        self._workers: list[threading.Thread] = []
        self._report = ProcessReport()

    def tickets(self) -> set[int]:
        """The tickets this pool holds, waiting or at work."""
        with self._lock:
            return set(self._claims)

    def room(self) -> int:
        """How many more claims may wait for a thread."""
        with self._lock:
            return max(0, self.waiting - (len(self._claims) - len(self._started)))

    def submit(self, claim: Claim, work: Callable[[], tuple[str, ...]]) -> bool:
        """Queue `work` for the claimed ticket; False when the pool is stopping (the caller gives the claim back).
        `work` returns how it ended: the ProcessReport counters to add one to."""
        with self._lock:
            if self.stopping.is_set():
                return False
            self._claims[claim.ticket_id] = claim
            if len(self._workers) < self.threads:
                worker = threading.Thread(target=self._run, name=f"analysis-{len(self._workers)}", daemon=True)
                self._workers.append(worker)
                worker.start()
        self._queue.put((claim, work))
        return True

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            claim, work = item
            with self._lock:
                self._started.add(claim.ticket_id)
            outcome: tuple[str, ...] = ("failed",)
            try:
                outcome = (release_claim(self.factory, claim),) if self.stopping.is_set() else work()
            except Exception:  # a bug in one ticket's work must not end the thread that serves the others
                log.exception("working on a ticket failed", extra={"ticket": f"TCKT-{claim.ticket_id}"})
            finally:
                with self._lock:
                    for counter in outcome:
                        setattr(self._report, counter, getattr(self._report, counter) + 1)
                    self._claims.pop(claim.ticket_id, None)
                    self._started.discard(claim.ticket_id)
                    self._lock.notify_all()

    def take_report(self) -> ProcessReport:
        """What finished since the last call, and how many tickets are still held."""
        with self._lock:
            report, self._report = self._report, ProcessReport()
            report.in_flight = len(self._claims)
            return report

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Until every held ticket is done; False if `timeout` passed first."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._claims, timeout)

    def close(self) -> None:
        """End the threads once the queue is worked off."""
        for _ in self._workers:
            self._queue.put(None)

    def stop(self, grace: float = 5.0) -> int:
        """The engine is stopping: take nothing new, kill the file readings in flight, let waiting tickets go back
        untouched, wait up to `grace` seconds for analyses at work, then give back the claims still held, so the
        next engine takes those tickets at once instead of after their lease. Returns how many were given back here."""
        self.stopping.set()
        stop_extractions()
        self.close()
        self.wait_idle(grace)
        with self._lock:
            held = list(self._claims.values())
        released = sum(release_claim(self.factory, claim) == "released" for claim in held)
        if held:
            log.warning("engine stopping: %d ticket(s) still at work were given back to the queue", released)
        return released


def process_pending(
    factory: sessionmaker[Session],
    settings: Settings,
    analyser: Analyser,
    *,
    worker: str,
    pool: AnalysisPool | None = None,
) -> ProcessReport:
    """One run of the processing job: claim tickets and analyse up to ANALYSIS_CONCURRENCY at once, each committed
    as soon as its own analysis ends.

    With the engine's long-lived `pool`, the run claims what the pool has room for and returns at once, reporting
    what finished since the previous run. Without one (a CLI `--once` run, a test, a benchmark) it waits until every
    ticket it claimed is done.
    """
    own = pool is None
    pool = pool or AnalysisPool(factory, settings.ANALYSIS_CONCURRENCY, settings.PROCESS_BATCH_SIZE)
    claims = claim_pending_tickets(
        factory, settings, worker=worker, limit=min(settings.PROCESS_BATCH_SIZE, pool.room()), exclude=pool.tickets()
    )
    for claim in claims:
        if not pool.submit(claim, lambda claim=claim: work_on(factory, settings, analyser, claim)):
            release_claim(factory, claim)
    if own:
        pool.wait_idle()
        pool.close()
    report = pool.take_report()
    report.claimed = len(claims)
    return report


def work_on(factory: sessionmaker[Session], settings: Settings, analyser: Analyser, claim: Claim) -> tuple[str, ...]:
    """Analyse one claimed ticket and commit the result; how it ended (the report's counters to add one to)."""
    if time.monotonic() - claim.claimed_at > settings.CLAIM_LEASE_SECONDS / 2:
        renew_claim(factory, settings, claim)
    try:
        result, failed = _analyse(factory, settings, analyser, claim)
    except ExtractionCancelledError:
        return (release_claim(factory, claim),)
    failpoint("pipeline.before_commit")
    committed = commit_analysis(factory, settings, claim, result)
    failpoint("pipeline.after_commit")
    if not committed:
        return ("abandoned",)
    return ("processed", "failed") if failed else ("processed",)


def _analyse(
    factory: sessionmaker[Session], settings: Settings, analyser: Analyser, claim: Claim
) -> tuple[AnalysisResult, bool]:
    """The analyser's result, or an escalation carrying its error: a crash never leaves a ticket unanswered."""
    failpoint("pipeline.after_claim")
    read_attachments(factory, settings, claim.ticket_id, claim)
    try:
        return analyser.analyse(claim.snapshot, claim.policy), False
    except Exception as error:
        log.exception("analyser %s failed", analyser.name, extra={"ticket": claim.snapshot.reference})
        reason = f"analysis failed: {type(error).__name__}: {error}"
        return AnalysisResult(analyser=analyser.name, decision="escalate", reason=reason, error=reason), True


def read_attachments(
    factory: sessionmaker[Session], settings: Settings, ticket_id: int, claim: Claim | None = None
) -> None:
    """Extract the text of the ticket's new attachments, each in a bounded child process; unreadable ones, files
    too complex to read safely, or instructions hidden in one hold every automatic message for a person
    (engine/trust/decision.py reads the warnings).

    Each attachment is recorded as soon as it is read, with its warnings, and renews the claim: a file that hit a
    bound is never read again (not after a restart either), and a ticket with many files keeps its lease.
    """
    with factory() as session:
        pending = list(
            session.execute(
                select(Attachment.id, Attachment.filename).where(
                    Attachment.ticket_id == ticket_id, Attachment.status == "stored", Attachment.sha256.is_not(None)
                )
            )
        )
    for attachment_id, filename in pending:
        with factory() as session:
            data = session.scalar(
                select(Blob.data)
                .join(Attachment, Attachment.sha256 == Blob.sha256)
                .where(Attachment.id == attachment_id)
            )
        if data is None:
            continue
        result = extract_bounded(filename, bytes(data), settings)
        with transaction(factory) as session:
            row = session.get(Attachment, attachment_id)
            ticket = session.get(Ticket, ticket_id)
            if row is None or row.status != "stored" or ticket is None:
                continue  # deleted, or read meanwhile by a worker that took the ticket over
            warnings = _record_extraction(row, result)
            if result.status != OK:
                log.warning("attachment %s not read: %s", filename, result.error, extra={"ticket": ticket.reference})
            hold_for_review(session, ticket, warnings)
            if claim is not None and ticket.claim_token == claim.token:
                ticket.claim_expires = utcnow() + timedelta(seconds=settings.CLAIM_LEASE_SECONDS)


def _record_extraction(row: Attachment, result: Extraction) -> list[str]:
    """Store what was read from one attachment on its row; the warnings that hold the ticket for a person."""
    if result.status != OK:
        row.status, row.error = result.status, result.error
        return [f"attachment {row.filename} could not be read ({result.status})"]
    row.status, row.extracted_text = "extracted", result.text[:200_000]
    found = injection_reasons(result.text) + social_engineering_reasons(result.text)
    hidden = sorted({str(s.location["hidden"]) for s in result.sections if s.location.get("hidden")})
    found += [f"text hidden in the file ({', '.join(hidden)})"] if hidden else []
    return [f"attachment {row.filename}: {reason}" for reason in found]


def renew_claim(factory: sessionmaker[Session], settings: Settings, claim: Claim) -> bool:
    """Extend the lease of a claim that waited for a thread; False when it is no longer ours."""
    with transaction(factory) as session:
        ticket = session.get(Ticket, claim.ticket_id)
        if ticket is None or ticket.claim_token != claim.token:
            return False
        ticket.claim_expires = utcnow() + timedelta(seconds=settings.CLAIM_LEASE_SECONDS)
        return True


def release_claim(factory: sessionmaker[Session], claim: Claim) -> str:
    """Give a claimed ticket back to the queue as it was (the engine is stopping): "released", or "abandoned" when
    the claim was no longer ours."""
    with transaction(factory) as session:
        query = select(Ticket).where(Ticket.id == claim.ticket_id)
        if is_postgres(session):
            query = query.with_for_update()
        ticket = session.scalar(query)
        if ticket is None or ticket.claim_token != claim.token:
            return "abandoned"
        ticket.claim_token = ticket.claimed_by = ticket.claim_expires = None
        record_event(session, ticket, "claim_released", "Engine stopping: queued for analysis again")
        return "released"


def claim_pending_tickets(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    worker: str,
    limit: int | None = None,
    exclude: Collection[int] = (),
) -> list[Claim]:
    """Lease up to `limit` (PROCESS_BATCH_SIZE) tickets that need work, never one in `exclude` (this process is at
    work on them, whatever their lease says); acknowledge new ones in the same transaction, so the ack is never
    lost."""
    now = utcnow()
    limit = settings.PROCESS_BATCH_SIZE if limit is None else limit
    if limit <= 0:
        return []
    with transaction(factory) as session:
        requeue_stranded(session, now)
        policy = current_policy(session, settings)
        waiting = knowledge_wait_reason(session, settings) if settings.KB_READY_WAIT_SECONDS else None
        query = (
            select(Ticket)
            .where(Ticket.pending_since.is_not(None), or_(Ticket.claim_expires.is_(None), Ticket.claim_expires < now))
            .order_by(Ticket.pending_since, Ticket.id)
            .limit(limit)
        )
        if exclude:
            query = query.where(Ticket.id.not_in(list(exclude)))
        if waiting is not None:
            refresh_waiting(session, waiting)
            query = query.where(not_waiting(settings, now))
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        claims = []
        for ticket in session.scalars(query).all():
            if ticket.claim_token is not None:
                record_event(session, ticket, "claim_expired", f"Worker {ticket.claimed_by} stopped mid-way; retrying")
            ticket.claim_token = uuid.uuid4().hex
            ticket.claimed_by = worker
            ticket.claim_expires = now + timedelta(seconds=settings.CLAIM_LEASE_SECONDS)
            if _skip_automation(session, ticket):
                continue
            _acknowledge(session, settings, ticket, policy)
            if waits(ticket, waiting, settings, now):
                _wait_for_knowledge(session, ticket, str(waiting))
                continue
            ticket.waiting_reason = None
            if ticket.status != TicketStatus.ANALYZING:
                transition(session, ticket, TicketStatus.ANALYZING, reason="analysis started", worker=worker)
            replies = session.scalars(
                select(EmailInteraction.body)
                .where(EmailInteraction.ticket_id == ticket.id, EmailInteraction.email_type == "reply")
                .order_by(EmailInteraction.id)
            ).all()
            attachments = session.scalars(
                select(Attachment.filename).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
            ).all()
            claims.append(
                Claim(
                    ticket.id,
                    ticket.claim_token,
                    TicketSnapshot.of(ticket, list(replies), list(attachments)),
                    ticket.pending_since,
                    policy,
                    time.monotonic(),
                )
            )
    return claims


def requeue_stranded(session: Session, now: datetime) -> int:
    """Queue again tickets left in Analyzing with nothing pending and no live lease: no claim would ever reach them.

    Neither the engine nor the dashboard leaves that state behind; the sweeper is the net for what older
    versions, hand edits of the database or a bug might.
    """
    query = select(Ticket).where(
        Ticket.status == TicketStatus.ANALYZING,
        Ticket.pending_since.is_(None),
        or_(Ticket.claim_expires.is_(None), Ticket.claim_expires < now),
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    stranded = session.scalars(query).all()
    for ticket in stranded:
        _release(ticket)
        ticket.pending_since = now
        record_event(session, ticket, "requeued", "In Analyzing with no analysis queued: queued for analysis again")
    return len(stranded)


def _wait_for_knowledge(session: Session, ticket: Ticket, reason: str) -> None:
    """Leave the ticket queued, unclaimed, with the reason on it; the timeline says so once per reason."""
    ticket.claim_token = ticket.claimed_by = ticket.claim_expires = None
    if ticket.waiting_reason != reason:
        ticket.waiting_reason = reason
        record_event(session, ticket, "waiting_for_knowledge", reason)


def _skip_automation(session: Session, ticket: Ticket) -> bool:
    """Tickets a person holds, and mail sent by machines, get no automated work at all."""
    reason = None
    if ticket.taken_over_by:
        reason = f"taken over by {ticket.taken_over_by}"
    elif ticket.automatic_reason:
        reason = f"automatic message ({ticket.automatic_reason})"
    if reason is None:
        return False
    _release(ticket)
    if ticket.automatic_reason and ticket.status == TicketStatus.NEW:
        ticket.team = ticket.team or "Triage"
        transition(session, ticket, TicketStatus.ESCALATED, reason=f"{reason}: a person decides")
    else:
        record_event(session, ticket, "automation_skipped", f"Automation skipped: {reason}")
    return True


def _acknowledge(session: Session, settings: Settings, ticket: Ticket, policy: DeskPolicy) -> None:
    """Queue the acknowledgement; one the final check holds is not sent, and a person sees why. Backlog a lead took
    without acknowledgements (engine/connector_status.py) gets none."""
    backlog = (ticket.additional_info or {}).get("backlog")
    if isinstance(backlog, dict) and backlog.get("acknowledge") is False:
        return
    content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE, policy.templates)
    try:
        enqueue_email(session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key=f"ack:{ticket.id}")
    except UntrustedTextError as held:
        ticket.action_required = True
        record_event(session, ticket, "email_held", f"acknowledgement not sent: {held}", reasons=held.reasons)


def _release(ticket: Ticket) -> None:
    ticket.pending_since = None
    ticket.claim_token = None
    ticket.claimed_by = None
    ticket.claim_expires = None


def commit_analysis(factory: sessionmaker[Session], settings: Settings, claim: Claim, result: AnalysisResult) -> bool:
    """Record the analysis, the decision and its effects, if our claim still holds. False: someone else has it."""
    with transaction(factory) as session:
        query = select(Ticket).where(Ticket.id == claim.ticket_id)
        if is_postgres(session):
            query = query.with_for_update()
        ticket = session.scalar(query)
        if ticket is None or ticket.claim_token != claim.token:
            log.warning("claim lost before commit", extra={"ticket": f"TCKT-{claim.ticket_id}"})
            if ticket is not None:
                record_event(
                    session,
                    ticket,
                    "analysis_discarded",
                    f"Analysis by {result.analyser} discarded: a person or another worker took the ticket meanwhile",
                    decision=result.decision,
                )
            return False
        analysis = Analysis(
            ticket_id=ticket.id,
            analyser=result.analyser,
            decision=result.decision,
            confidence=result.confidence,
            summary=result.summary or result.reason,
            resolution_steps=result.resolution_steps,
            information_gaps=result.information_gaps,
            follow_up_questions=result.follow_up_questions,
            evidence=result.evidence,
            guards=result.guards,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost_usd=result.cost_usd,
            latency_ms=result.latency_ms,
            error=result.error,
        )
        session.add(analysis)
        session.flush()
        if result.escalation:
            record_escalation(session, ticket, analysis, result.escalation)
        ticket.category = ticket.category or result.category
        record_event(
            session,
            ticket,
            "analysed",
            f"Analysed by {result.analyser}: {result.decision} ({result.reason})",
            analysis_id=analysis.id,
            confidence=result.confidence,
        )
        if result.model_confidence:
            record_event(
                session,
                ticket,
                MODEL_CONFIDENCE_EVENT,
                describe_model_confidence(result.model_confidence),
                analysis_id=analysis.id,
                **result.model_confidence,
            )
        if result.confidence_adjustment:
            record_event(
                session,
                ticket,
                "confidence_adjusted",
                describe_adjustment(result.confidence_adjustment),
                analysis_id=analysis.id,
                **result.confidence_adjustment,
            )
        void_open_drafts(session, ticket, reason="superseded by a new analysis")
        act(session, settings, ticket, analysis, result, claim.policy)
        observe_analysis(result, ticket.pending_since)
        still_pending = ticket.pending_since != claim.pending_since
        _release(ticket)
        if still_pending:
            ticket.pending_since = utcnow()
        return True


def record_escalation(session: Session, ticket: Ticket, analysis: Analysis, assessment: dict[str, Any]) -> None:
    """Keep every criterion and weighted component, for the score breakdown on the ticket page."""
    ticket.escalation_criteria = assessment["criteria"]
    session.add(
        Escalation(
            ticket_id=ticket.id,
            analysis_id=analysis.id,
            criteria=assessment["criteria"],
            components=assessment["components"],
            weighted_score=assessment["weighted_score"],
            threshold=assessment["threshold"],
            escalate=assessment["escalate"],
            reasons=assessment["reasons"],
            team=assessment["team"],
            route=assessment.get("route"),
        )
    )


def act(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    analysis: Analysis,
    result: AnalysisResult,
    policy: DeskPolicy,
) -> Action:
    """Turn the decision into an action; the policy the analysis saw says whether a customer message goes out now."""
    kind = DECISION_KIND[result.decision]
    team = result.team or ticket.team or settings.DEFAULT_TEAM
    if kind is ActionKind.ESCALATE:
        action = Action(
            ticket_id=ticket.id,
            analysis_id=analysis.id,
            kind=kind,
            state=ActionState.EXECUTED,
            team=team,
            reason=result.reason,
            decided_by="engine",
            decided_at=utcnow(),
        )
        session.add(action)
        session.flush()
        ticket.team = team
        transition(session, ticket, TicketStatus.ESCALATED, reason=result.reason, action_id=action.id, team=team)
        return action
    verdict = delivery_verdict(ticket, result, policy)
    action = Action(
        ticket_id=ticket.id,
        analysis_id=analysis.id,
        kind=kind,
        state=ActionState.AWAITING_APPROVAL,
        subject=result.draft_subject,
        body=result.draft_body,
        team=team,
        reason=result.reason,
        policy={"auto_send": verdict.auto_send, "reasons": verdict.reasons},
    )
    session.add(action)
    session.flush()
    record_event(
        session,
        ticket,
        "action_proposed",
        f"Proposed {kind} (v{action.version})",
        action_id=action.id,
        policy=verdict.reasons,
    )
    held = send_automatically(session, settings, ticket, action) if verdict.auto_send else verdict.reasons
    if held:
        transition(session, ticket, TicketStatus.AWAITING_APPROVAL, reason="; ".join(held), action_id=action.id)
    return action


def send_automatically(session: Session, settings: Settings, ticket: Ticket, action: Action) -> list[str]:
    """Carry out an auto-approved draft; if the outbox's final check finds text from nowhere trusted in the message,
    nothing of it stays (savepoint) and the draft waits for a person: the reasons are returned."""
    try:
        with session.begin_nested():
            execute_action(session, settings, ticket, action, actor="engine")
    except UntrustedTextError as error:
        held = [f"final check: {reason}" for reason in error.reasons]
        action.policy = {"auto_send": False, "reasons": held}
        return held
    return []
