"""What the engine reads from tickets and the desk for the knowledge base's confidence model (kb/confidence.py):
the question a ticket asks, and the operators' verdicts on drafts, which the model learns from as they accumulate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine.core.enums import ActionKind, ActionState
from engine.core.models import Action, Analysis, Ticket
from engine.core.settings import Settings
from engine.outcomes.learned import LEARNED, TrackRecord
from engine.outcomes.teaching import TICKET_KIND
from engine.trust.decision import Reading
from engine.trust.requests import (
    LANGUAGE_NAMES,
    Request,
    asks,
    language_of,
    requests_of,
    seeks_information,
    units,
)
from kb.confidence import FILLER, Verdict, answerability, question_terms
from kb.embed import Embedder, get_embedder
from kb.keyword import tokenize
from kb.self_test import AnsweredQuestion

log = logging.getLogger(__name__)

MIN_FOCUS_TERMS = 3


def question_focus(text: str) -> str:
    """What the ticket asks, as the self-test's pseudo-questions ask it: its first line (the subject), and the
    sentences that ask or request something, each with the sentence before it when it says too little alone
    ("Is there a way around this?"). Greetings, sign-offs and the story around the question are left out,
    so a long, friendly ticket is not judged less answerable than a terse one. Without an asking sentence,
    the first line and the first sentence after it."""
    sentences = units(text)
    if len(sentences) <= 2:
        return "\n".join(sentences)
    kept = {0}
    for index in range(1, len(sentences)):
        if asks(sentences[index]):
            kept.add(index)
            if says_too_little(sentences[index]):
                kept.add(index - 1)
    if kept == {0}:
        kept.add(1)
    return "\n".join(sentences[index] for index in sorted(kept))  # a line each: the next one's first word is no name


def says_too_little(sentence: str) -> bool:
    """Fewer than MIN_FOCUS_TERMS content terms ("Is there a way around this?"): the sentence before says what."""
    return len(set(tokenize(sentence)) - FILLER) < MIN_FOCUS_TERMS


def request_answered(request: Request, passage: str) -> bool:
    """Whether `passage` names what one request of a ticket asks (kb/confidence.py's answerability: its content and
    key terms covered), judged with the sentence before when the request says too little alone. A request left
    with no content term ("Can you help?") asks nothing of its own."""
    question = request_question(request)
    terms, _ = question_terms(question)
    return not terms or answerability(question, passage).passes


def request_question(request: Request) -> str:
    """The request as a question on its own: with the sentence before when it says too little alone."""
    return f"{request.context} {request.text}" if says_too_little(request.text) else request.text


@dataclass(frozen=True)
class RequestCoverage:
    """Whether the cited passages answer a request. Every request is answered by a passage that names what it asks
    (`request_answered`); one that asks the desk to do something only so. A question that seeks information
    (engine/trust/requests.py's `seeks_information`) may also be answered in other words, by meaning and as the best
    answer found: its embedding is at least REQUEST_SIMILARITY_FLOOR similar to a cited passage and no other passage
    found is closer ("Where do I generate an API token?" by the article on API keys)."""

    embedder: Embedder | None
    floor: float

    def __call__(self, request: Request, cited: Sequence[str], others: Sequence[str]) -> bool:
        if request_answered(request, "\n".join(cited)):
            return True
        if self.embedder is None or not seeks_information(request):
            return False
        try:
            similarity = similarities(self.embedder, request_question(request), [*cited, *others])
        except Exception:  # an embedder that fails leaves the words to judge
            log.exception("request coverage by meaning failed; judged by its words alone")
            return False
        best_cited = max(similarity[: len(cited)])
        closer_elsewhere = any(value > best_cited for value in similarity[len(cited) :])
        return best_cited >= self.floor and not closer_elsewhere


def similarities(embedder: Embedder, question: str, passages: Sequence[str]) -> list[float]:
    """The cosine similarity of the question to each passage, by the knowledge base's embedder."""
    query = embedder.embed_queries([question])[0]
    vectors = embedder.embed_documents(list(passages))
    norms = np.linalg.norm(vectors, axis=1) * (np.linalg.norm(query) or 1.0)
    return [float(value) for value in (vectors @ query) / np.where(norms == 0, 1.0, norms)]


def answers(question: str, passage: str) -> bool:
    """Whether `passage` answers the question (answerability), or all of it but the requests it leaves open: a
    draft worth preparing, which the decision path holds with each open request quoted (engine/trust/decision.py)."""
    if answerability(question, passage).passes:
        return True
    rest = question
    for request in requests_of(question, LANGUAGE_NAMES):
        if not request_answered(request, passage):
            rest = rest.replace(request.text, " ")
    return rest != question and bool(rest.strip()) and answerability(rest, passage).passes


def desk_reading(languages: frozenset[str] | None, evidence: Sequence[dict[str, Any]], settings: Settings) -> Reading:
    """What the decision path needs to tell whether a draft answers everything the ticket asks: the knowledge base's
    languages (kb/ledger.py's `knowledge_languages`; without them, the languages of the passages found) and the
    coverage test, by the knowledge base's own embedder (none without evidence: nothing to compare)."""
    if languages is None:
        languages = frozenset(filter(None, (language_of(str(item.get("text", ""))) for item in evidence)))
    embedder = get_embedder(settings) if evidence else None
    return Reading(languages=languages, covers=RequestCoverage(embedder, settings.REQUEST_SIMILARITY_FLOOR))


def _judged_drafts() -> Select[Any]:
    """Proposed resolutions a person decided: sent (as drafted or edited), rejected, or voided by their override."""
    return select(Action).where(
        Action.kind == ActionKind.PROPOSE_RESOLUTION.value,
        Action.state.in_([ActionState.EXECUTED.value, ActionState.REJECTED.value, ActionState.VOIDED.value]),
        Action.decided_by.is_not(None),
        Action.decided_by != "engine",
    )


def judged_drafts(session: Session) -> int:
    """How many drafts people have decided, all of them: the calibrate job's cheap test for new verdicts."""
    return session.scalar(select(func.count()).select_from(_judged_drafts().subquery())) or 0


def operator_verdicts(session: Session, limit: int = 2000) -> list[Verdict]:
    """(question, evidence, label) from the newest `limit` proposed resolutions a person decided: approved as
    drafted is 1, edited, rejected or overridden (the person decided otherwise, engine/operators/actions.py) is 0.
    Engine-sent drafts teach nothing about the model's own errors and are skipped, and so are drafts that gave a
    learned answer (engine/outcomes/learned.py keeps their record)."""
    rows = session.execute(
        _judged_drafts()
        .add_columns(Analysis, Ticket)
        .join(Analysis, Analysis.id == Action.analysis_id)
        .join(Ticket, Ticket.id == Action.ticket_id)
        .order_by(Action.id.desc())
        .limit(limit)
    ).all()
    verdicts = []
    for action, analysis, ticket in rows:
        if not analysis.evidence or analysis.evidence[0].get("source_kind") == LEARNED:
            continue  # a verdict on a learned answer is that answer's track record, not the retrievers' label
        question = question_focus(f"{ticket.subject}\n{ticket.description[:1500]}")  # as the analyser judged it
        verdicts.append((question, list(analysis.evidence), int(approved_as_drafted(action))))
    return verdicts


def approved_as_drafted(action: Action) -> bool:
    """A person sent the draft as the engine wrote it: executed, never edited."""
    return action.state == ActionState.EXECUTED.value and "edited_by" not in (action.policy or {})


def learned_confidence(similarity: float, record: TrackRecord, settings: Settings) -> float:
    """How sure a learned answer is to answer a new question: its track record (engine/outcomes/learned.py's
    `reliability`), from 70 % of it for a question at LEARNED_MATCH_MIN_SIMILARITY to all of it for a close
    paraphrase (LEARNED_FULL_SIMILARITY; both on the fused match score of engine/analysers/learned_match.py).
    A well-proven answer to a close paraphrase is confident; a contested one is not, however close the question."""
    low, full = settings.LEARNED_MATCH_MIN_SIMILARITY, settings.LEARNED_FULL_SIMILARITY
    closeness = min(1.0, max(0.0, (similarity - low) / max(full - low, 1e-6)))
    return round(record.reliability * (0.7 + 0.3 * closeness), 3)


def answered_questions(session: Session, limit: int = 2000) -> list[AnsweredQuestion]:
    """What customers asked and where a person's answer was found, for the knowledge base's self-test: each
    resolution a person sent (approved, edited or written) binds the ticket's question to the ticket itself (its
    resolution is in the knowledge base, engine/outcomes/teaching.py), and one approved as drafted also to the
    passage its draft cited first. Engine-sent answers teach nothing: nobody approved them."""
    rows = session.execute(
        select(Action, Analysis, Ticket)
        .outerjoin(Analysis, Analysis.id == Action.analysis_id)
        .join(Ticket, Ticket.id == Action.ticket_id)
        .where(
            Action.kind == ActionKind.PROPOSE_RESOLUTION.value,
            Action.state == ActionState.EXECUTED.value,
            Action.decided_by.is_not(None),
            Action.decided_by != "engine",
        )
        .order_by(Action.id.desc())
        .limit(limit)
    ).all()
    pairs = []
    for action, analysis, ticket in rows:
        question = question_focus(f"{ticket.subject}\n{ticket.description[:1500]}")
        pairs.append(AnsweredQuestion(question, (TICKET_KIND, ticket.id)))
        cited = analysis.evidence[0] if analysis and analysis.evidence else {}
        if approved_as_drafted(action) and "source_kind" in cited:
            pairs.append(AnsweredQuestion(question, (str(cited["source_kind"]), int(cited["source_id"]))))
    return pairs
