"""The stages of one ticket: claim → acknowledge → analyse → decide → act.

A claim is a lease (token + expiry) taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
engine processes share the queue and each ticket is worked once. Analysis runs outside any
transaction (a model may take seconds); its results commit only if the claim still holds, in one
transaction with the timeline, the action and any outgoing message. A crash anywhere leaves either
nothing or everything, and an expired lease lets another worker pick the ticket up again.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

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
from engine.trust.decision import delivery_verdict
from engine.trust.guards import injection_reasons, social_engineering_reasons
from engine.trust.provenance import UntrustedTextError
from kb.extract import OK, extract

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


@dataclass
class ProcessReport:
    claimed: int = 0
    processed: int = 0
    abandoned: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def process_pending(
    factory: sessionmaker[Session], settings: Settings, analyser: Analyser, *, worker: str
) -> ProcessReport:
    """One run of the processing job: claim a batch, analyse up to ANALYSIS_CONCURRENCY tickets at once.

    Analyses overlap because a model call mostly waits on the network; each result commits on its own.
    """
    report = ProcessReport()
    claims = claim_pending_tickets(factory, settings, worker=worker)
    report.claimed = len(claims)
    if not claims:
        return report
    with ThreadPoolExecutor(max_workers=min(settings.ANALYSIS_CONCURRENCY, len(claims))) as pool:
        for claim, (result, failed) in zip(
            claims, pool.map(lambda c: _analyse(factory, settings, analyser, c), claims), strict=True
        ):
            report.failed += failed
            failpoint("pipeline.before_commit")
            if commit_analysis(factory, settings, claim, result):
                report.processed += 1
            else:
                report.abandoned += 1
            failpoint("pipeline.after_commit")
    return report


def _analyse(
    factory: sessionmaker[Session], settings: Settings, analyser: Analyser, claim: Claim
) -> tuple[AnalysisResult, bool]:
    """The analyser's result, or an escalation carrying its error: a crash never leaves a ticket unanswered."""
    failpoint("pipeline.after_claim")
    read_attachments(factory, settings, claim.ticket_id)
    try:
        return analyser.analyse(claim.snapshot, claim.policy), False
    except Exception as error:
        log.exception("analyser %s failed", analyser.name, extra={"ticket": claim.snapshot.reference})
        reason = f"analysis failed: {type(error).__name__}: {error}"
        return AnalysisResult(analyser=analyser.name, decision="escalate", reason=reason, error=reason), True


def read_attachments(factory: sessionmaker[Session], settings: Settings, ticket_id: int) -> None:
    """Extract the text of the ticket's new attachments; unreadable ones, or instructions hidden in one,
    hold every automatic message for a person (engine/trust/decision.py reads the warnings)."""
    with factory() as session:
        pending = [
            (row.id, row.filename, data)
            for row, data in session.execute(
                select(Attachment, Blob.data)
                .join(Blob, Blob.sha256 == Attachment.sha256)
                .where(Attachment.ticket_id == ticket_id, Attachment.status == "stored")
            )
        ]
    if not pending:
        return
    results = {
        attachment_id: (
            filename,
            extract(
                filename,
                data,
                max_bytes=settings.KB_MAX_FILE_BYTES,
                tesseract_cmd=settings.KB_TESSERACT_CMD,
                ocr_languages=settings.KB_OCR_LANGUAGES,
            ),
        )
        for attachment_id, filename, data in pending
    }
    warnings = []
    with transaction(factory) as session:
        for attachment_id, (filename, result) in results.items():
            row = session.get(Attachment, attachment_id)
            if row is None:
                continue
            if result.status == OK:
                row.status, row.extracted_text = "extracted", result.text[:200_000]
                found = injection_reasons(result.text) + social_engineering_reasons(result.text)
                hidden = sorted({str(s.location["hidden"]) for s in result.sections if s.location.get("hidden")})
                found += [f"text hidden in the file ({', '.join(hidden)})"] if hidden else []
                warnings.extend(f"attachment {filename}: {reason}" for reason in found)
            else:
                row.status, row.error = result.status, result.error
                warnings.append(f"attachment {filename} could not be read ({result.status})")
        ticket = session.get(Ticket, ticket_id)
        if ticket is not None:
            hold_for_review(session, ticket, warnings)


def claim_pending_tickets(factory: sessionmaker[Session], settings: Settings, *, worker: str) -> list[Claim]:
    """Lease tickets that need work; acknowledge new ones in the same transaction, so the ack is never lost."""
    now = utcnow()
    with transaction(factory) as session:
        requeue_stranded(session, now)
        policy = current_policy(session, settings)
        query = (
            select(Ticket)
            .where(Ticket.pending_since.is_not(None), or_(Ticket.claim_expires.is_(None), Ticket.claim_expires < now))
            .order_by(Ticket.pending_since, Ticket.id)
            .limit(settings.PROCESS_BATCH_SIZE)
        )
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
            if ticket.status != TicketStatus.ANALYZING:
                transition(session, ticket, TicketStatus.ANALYZING, reason="analysis started", worker=worker)
            replies = session.scalars(
                select(EmailInteraction.body)
                .where(EmailInteraction.ticket_id == ticket.id, EmailInteraction.email_type == "reply")
                .order_by(EmailInteraction.id)
            ).all()
            claims.append(
                Claim(
                    ticket.id,
                    ticket.claim_token,
                    TicketSnapshot.of(ticket, list(replies)),
                    ticket.pending_since,
                    policy,
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
