"""The analyser for LLM_PROVIDER=none: decisions from retrieval evidence and rules, no generated text.

It proposes the resolution written in the best-matching KB passage or resolved ticket when the evidence
is strong, or the learned answer a person gave to the same question asked in other words when its track record
and the paraphrase's closeness make it the surer answer (engine/analysers/learned_match.py); it asks
category-specific questions when the report lacks what a person would need, and otherwise hands the ticket to a
person. Its confidence is a probability fitted on this desk's knowledge base (kb/confidence.py), and a resolution
also needs the passage to cover the question's key terms.
Operators see that a draft was assembled from the knowledge base without an AI model (the customer gets
the answer, not our internals).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.confidence import answers, desk_reading, learned_confidence, question_focus
from engine.analysers.details import information_gaps, needed_details
from engine.analysers.escalation import Assessment, assess, rule_criteria
from engine.analysers.learned_match import LearnedIndex, LearnedMatch, learned_answer_for
from engine.core.analysis import RETRIEVAL_ANALYSER, AnalysisResult, TicketSnapshot
from engine.core.desk_policy import DeskPolicy, current_policy
from engine.core.settings import Settings
from engine.core.templates import request_info_email, resolution_email, summary_of
from engine.outcomes.learned import TICKET_KIND, TrackRecord, item_records, subject_of
from engine.outcomes.outcome_calibration import AdjustmentCache, adjusted, record_adjusted
from engine.trust.decision import conclude, hand_over, screen_ticket
from kb.calibration import stored_calibration
from kb.confidence import DEFAULT_MODEL, ConfidenceModel, evidence_features, question_terms
from kb.ledger import knowledge_base_empty, knowledge_languages, section_text
from kb.search import deterministic_queries, search
from kb.titles import heading_line

log = logging.getLogger(__name__)
NAME = RETRIEVAL_ANALYSER
NUMBERED = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+(.+)$")
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
MAX_STEPS = 8
VAGUE_GAPS = 3
VAGUE_TERMS = 6
"""A report that names fewer than six things (content terms) and lacks three of the details its kind needs (all of
them when it needs fewer: "Invoice wrong") is asked about, never answered: whichever article matches its few words,
sending it would be a guess. Counted in terms, not words: "router shows a red blinking light since this morning, no
internet in the whole house" is short but says what is wrong."""
ASK_GAPS = 2
"""A request for information goes out when two details are missing (the only one, when the kind needs one)."""
MAX_SENTENCES = 4
TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-{3,}:?\s*\|)+(?:\s*:?-{3,}:?\s*)?\|?\s*$")
CELL_BORDER = re.compile(r"(?<!\\)\|")
HEADING = re.compile(r"^\s{0,3}#{1,6}\s")
MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
MARKDOWN_MARKS = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|`")
WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
FIRST_USE_SUCCESSES = 2
"""Approvals and confirmations a person's answer needs before it may go out on its own for another question: the one
its teaching counted, and one more for a reuse."""
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "the and for you your our are can how what when where which with this that have has not from into does why "
        "who was were will would should could there their them they then than also any all but its",
    )
)


class RetrievalAnalyser:
    """Evidence in, decision out; thresholds are the evaluated operating point (see `python -m engine.evaluate`)."""

    name = NAME

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        self.factory = factory
        self.settings = settings
        self.adjustments = AdjustmentCache()
        self.learned_questions = LearnedIndex()

    def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
        began = time.perf_counter()
        with self.factory() as session:
            policy = policy or current_policy(session, self.settings)
            evidence, kb_error = self._evidence(session, ticket)
            model = desk_confidence_model(session)
            adjustments = self.adjustments.get(session)
            languages = knowledge_languages(session)
            records = item_records(session, evidence[:1])
        learned = learned_answer_for(self.factory, self.settings, self.learned_questions, focus_of(ticket), ticket.id)
        result = decide(
            ticket,
            evidence,
            policy,
            self.settings,
            kb_error=kb_error,
            confidence_model=model,
            adjustments=adjustments,
            kb_languages=languages,
            learned=learned,
            records=records,
        )
        return _with_latency(result, began)

    def _evidence(self, session: Session, ticket: TicketSnapshot) -> tuple[list[dict[str, Any]], str | None]:
        """Cited evidence for the ticket; an empty knowledge base is answered without loading any model."""
        if knowledge_base_empty(session):
            return [], None
        question, focus = query_of(ticket), focus_of(ticket)
        phrasings = deterministic_queries(question)
        phrasings += [focus] if focus.lower() not in {phrase.lower() for phrase in phrasings} else []
        try:
            found = search(session, self.settings, question, k=5, queries=phrasings)
        except Exception as error:  # the knowledge base being down must not stop the desk
            log.exception("knowledge base search failed", extra={"ticket": ticket.reference})
            return [], f"knowledge base unavailable: {type(error).__name__}: {error}"
        evidence = [item.model_dump() for item in found if item.source_id != ticket.id or item.source_kind != "ticket"]
        if evidence:
            top = evidence[0]
            passage = section_text(session, top["source_kind"], top["source_id"], top["location_data"])
            top["passage"] = passage if passage != top["text"] else None
        return evidence, None


def desk_confidence_model(session: Session) -> ConfidenceModel:
    """The confidence model this knowledge base fitted for itself, or the cautious default before it has."""
    calibration = stored_calibration(session)
    return ConfidenceModel.from_record(calibration.confidence if calibration else None)


def query_of(ticket: TicketSnapshot) -> str:
    """What to search for: the latest reply carries the newest facts, the subject and body the problem."""
    return " ".join(_query_parts(ticket))


def focus_of(ticket: TicketSnapshot) -> str:
    """What the ticket asks (engine.analysers.confidence.question_focus): searched beside the whole text, and what the
    confidence and the answerability check judge the passage against."""
    return question_focus("\n".join(_query_parts(ticket)))


def _query_parts(ticket: TicketSnapshot) -> list[str]:
    latest = ticket.replies[-1] if ticket.replies else ""
    return [part for part in (ticket.subject, ticket.description[:1500], latest[:800]) if part]


def retrieval_confidence(
    evidence: list[dict[str, Any]], question: str = "", model: ConfidenceModel = DEFAULT_MODEL
) -> float:
    """Probability that the top passage answers the ticket, by this desk's fitted model
    (kb/confidence.py)."""
    if not evidence:
        return 0.0
    return round(model.probability(evidence_features(question, evidence)), 3)


def plain_text(line: str) -> str:
    """A line of an article as a customer reads it: no markdown emphasis, code ticks or link syntax."""
    line = MARKDOWN_LINK.sub(lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})", line)
    return " ".join(MARKDOWN_MARKS.sub("", line).split())


def _terms(text: str) -> set[str]:
    return {word for word in WORD.findall(text.lower()) if word not in STOPWORDS}


def resolution_steps(text: str, question: str = "") -> list[str]:
    """What the passage says to do, in the article's order: its list items and table rows (each row one line, its
    cells in order), or else its sentences that answer the question. A heading is never a step: a passage that is
    only its heading has none.

    The customer's words only choose among the article's items (when there are too many) or sentences.
    """
    lines = [line for line in text.splitlines() if line.strip() and not HEADING.match(line)]
    if len(lines) > 1 and not NUMBERED.match(lines[0]) and not TABLE_ROW.match(lines[0]) and heading_line(lines[0]):
        lines = lines[1:]  # a chunk starts with its section's heading, which is no step
    elif len(lines) == 1 and heading_line(lines[0]):
        return []
    items = _items(lines)
    if len(items) >= 2:
        return _relevant(items, question, MAX_STEPS, keep_all=len(items) <= MAX_STEPS)
    prose = [line for line in lines if "|" not in line]
    sentences = [
        plain_text(part) for part in SENTENCE.split(" ".join(" ".join(prose).split())) if len(part.strip()) > 3
    ]
    return _relevant(sentences, question, MAX_SENTENCES, keep_all=False) or items


def _items(lines: list[str]) -> list[str]:
    """List items and table rows, in order; a table's header row stays, as the line that says what its columns
    hold ("Plan: Requests per minute" above "Team: 120")."""
    items: list[str] = []
    for line in lines:
        if TABLE_RULE.match(line):
            continue
        if TABLE_ROW.match(line):
            if row := table_row(line):
                items.append(row)
        elif match := NUMBERED.match(line):
            items.append(plain_text(match.group(1)))
    return items


def table_row(line: str) -> str:
    """A table row as a line of plain text, its cells in the article's order: "Name ID format: EmailAddress",
    "404 not_found: Wrong ID, or using /v1 paths; Use /v2". Only punctuation joins the cells, so every word
    stays where the article put it (the final check of a message, engine/trust/provenance.py, reads words in order)."""
    cells = [plain_text(cell.replace("\\|", "|")) for cell in CELL_BORDER.split(line.strip().strip("|"))]
    cells = [cell for cell in cells if cell]
    return f"{cells[0]}: {'; '.join(cells[1:])}" if len(cells) > 1 else "".join(cells)


def _relevant(parts: list[str], question: str, limit: int, *, keep_all: bool) -> list[str]:
    """Up to `limit` of the parts, in order: all of them when they fit and `keep_all`, else those that share terms
    with the question, or the first ones when none does."""
    if keep_all:
        return parts
    wanted = _terms(question)
    relevant = [index for index, part in enumerate(parts) if _terms(part) & wanted]
    chosen = relevant[:limit] if relevant else list(range(min(limit, len(parts))))
    return [parts[index] for index in sorted(chosen)]


def citation(item: dict[str, Any]) -> str:
    """The source by its title, then where in it: "Title (section Inviting by e-mail)". A section path that starts
    with the title (a document's own heading) is not said twice."""
    title = str(item["title"])
    location = str(item.get("location") or "").replace(f"section {title} > ", "section ", 1)
    location = re.sub(rf"(^|, )section {re.escape(title)}$", "", location)
    return f"{title} ({location})" if location else title


def decide(
    ticket: TicketSnapshot,
    evidence: list[dict[str, Any]],
    policy: DeskPolicy,
    settings: Settings,
    *,
    kb_error: str | None = None,
    confidence_model: ConfidenceModel = DEFAULT_MODEL,
    adjustments: Mapping[str, float] | None = None,
    kb_languages: frozenset[str] | None = None,
    learned: LearnedMatch | None = None,
    records: Mapping[str, TrackRecord] | None = None,
) -> AnalysisResult:
    """Guards first, then escalation rules, then the evidence: resolve, ask, or hand to a person.

    `adjustments` are the per-category logit offsets customers' verdicts earned
    (engine/outcomes/outcome_calibration.py); `kb_languages` the languages the knowledge base is written in
    (None: those of the evidence); `learned` the closest learned answer (engine/analysers/learned_match.py);
    `records` the track records of the passages found (engine/outcomes/learned.py)."""
    result = _decide(
        ticket,
        evidence,
        policy,
        settings,
        kb_error=kb_error,
        confidence_model=confidence_model,
        adjustments=adjustments,
        learned=learned,
        records=records or {},
    )
    return conclude(ticket, result, policy, settings, desk_reading(kb_languages, evidence, settings))


def _decide(
    ticket: TicketSnapshot,
    evidence: list[dict[str, Any]],
    policy: DeskPolicy,
    settings: Settings,
    *,
    kb_error: str | None,
    confidence_model: ConfidenceModel,
    adjustments: Mapping[str, float] | None,
    learned: LearnedMatch | None,
    records: Mapping[str, TrackRecord],
) -> AnalysisResult:
    assessment = assess(ticket, rule_criteria(ticket), policy)
    question = focus_of(ticket)
    top_record = records.get(subject_of(evidence[0])) if evidence else None
    confidence, adjustment = adjusted(
        record_adjusted(retrieval_confidence(evidence, question, confidence_model), top_record),
        ticket.category,
        adjustments,
    )
    gaps, questions = information_gaps(ticket)
    screening = screen_ticket(ticket)
    common: dict[str, Any] = {
        "confidence": confidence,
        "evidence": evidence,
        "information_gaps": gaps,
        "follow_up_questions": questions,
        "escalation": escalation_record(assessment),
        "team": assessment.team or ticket.team,
        "error": kb_error,
        "confidence_adjustment": adjustment,
    }
    if screening.attacks:
        return hand_over(NAME, screening, common)
    if assessment.escalate:
        return AnalysisResult(analyser=NAME, decision="escalate", reason="; ".join(assessment.reasons), **common)
    steps = resolution_steps(evidence[0].get("passage") or evidence[0]["text"], query_of(ticket)) if evidence else []
    answerable = bool(steps) and answers(question, f"{evidence[0]['title']}\n{evidence[0]['text']}")
    needed = len(needed_details(ticket.category))
    vague = is_vague(ticket, gaps)
    surer = learned_confidence(learned.similarity, learned.record, settings) if learned else 0.0
    if learned and not vague and surer >= settings.RESOLVE_MIN_CONFIDENCE and (surer >= confidence or not answerable):
        return _propose_learned(ticket, learned, policy, settings, {**common, "confidence": surer})
    if answerable and confidence >= settings.RESOLVE_MIN_CONFIDENCE and not vague:
        held = held_answer(top_record, settings, persons_answer=evidence[0].get("source_kind") == TICKET_KIND)
        return _propose_resolution(ticket, evidence[0], steps, policy, settings, {**common, "guards": held})
    if gaps and len(gaps) >= min(ASK_GAPS, needed):
        subject, body = request_info_email(
            ticket.reference,
            ticket.requester_name,
            summary_of(ticket.subject, quote_customer=policy.quote_customer_summary),
            questions,
            settings.SUPPORT_SIGNATURE,
            policy.templates,
        )
        return AnalysisResult(
            analyser=NAME,
            decision="ask",
            reason=f"missing: {', '.join(gaps)}",
            draft_subject=subject,
            draft_body=body,
            **common,
        )
    reason = kb_error or (
        f"no strong evidence (confidence {confidence:.2f}{'' if answerable else _unanswerable(steps)})"
        if evidence
        else "no evidence found"
    )
    return AnalysisResult(analyser=NAME, decision="escalate", reason=reason, **common)


def is_vague(ticket: TicketSnapshot, gaps: list[str]) -> bool:
    """Too little to tell which article applies (VAGUE_TERMS): asked about, never answered."""
    needed = len(needed_details(ticket.category))
    return len(gaps) >= min(VAGUE_GAPS, needed) > 0 and len(question_terms(ticket.text)[0]) < VAGUE_TERMS


def _unanswerable(steps: list[str]) -> str:
    return ", the passage misses key terms" if steps else ", the best passage is a heading without content"


def _propose_resolution(
    ticket: TicketSnapshot,
    top: dict[str, Any],
    steps: list[str],
    policy: DeskPolicy,
    settings: Settings,
    common: dict[str, Any],
) -> AnalysisResult:
    subject, body = resolution_email(
        ticket.reference,
        ticket.requester_name,
        summary_of(ticket.subject, quote_customer=policy.quote_customer_summary),
        steps,
        [citation(top)],
        settings.SUPPORT_SIGNATURE,
        policy.templates,
    )
    cited = {**common, "evidence": [{**item, "cited": index == 0} for index, item in enumerate(common["evidence"])]}
    return AnalysisResult(
        analyser=NAME,
        decision="resolve",
        reason=f"matches {citation(top)}",
        resolution_steps=steps,
        summary=f"Proposed the steps of {citation(top)}",
        draft_subject=subject,
        draft_body=body,
        **cited,
    )


def held_answer(record: TrackRecord | None, settings: Settings, *, persons_answer: bool = False) -> list[str]:
    """What holds a draft's answer for a person whatever its confidence: an answer customers re-opened
    LEARNED_REOPENS_TO_HOLD times since a lead looked at it, and a person's earlier answer (a learned answer or a
    resolved ticket's passage) given to another question for the first time: until a person approved or a customer
    confirmed it once more (FIRST_USE_SUCCESSES in all, its teaching counted), a match is a draft."""
    held = []
    if persons_answer and (record is None or record.approved + record.confirmed < FIRST_USE_SUCCESSES):
        held.append("a person's earlier answer, given to another question for the first time: a person approves it")
    if record is not None and record.held(settings.LEARNED_REOPENS_TO_HOLD):
        held.append(f"this answer was re-opened {record.reopened_since_review}× by customers: a lead looks at it first")
    return held


def learned_steps(answer: str) -> list[str]:
    """A learned answer as the resolution's steps: its numbered steps, or else its lines, as the person wrote them."""
    lines = [plain_text(line) for line in answer.splitlines() if line.strip()]
    numbered = [plain_text(match.group(1)) for line in answer.splitlines() if (match := NUMBERED.match(line))]
    return numbered if len(numbered) >= 2 else lines


def _propose_learned(
    ticket: TicketSnapshot, learned: LearnedMatch, policy: DeskPolicy, settings: Settings, common: dict[str, Any]
) -> AnalysisResult:
    """The answer a person gave to this question in other words, cited as a learned answer; the other passages found
    stay beside it, uncited, for the coverage test and the operators."""
    item = learned.evidence()
    steps = learned_steps(learned.answer.answer)
    subject, body = resolution_email(
        ticket.reference,
        ticket.requester_name,
        summary_of(ticket.subject, quote_customer=policy.quote_customer_summary),
        steps,
        [item["title"]],
        settings.SUPPORT_SIGNATURE,
        policy.templates,
    )
    evidence = [item, *[{**other, "cited": False} for other in common["evidence"]]]
    record = learned.record
    return AnalysisResult(
        analyser=NAME,
        decision="resolve",
        reason=(
            f"a learned answer fits (question {learned.similarity:.2f} similar; approved {record.approved}×, "
            f"confirmed {record.confirmed}×, re-opened {record.reopened}×)"
        ),
        resolution_steps=steps,
        summary="Proposed an answer our team gave to the same question before",
        draft_subject=subject,
        draft_body=body,
        **{**common, "evidence": evidence, "guards": held_answer(record, settings, persons_answer=True)},
    )


def escalation_record(assessment: Assessment) -> dict[str, Any]:
    record = asdict(assessment)
    record["criteria"] = assessment.criteria.model_dump()
    return record


def _with_latency(result: AnalysisResult, began: float) -> AnalysisResult:
    return replace(result, latency_ms=round((time.perf_counter() - began) * 1000))
