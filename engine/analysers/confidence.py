"""What the engine reads from tickets and the desk for the knowledge base's confidence model (kb/confidence.py):
the question a ticket asks, and the operators' verdicts on drafts, which the model learns from as they accumulate.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.enums import ActionKind, ActionState
from engine.core.models import Action, Analysis, Ticket
from kb.confidence import FILLER, Verdict
from kb.keyword import tokenize

FOCUS_UNIT = re.compile(r"(?<=[.!?])\s+|\n+")
ASKING = re.compile(
    r"\?|^(?:how|what|where|why|which|when|who|can|could|is|are|do|does|did|should|would|will|may|any)\b"
    r"|\b(?:i need|i want|i'?d like|i would like|please|pls|looking for|trying to|want to|how to|how do)\b",
    re.IGNORECASE,
)
SALUTATION = re.compile(
    r"^(?:hi|hello|hey|dear|good (?:morning|afternoon)|thanks?|thank you|many thanks|regards|best|cheers|kind regards"
    r"|br|sent from)\b[^.!?]{0,30}[.!?]?$",
    re.IGNORECASE,
)
MIN_FOCUS_TERMS = 3


def question_focus(text: str) -> str:
    """What the ticket asks, as the self-test's pseudo-questions ask it: its first line (the subject), and the
    sentences that ask or request something, each with the sentence before it when it says too little alone
    ("Is there a way around this?"). Greetings, sign-offs and the story around the question are left out,
    so a long, friendly ticket is not judged less answerable than a terse one. Without an asking sentence,
    the first line and the first sentence after it."""
    units = [unit.strip() for unit in FOCUS_UNIT.split(text) if unit.strip()]
    units = [unit for unit in units if not SALUTATION.match(unit)]
    if len(units) <= 2:
        return " ".join(units)
    kept = {0}
    for index in range(1, len(units)):
        if ASKING.search(units[index]):
            kept.add(index)
            if len(set(tokenize(units[index])) - FILLER) < MIN_FOCUS_TERMS:
                kept.add(index - 1)
    if kept == {0}:
        kept.add(1)
    return " ".join(units[index] for index in sorted(kept))


def operator_verdicts(session: Session, limit: int = 2000) -> list[Verdict]:
    """(question, evidence, label) from proposed resolutions a person decided: approved as drafted is 1,
    edited or rejected is 0. Engine-sent drafts teach nothing about the model's own errors and are skipped."""
    rows = session.execute(
        select(Action, Analysis, Ticket)
        .join(Analysis, Analysis.id == Action.analysis_id)
        .join(Ticket, Ticket.id == Action.ticket_id)
        .where(
            Action.kind == ActionKind.PROPOSE_RESOLUTION.value,
            Action.state.in_([ActionState.EXECUTED.value, ActionState.REJECTED.value]),
            Action.decided_by.is_not(None),
            Action.decided_by != "engine",
        )
        .order_by(Action.id.desc())
        .limit(limit)
    ).all()
    verdicts = []
    for action, analysis, ticket in rows:
        if not analysis.evidence:
            continue
        approved = action.state == ActionState.EXECUTED.value and "edited_by" not in (action.policy or {})
        verdicts.append((f"{ticket.subject} {ticket.description[:1500]}", list(analysis.evidence), int(approved)))
    return verdicts
