"""What operators may do to tickets and drafts. Every function checks the role, writes the timeline and the audit log.

Approvals bind to the exact draft version the operator saw: an edit or a re-analysis changes or
voids the draft, and approving a version that is no longer current is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import OutgoingAttachment
from engine.core.db import transaction
from engine.core.desk_policy import DeskPolicy, save_policy
from engine.core.enums import ActionKind, ActionState, MessageKind, Role, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import Action, KbChunk, KbDocument, LearnedAnswer, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import EmailContent, conversation_subject, to_html
from engine.core.timeline import record_audit, record_event
from engine.delivery.execution import execute_action, void_open_drafts
from engine.delivery.outbox import addressees, enqueue_email, resolve_uncertain
from engine.operators.permissions import Actor, require
from engine.operators.reply_extras import cc_addresses, reply_files
from engine.outcomes.learned import article_markdown, person_decided, reusable, review_answer, reviewed_variants
from kb.titles import knowledge_filename


class StaleDraftError(ValueError):
    """The draft changed (edited, re-analysed, decided) since the operator looked at it."""


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"TCKT-{ticket_id} does not exist")
    return ticket


def _touched(ticket: Ticket) -> None:
    """Remember the first human action: tickets never touched count as automated in the metrics."""
    ticket.human_touched_at = ticket.human_touched_at or utcnow()


def _stop_engine_work(ticket: Ticket) -> None:
    """A person's decision replaces whatever the engine was doing with the ticket or had queued for it.

    The claim in flight is void, so its analysis is discarded on commit instead of acting on a ticket the
    person has already moved.
    """
    ticket.claim_token = ticket.claimed_by = ticket.claim_expires = None
    ticket.pending_since = None


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
    _touched(ticket)
    execute_action(session, settings, ticket, action, actor=actor.label)
    person_decided(
        session, ticket, action, "edited" if "edited_by" in (action.policy or {}) else "approved", actor.label
    )
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
    _touched(ticket)
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


def reject_draft(
    session: Session, actor: Actor, action_id: int, seen_version: int, *, reason: str, team: str | None = None
) -> Action:
    """Refuse the draft; the ticket goes to a person: its team, else `team` (the page passes the first-line team), so
    an escalated ticket always shows in some team's queue."""
    require(actor, Role.AGENT)
    if not reason.strip():
        raise ValueError("a rejection needs a reason")
    action, ticket = _open_draft(session, action_id, seen_version)
    action.state = ActionState.REJECTED
    action.decided_by, action.decided_at = actor.label, utcnow()
    _touched(ticket)
    action.reason = reason
    ticket.team = ticket.team or team
    transition(session, ticket, TicketStatus.ESCALATED, actor=actor.label, reason=f"draft rejected: {reason}")
    person_decided(session, ticket, action, "rejected", actor.label)
    record_audit(session, actor.username, "reject_draft", "action", action.id, reason=reason, ticket=ticket.id)
    return action


OWNABLE = frozenset({TicketStatus.NEW, TicketStatus.ANALYZING, TicketStatus.AWAITING_APPROVAL, TicketStatus.ESCALATED})
"""States a take-over turns into In progress; a ticket waiting on its customer or finished keeps its status."""


def take_over(session: Session, actor: Actor, ticket_id: int) -> Ticket:
    """A person owns the ticket from now on (it is assigned to them): automation stops for it, any claim in flight
    is void.

    An open AI draft stays, as the owner's starting point: it is sent only when they approve it.
    """
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    _touched(ticket)
    ticket.taken_over_by = ticket.assignee = actor.username
    _stop_engine_work(ticket)
    if ticket.status in OWNABLE:
        transition(
            session, ticket, TicketStatus.IN_PROGRESS, actor=actor.label, reason=f"taken over by {actor.username}"
        )
    record_event(session, ticket, "taken_over", f"{actor.username} took the ticket over", actor=actor.label)
    record_audit(session, actor.username, "take_over", "ticket", ticket.id)
    return ticket


def request_reanalysis(session: Session, actor: Actor, ticket_id: int) -> Ticket:
    """Hand the ticket back to the engine for a fresh analysis; open drafts are void."""
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    _touched(ticket)
    ticket.taken_over_by = None
    ticket.pending_since = utcnow()
    void_open_drafts(session, ticket, reason="re-analysis requested", actor=actor.label)
    record_event(
        session, ticket, "reanalysis_requested", f"{actor.username} asked for a new analysis", actor=actor.label
    )
    record_audit(session, actor.username, "request_reanalysis", "ticket", ticket.id)
    return ticket


def send_manual_reply(
    session: Session,
    settings: Settings,
    actor: Actor,
    ticket_id: int,
    *,
    subject: str,
    body: str,
    cc: str = "",
    files: Sequence[OutgoingAttachment] = (),
) -> Ticket:
    """A person writes to the customer directly; it goes through the outbox like every message.

    `cc` holds the addresses the person typed for copies; `files` are attached. Both are checked here
    (engine/operators/reply_extras.py) and queued with the message, so either all of it is sent or none.
    """
    require(actor, Role.AGENT)
    if not body.strip():
        raise ValueError("a reply needs a body")
    ticket = _ticket(session, ticket_id)
    copies = cc_addresses(cc, ticket.email, settings.from_address)
    attached = reply_files(files, settings.MAX_ATTACHMENT_BYTES)
    _touched(ticket)
    if ticket.reference not in subject:
        subject = conversation_subject(ticket.reference, subject.strip().removeprefix("Re:"))
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
    message = enqueue_email(
        session,
        settings,
        ticket,
        MessageKind.MANUAL_REPLY,
        EmailContent(subject=subject, body_text=body, body_html=to_html(body)),
        dedupe_key=f"action:{action.id}:v1",
        action=action,
        automated=False,
        cc=copies,
        files=attached,
    )
    record_event(
        session,
        ticket,
        "manual_reply",
        f"{actor.username} replied to {addressees(message)}",
        actor=actor.label,
        action_id=action.id,
    )
    person_decided(session, ticket, action, "wrote", actor.label)
    record_audit(
        session,
        actor.username,
        "manual_reply",
        "ticket",
        ticket.id,
        action_id=action.id,
        cc=copies,
        files=[file.filename for file in attached],
    )
    return ticket


def set_status(session: Session, actor: Actor, ticket_id: int, status: TicketStatus, *, reason: str = "") -> Ticket:
    """Resolve, close or re-route a ticket by hand, within the lifecycle's rules.

    New or Analyzing hands the ticket to the engine for a fresh analysis; any other status is the person's call,
    so queued or running engine work for the ticket stops.
    """
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    _touched(ticket)
    transition(session, ticket, status, actor=actor.label, reason=reason or f"set by {actor.username}")
    _stop_engine_work(ticket)
    if status in (TicketStatus.NEW, TicketStatus.ANALYZING):
        ticket.pending_since = utcnow()
    if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        void_open_drafts(session, ticket, reason=f"ticket {status.lower()} by {actor.username}", actor=actor.label)
    record_audit(session, actor.username, "set_status", "ticket", ticket.id, status=status, reason=reason)
    return ticket


PRIORITIES = ("critical", "high", "medium", "low")
OVERRIDE_KIND = {"resolve": ActionKind.PROPOSE_RESOLUTION, "ask": ActionKind.REQUEST_INFO}


def assign(
    session: Session, actor: Actor, ticket_id: int, *, team: str | None = None, priority: str | None = None
) -> Ticket:
    """Route a ticket to a team and/or set its priority; the source learns it through the timeline."""
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    changes = {}
    if team and team != ticket.team:
        changes["team"] = (ticket.team, team)
        ticket.team = team
    if priority and priority != ticket.priority:
        changes["priority"] = (ticket.priority, priority)
        ticket.priority = priority
    if not changes:
        return ticket
    _touched(ticket)
    ticket.updated_at = utcnow()
    described = ", ".join(f"{field} {old or '—'} → {new}" for field, (old, new) in changes.items())
    record_event(
        session,
        ticket,
        "assigned",
        f"{actor.username} set {described}",
        actor=actor.label,
        **{field: new for field, (_, new) in changes.items()},
    )
    record_audit(
        session, actor.username, "assign", "ticket", ticket.id, **{field: new for field, (_, new) in changes.items()}
    )
    return ticket


def override_decision(
    session: Session,
    settings: Settings,
    actor: Actor,
    ticket_id: int,
    decision: str,
    *,
    reason: str,
    subject: str = "",
    body: str = "",
    team: str | None = None,
    priority: str | None = None,
) -> Action:
    """Replace whatever the engine decided with a person's decision, carried out at once.

    resolve / ask send the operator's message through the outbox; escalate routes to `team`.
    Open drafts are void, so nothing the engine proposed can still be approved afterwards.
    """
    require(actor, Role.AGENT)
    if decision not in ("resolve", "ask", "escalate"):
        raise ValueError(f"unknown decision {decision!r}: choose resolve, ask or escalate")
    if not reason.strip():
        raise ValueError("an override needs a reason")
    if decision != "escalate" and not body.strip():
        raise ValueError(f"to {decision}, write the message the customer receives")
    ticket = _ticket(session, ticket_id)
    _touched(ticket)
    _stop_engine_work(ticket)
    void_open_drafts(
        session, ticket, reason=f"overridden by {actor.username}", actor=actor.label, refused_by=actor.label
    )
    assign(session, actor, ticket_id, team=team, priority=priority)
    record_event(
        session,
        ticket,
        "overridden",
        f"{actor.username} overrode the decision: {decision} ({reason})",
        actor=actor.label,
        decision=decision,
        reason=reason,
    )
    if decision == "escalate":
        action = Action(
            ticket_id=ticket.id,
            kind=ActionKind.ESCALATE,
            state=ActionState.EXECUTED,
            team=ticket.team or settings.DEFAULT_TEAM,
            reason=reason,
            created_by=actor.label,
            decided_by=actor.label,
            decided_at=utcnow(),
        )
        session.add(action)
        session.flush()
        ticket.team = action.team
        if ticket.status != TicketStatus.ESCALATED:
            transition(session, ticket, TicketStatus.ESCALATED, actor=actor.label, reason=reason, action_id=action.id)
    else:
        subject = subject.strip()
        if ticket.reference not in subject:
            subject = conversation_subject(ticket.reference, subject.removeprefix("Re:"))
        action = Action(
            ticket_id=ticket.id,
            kind=OVERRIDE_KIND[decision],
            state=ActionState.AWAITING_APPROVAL,
            subject=subject,
            body=body,
            team=ticket.team,
            reason=reason,
            created_by=actor.label,
        )
        session.add(action)
        session.flush()
        execute_action(session, settings, ticket, action, actor=actor.label)
        person_decided(session, ticket, action, "wrote", actor.label)
    record_audit(session, actor.username, "override_decision", "ticket", ticket.id, decision=decision, reason=reason)
    return action


def resolve_uncertain_message(session: Session, actor: Actor, outbox_id: int, *, resend: bool) -> None:
    """A person settles a message whose delivery is unknown: send it again, or accept it as delivered."""
    require(actor, Role.AGENT)
    message = resolve_uncertain(session, outbox_id, resend=resend, actor=actor.label)
    ticket = _ticket(session, message.ticket_id)
    _touched(ticket)
    record_audit(session, actor.username, "resolve_uncertain", "outbox", outbox_id, resend=resend, ticket=ticket.id)


@dataclass
class BulkResult:
    """What a bulk action did: the tickets it changed and, for each one it skipped, why."""

    done: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def _each(session: Session, ticket_ids: Iterable[int], change: Callable[[int], object]) -> BulkResult:
    """Apply `change` to each ticket in its own savepoint: one refusal does not undo the others."""
    result = BulkResult()
    for ticket_id in ticket_ids:
        try:
            with session.begin_nested():
                change(ticket_id)
        except (LookupError, ValueError) as error:
            result.skipped[ticket_id] = str(error)
        else:
            result.done.append(ticket_id)
    return result


def bulk_approve(session: Session, settings: Settings, actor: Actor, drafts: dict[int, tuple[int, int]]) -> BulkResult:
    """Approve each ticket's draft, `drafts` mapping ticket id → (action id, version seen in the queue)."""
    require(actor, Role.AGENT)
    return _each(session, drafts, lambda ticket_id: approve_draft(session, settings, actor, *drafts[ticket_id]))


def bulk_assign(
    session: Session, actor: Actor, ticket_ids: list[int], *, team: str | None = None, priority: str | None = None
) -> BulkResult:
    require(actor, Role.AGENT)
    return _each(session, ticket_ids, lambda ticket_id: assign(session, actor, ticket_id, team=team, priority=priority))


def bulk_close(session: Session, actor: Actor, ticket_ids: list[int], *, reason: str = "") -> BulkResult:
    require(actor, Role.AGENT)
    return _each(
        session,
        ticket_ids,
        lambda ticket_id: set_status(session, actor, ticket_id, TicketStatus.CLOSED, reason=reason or "bulk close"),
    )


def change_policy(session: Session, actor: Actor, policy: DeskPolicy, previous: DeskPolicy | None = None) -> int:
    """Save a new desk-policy version (autopilot, thresholds, weights, templates): leads and admins only. `previous` is
    the policy the person edited (the defaults, before any save), so the audit names only what they changed."""
    require(actor, Role.LEAD)
    return save_policy(session, policy, actor=actor.username, previous=previous).version


def add_kb_document(
    factory: sessionmaker[Session],
    settings: Settings,
    actor: Actor,
    filename: str,
    data: bytes,
    *,
    team: str | None = None,
) -> KbDocument:
    """Upload one file to the knowledge base; the audit entry is committed first, so a failed indexing is on record.
    A name with control characters or over 500 characters is stored cleaned (the returned document's `filename`)."""
    from kb.indexer import add_document  # the file readers (0.3-0.6 s to import) load at a change, not on every page

    require(actor, Role.LEAD)
    name, changed = knowledge_filename(filename)
    with transaction(factory) as session:
        details: dict[str, object] = {"size": len(data), "team": team}
        if changed:
            details["filename_changed"] = changed
        record_audit(session, actor.username, "kb_upload", "kb_document", name[:100], **details)
    return add_document(factory, settings, name, data, uploaded_by=actor.username, team=team)


def reindex_kb_document(
    factory: sessionmaker[Session], settings: Settings, actor: Actor, document_id: int
) -> KbDocument:
    """Extract and index a stored document again; the indexer opens its own transactions after the audit entry's."""
    from kb.indexer import reindex_document

    require(actor, Role.LEAD)
    with transaction(factory) as session:
        record_audit(session, actor.username, "kb_reindex", "kb_document", document_id)
    return reindex_document(factory, settings, document_id)


def remove_kb_document(factory: sessionmaker[Session], settings: Settings, actor: Actor, document_id: int) -> bool:
    """Delete a document from every index; the audit entry is committed before the indexer's own transaction."""
    from kb.indexer import remove_document

    require(actor, Role.LEAD)
    with transaction(factory) as session:
        record_audit(session, actor.username, "kb_delete", "kb_document", document_id)
    return remove_document(factory, settings, document_id)


def approve_kb_chunk(session: Session, actor: Actor, chunk_id: int) -> KbChunk:
    """A lead read a quarantined chunk and lets the analysers cite it, until its content changes; the caller commits
    the approval with its audit entry."""
    from kb.indexer import approve_chunk

    require(actor, Role.LEAD)
    chunk = approve_chunk(session, chunk_id, actor.username)
    record_audit(
        session,
        actor.username,
        "kb_approve_chunk",
        "kb_chunk",
        chunk.id,
        source=f"{chunk.source_kind}:{chunk.source_id}",
        location=chunk.location,
        reason=chunk.quarantine,
    )
    return chunk


def _learned(session: Session, answer_id: int) -> LearnedAnswer:
    answer = session.get(LearnedAnswer, answer_id)
    if answer is None:
        raise LookupError(f"learned answer {answer_id} does not exist")
    return answer


def mark_learned_answer_general(
    session: Session, actor: Actor, answer_id: int, *, text: str | None = None
) -> LearnedAnswer:
    """A lead read a learned answer that named its customer's particulars and lets the desk give it to others, in
    `text` when they rewrote it without them; the caller commits with the audit entry."""
    require(actor, Role.LEAD)
    answer = _learned(session, answer_id)
    if text is not None:
        if not text.strip():
            raise ValueError("a learned answer needs a text")
        answer.answer = text.strip()
    answer.general_by, answer.general_at = actor.username, utcnow()
    record_audit(
        session,
        actor.username,
        "learned_mark_general",
        "learned_answer",
        answer.id,
        particulars=answer.particulars,
        rewritten=text is not None,
    )
    return answer


def restore_answer(session: Session, actor: Actor, subject: str) -> None:
    """A lead looked at an answer customers re-opened and lets it be sent on its own again (`subject`: a learned
    answer `learned:<id>` or a knowledge-base section); later re-opens count anew."""
    require(actor, Role.LEAD)
    review_answer(session, subject, actor.username)
    record_audit(session, actor.username, "answer_restore", "answer", subject)


def publish_learned_article(
    factory: sessionmaker[Session],
    settings: Settings,
    actor: Actor,
    answer_id: int,
    *,
    title: str,
    questions: list[str],
) -> KbDocument:
    """A lead publishes a learned answer as a knowledge-base article: the title and question variants they reviewed
    (`reviewed_variants`: none may still name a customer's particulars), and the answer. The document, the answer's
    link to it and the audit entry commit together, and only if no one published the answer meanwhile (a conditional
    update, so two leads publishing at once make one article); the article is then read and indexed like any upload."""
    from kb.indexer import index_staged_document, stage_document

    require(actor, Role.LEAD)
    with transaction(factory) as session:
        answer = _learned(session, answer_id)
        title, variants = reviewed_variants(session, answer_id, title, questions)
        if not reusable(answer):
            raise ValueError(f"learned answer {answer_id} names a customer's particulars: mark it general first")
        data = article_markdown(title, variants, answer.answer).encode()
        document = stage_document(
            session, settings, f"{knowledge_filename(title)[0][:80]}.md", data, uploaded_by=actor.username
        )
        claimed = session.execute(
            update(LearnedAnswer)
            .where(LearnedAnswer.id == answer_id, LearnedAnswer.published_document_id.is_(None))
            .values(published_document_id=document.id)
        ).rowcount
        if claimed != 1:
            raise ValueError(f"learned answer {answer_id} is published already")
        record_audit(
            session,
            actor.username,
            "learned_publish",
            "learned_answer",
            answer_id,
            title=title[:200],
            variants=variants,
        )
        document_id = document.id
    return index_staged_document(factory, settings, document_id, data)
