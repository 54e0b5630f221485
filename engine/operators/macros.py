"""Canned replies (macros): texts leads keep for common cases, with placeholders an operator's reply fills in.

A canned reply is operator text: a lead wrote it, or seeded it from an answer the desk learned from a person,
and the operator reads the filled-in reply before sending it. Placeholders are a closed list; `{name}` only,
never attribute or index look-ups, so a template can reach nothing but the values below.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.enums import OutcomeState, Role
from engine.core.models import CannedReply, LearnedAnswer, ResolutionOutcome, Ticket
from engine.core.timeline import record_audit
from engine.operators.permissions import Actor, require
from engine.outcomes.learned import TrackRecord, learned_subject, reusable, track_records

PLACEHOLDERS = {
    "requester_name": "the requester's name when their directory vouches for it, else “there”",
    "ticket": "the ticket's reference (TCKT-123)",
    "subject": "the ticket's subject",
    "operator": "your user name",
    "team": "the ticket's team",
}
MAX_BODY = 20_000


def placeholders_in(body: str) -> list[str]:
    """The placeholders a body uses; ValueError naming the first one that is not allowed."""
    found = []
    try:
        parsed = list(Formatter().parse(body))
    except ValueError as error:
        raise ValueError(f"a brace is not closed ({error}); write {{{{ and }}}} for literal braces") from error
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            allowed = ", ".join(f"{{{known}}}" for known in PLACEHOLDERS)
            raise ValueError(f"unknown placeholder {{{name}}}: use {allowed}")
        found.append(name)
    return found


def fill(body: str, ticket: Ticket, actor: Actor, default_team: str) -> str:
    """The canned reply for this ticket, every placeholder replaced."""
    placeholders_in(body)
    return body.format_map(
        {
            "requester_name": ticket.directory_name or "there",
            "ticket": ticket.reference,
            "subject": ticket.subject,
            "operator": actor.username,
            "team": ticket.team or default_team,
        }
    )


def save_canned_reply(
    session: Session,
    actor: Actor,
    *,
    title: str,
    body: str,
    team: str | None = None,
    reply_id: int | None = None,
    source_ticket_id: int | None = None,
) -> CannedReply:
    """Create a canned reply, or change the one `reply_id` names: leads and admins only."""
    require(actor, Role.LEAD)
    title, body = title.strip(), body.strip()
    if not title or not body:
        raise ValueError("a canned reply needs a title and a text")
    if len(body) > MAX_BODY:
        raise ValueError(f"a canned reply holds at most {MAX_BODY:,} characters")
    placeholders_in(body)
    same_title = session.scalar(select(CannedReply).where(CannedReply.title == title[:200]))
    if same_title is not None and same_title.id != reply_id:
        raise ValueError(f"a canned reply called “{title}” exists already")
    if reply_id is None:
        reply = CannedReply(created_by=actor.username, source_ticket_id=source_ticket_id)
        session.add(reply)
    else:
        found = session.get(CannedReply, reply_id)
        if found is None:
            raise LookupError(f"canned reply {reply_id} does not exist")
        reply = found
    reply.title, reply.body, reply.team = title[:200], body, team or None
    session.flush()
    record_audit(session, actor.username, "save_canned_reply", "canned_reply", reply.id, title=reply.title)
    return reply


def delete_canned_reply(session: Session, actor: Actor, reply_id: int) -> None:
    require(actor, Role.LEAD)
    reply = session.get(CannedReply, reply_id)
    if reply is None:
        raise LookupError(f"canned reply {reply_id} does not exist")
    record_audit(session, actor.username, "delete_canned_reply", "canned_reply", reply.id, title=reply.title)
    session.delete(reply)
    session.flush()


def canned_replies(session: Session, team: str | None = None) -> list[CannedReply]:
    """All canned replies by title; with `team`, that team's and those for every team."""
    query = select(CannedReply).order_by(CannedReply.title)
    if team is not None:
        query = query.where((CannedReply.team == team) | CannedReply.team.is_(None))
    return list(session.scalars(query))


@dataclass(frozen=True)
class ApprovedAnswer:
    ticket_id: int
    category: str | None
    team: str | None
    body: str


def approved_answers(session: Session, *, limit: int = 20) -> list[ApprovedAnswer]:
    """The answers the desk has learned from its people (engine/outcomes/learned.py) that it may give to anyone,
    newest first: cleaned of greeting, signature and customer quotes, free of particulars or marked general by a
    lead, and not re-opened since (a resolution the customer said did not help is no model to copy)."""
    reopened = select(ResolutionOutcome.ticket_id).where(ResolutionOutcome.state == OutcomeState.REOPENED)
    rows = session.execute(
        select(LearnedAnswer, Ticket.team)
        .outerjoin(Ticket, Ticket.id == LearnedAnswer.ticket_id)
        .where(LearnedAnswer.ticket_id.is_not(None), LearnedAnswer.ticket_id.not_in(reopened))
        .order_by(LearnedAnswer.created_at.desc(), LearnedAnswer.id.desc())
        .limit(limit * 3)
    ).all()
    records = track_records(session, [learned_subject(answer.id) for answer, _ in rows])
    answers = [
        ApprovedAnswer(int(answer.ticket_id), answer.category, team, answer.answer)
        for answer, team in rows
        if reusable(answer) and not records.get(learned_subject(answer.id), TrackRecord("")).reopened
    ]
    return answers[:limit]


def seed_from_approved_answers(session: Session, actor: Actor, *, limit: int = 10) -> int:
    """Turn approved answers not yet kept into canned replies (titled by ticket and category, for a lead to
    rename); returns how many were added."""
    require(actor, Role.LEAD)
    kept = set(session.scalars(select(CannedReply.source_ticket_id).where(CannedReply.source_ticket_id.is_not(None))))
    added = 0
    for answer in approved_answers(session, limit=limit + len(kept)):
        if answer.ticket_id in kept or added >= limit:
            continue
        title = f"Answer from TCKT-{answer.ticket_id}" + (f" · {answer.category}" if answer.category else "")
        body = answer.body.replace("{", "{{").replace("}", "}}")
        save_canned_reply(session, actor, title=title, body=body, team=answer.team, source_ticket_id=answer.ticket_id)
        added += 1
    return added
