"""The LLM's reading of customers' replies to a resolution that the rules (engine/intake/reply_classifier.py) found
unclear.

It runs as its own engine job, never inside ingest: the reply has already re-opened the ticket for a person, and
that stays so, since the model never closes a ticket. Its reading goes on the timeline for that person, and a
`solved` or `unsolved` reading becomes the resolution's verdict for the metrics and the confidence calibration:
solved makes the outcome confirmed (answer yes), unsolved keeps it re-opened (answer no), unclear leaves it as
the rules had it. Each reply is read once (a conditional update of `answered_via`); a failed call leaves it for
the next run. A reply the guards read as instructions to an AI is never sent to the model.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import get_args

from langchain_core.language_models import BaseChatModel
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.llm import UsageRecorder, build_chat_model, token_budget
from engine.analysers.prompts import REPLY_PROMPT
from engine.core.addresses import same_address
from engine.core.db import transaction
from engine.core.enums import OutcomeState
from engine.core.models import EmailInteraction, ResolutionOutcome, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.timeline import record_event
from engine.intake.reply_classifier import ReplyVerdict, reply_text
from engine.outcomes.outcomes import UNCLEAR_REPLY
from engine.trust.guards import fence, injection_reasons, redact_personal_data

log = logging.getLogger(__name__)
READ_PER_RUN = 50
READ_BY_LLM = "llm"
"""`answered_via` once the model has read the reply."""
SCREENED = "screened"
"""`answered_via` of a reply the guards kept from the model: a person reads it, nothing is retried."""
VERDICTS: tuple[str, ...] = get_args(ReplyVerdict)
READINGS = {
    "solved": "The customer's reply reads as solved (LLM): the resolution counts as confirmed",
    "unsolved": "The customer's reply reads as not solved (LLM): the resolution counts as re-opened",
    "unclear": "The customer's reply is unclear to the LLM too: a person reads it",
}


@dataclass(frozen=True)
class UnclearReply:
    outcome_id: int
    ticket_id: int
    reference: str
    text: str


@dataclass
class ReplyReadingReport:
    solved: int = 0
    unsolved: int = 0
    unclear: int = 0
    screened: int = 0
    failed: int = 0
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, int]:
        return {name: value for name, value in self.__dict__.items() if name != "problem"}


def parse_verdict(answer: str) -> ReplyVerdict:
    """The model's one word, bare or as {"verdict": "..."}; anything else is `unclear`."""
    text = answer.strip()
    if (word := text.lower().rstrip(".")) in VERDICTS:
        return word  # type: ignore[return-value]
    try:
        value = json.loads(text)
    except ValueError:
        return "unclear"
    if isinstance(value, dict) and list(value) == ["verdict"] and str(value["verdict"]).lower() in VERDICTS:
        return str(value["verdict"]).lower()  # type: ignore[return-value]
    return "unclear"


def unclear_replies(session: Session, limit: int = READ_PER_RUN) -> list[UnclearReply]:
    """Resolutions answered by a reply the rules could not read, oldest first, with the requester's own words (a
    participant's later reply is not the verdict)."""
    found = []
    for outcome, ticket in session.execute(
        select(ResolutionOutcome, Ticket)
        .join(Ticket, Ticket.id == ResolutionOutcome.ticket_id)
        .where(ResolutionOutcome.answered_via == UNCLEAR_REPLY)
        .order_by(ResolutionOutcome.id)
        .limit(limit)
    ):
        replies = session.execute(
            select(EmailInteraction.from_address, EmailInteraction.body)
            .where(
                EmailInteraction.ticket_id == outcome.ticket_id,
                EmailInteraction.direction == "inbound",
                EmailInteraction.email_type == "reply",
                EmailInteraction.received_at <= outcome.answered_at,
            )
            .order_by(EmailInteraction.id.desc())
        ).all()
        body = next((body for sender, body in replies if same_address(sender, ticket.email)), None)
        found.append(UnclearReply(outcome.id, outcome.ticket_id, ticket.reference, reply_text(body or "")))
    return found


def ask_model(model: BaseChatModel, settings: Settings, text: str) -> ReplyVerdict:
    """One call, counted against the shared token budget; the customer's words go in fenced, as data."""
    if settings.LLM_REDACT_PII:
        text = redact_personal_data(text)
    usage = UsageRecorder(token_budget(settings), settings.LLM_MAX_OUTPUT_TOKENS)
    answer = (REPLY_PROMPT | model).invoke({"reply": fence(text)}, {"callbacks": [usage], "tags": ["reply-reading"]})
    return parse_verdict(str(answer.content))


def record_reading(session: Session, reply: UnclearReply, verdict: ReplyVerdict, via: str, title: str) -> bool:
    """The reading on the timeline and, for solved or unsolved, as the outcome's verdict; False when another
    process recorded this reply first (nothing changes)."""
    claimed = session.execute(
        update(ResolutionOutcome)
        .where(ResolutionOutcome.id == reply.outcome_id, ResolutionOutcome.answered_via == UNCLEAR_REPLY)
        .values(answered_via=via)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        return False
    outcome = session.get(ResolutionOutcome, reply.outcome_id)
    ticket = session.get(Ticket, reply.ticket_id)
    if outcome is not None and via == READ_BY_LLM and verdict != "unclear":
        outcome.answer = "yes" if verdict == "solved" else "no"
        outcome.state = OutcomeState.CONFIRMED if verdict == "solved" else OutcomeState.REOPENED
        outcome.state_changed_at = utcnow()
    if ticket is not None:
        record_event(session, ticket, "reply_read", title, outcome_id=reply.outcome_id, verdict=verdict, via=via)
    return True


def read_unclear_replies(
    factory: sessionmaker[Session], settings: Settings, chat_model: BaseChatModel | None = None
) -> ReplyReadingReport:
    """The job: screen each unclear reply, ask the model about the rest, record each reading once.

    The model is built only when there is something to read; after a failed call the run stops and the rest
    wait for the next one. Logs name the ticket and the error type, never the customer's text."""
    report = ReplyReadingReport()
    with factory() as session:
        pending = unclear_replies(session)
    if not pending:
        return report
    model = chat_model if chat_model is not None else build_chat_model(settings)
    for index, reply in enumerate(pending):
        if injection_reasons(reply.text):
            verdict, via = "unclear", SCREENED
            title = "The customer's reply was not given to the LLM: it reads like instructions to an AI"
        else:
            try:
                verdict = ask_model(model, settings, reply.text) if reply.text else "unclear"
            except Exception as error:  # the model being down or broken must not stop the engine
                log.warning("could not read the reply on %s: %s", reply.reference, type(error).__name__)
                report.failed = len(pending) - index
                report.problem = f"the LLM could not read a reply on {reply.reference} ({type(error).__name__})"
                break
            via, title = READ_BY_LLM, READINGS[verdict]
        with transaction(factory) as session:
            if record_reading(session, reply, verdict, via, title):
                counted = "screened" if via == SCREENED else verdict
                setattr(report, counted, getattr(report, counted) + 1)
    return report
