"""Answers the desk learned from its people, and the track record of every answer it gives.

A person's approved, edited-and-sent or written answer (and an automatic answer its requester confirmed) becomes a
learned answer bound to the questions it answered. Its text is operator text only (greeting, signature and lines
quoting the customer cut, `resolution_text`); one that still names the original
customer's particulars waits for a lead to mark it general. The questions are the customer's words: matched
against (engine/analysers/learned_match.py), shown to operators, never sent.

Every answer, learned or a knowledge-base section, keeps a track record per category: approved as-is, edited,
rejected, confirmed, assumed, re-opened. The confidence reads it, and an answer customers re-opened
LEARNED_REOPENS_TO_HOLD times since a lead last looked is no longer sent on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.enums import ActionKind
from engine.core.models import (
    Action,
    Analysis,
    AnswerRecord,
    AnswerReview,
    LearnedAnswer,
    LearnedQuestion,
    ResolutionOutcome,
    Ticket,
    utcnow,
)
from engine.core.templates import SOURCES_LABEL
from engine.trust.decision import PERSON_ONLY

Verdict = Literal["approved", "edited", "rejected", "confirmed", "assumed", "reopened"]
VERDICTS: tuple[Verdict, ...] = ("approved", "edited", "rejected", "confirmed", "assumed", "reopened")
Origin = Literal["approved", "edited", "wrote", "confirmed"]
PERSON_ORIGINS = ("approved", "edited", "wrote")
LEARNED = "learned"
TICKET_KIND = "ticket"
"""A resolved ticket's passage in the knowledge base (engine/outcomes/teaching.py): its learned answer, indexed."""

GREETING = re.compile(
    r"^\s*(hello|hi|hey|dear|good (morning|afternoon|evening))\b[^\n]{0,60}[,!:.]?\s*$", re.IGNORECASE
)
SIGN_OFF = re.compile(
    r"^\s*(--\s*|[—–]\s*\S.{0,60}|(best|kind|warm|many)?\s*(regards|wishes|thanks)[,!.]?|thank you[,!.]?|cheers[,!.]?|"
    r"sincerely[,!.]?|yours( sincerely| truly)?[,!.]?)\s*$",
    re.IGNORECASE,
)
SIGNATURE_LINES = 6
"""A sign-off this close to the end starts the signature; further up it is part of the text."""

PARTICULARS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an e-mail address", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    ("a ticket number", re.compile(r"\b(?:TCKT|INC|REQ|CASE|SR)-?\d+\b|#\d{3,}\b", re.IGNORECASE)),
    (
        "an account or workspace id",
        re.compile(r"\b[a-z]{2,8}_[0-9A-Za-z]{4,}\b|\b(?=[A-Za-z-]*\d)(?=[\d-]*[A-Za-z])[A-Za-z0-9-]{10,}\b"),
    ),
    ("a phone number", re.compile(r"(?<![\w.])\+?\d[\d ().-]{7,}\d(?![\w.])")),
    (
        "a postal address",
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][\w'-]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Way"
            r"|Court|Ct|Place|Pl|Square|Sq)\b\.?|\b[A-Z][\w'-]+(?:straße|strasse|weg|gasse|platz)\s+\d{1,4}\b"
        ),
    ),
)


def particulars_in(text: str, names: Iterable[str] = ()) -> list[str]:
    """What in `text` is particular to one customer: each kind found once, with the requester's name if it
    appears (a greeting the cleaning did not catch, "as Anna asked")."""
    found = [kind for kind, pattern in PARTICULARS if pattern.search(text)]
    if _name_pattern(names).search(text):
        found.append("the customer's name")
    return found


def _name_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """The capitalised parts (3+ letters) of the requester's names as whole words; matches nothing without any."""
    parts = {part for name in names for part in re.split(r"[\s,]+", name or "") if len(part) >= 3 and part[0].isupper()}
    if not parts:
        return re.compile(r"(?!)")
    return re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, parts))) + r")\b")


def without_particulars(text: str, names: Iterable[str] = ()) -> str:
    """`text` with each particular replaced by its kind in brackets ("[an e-mail address]"): a customer's question
    as an article may show it, once a lead read it."""
    for kind, pattern in PARTICULARS:
        text = pattern.sub(f"[{kind}]", text)
    return _name_pattern(names).sub("[the customer's name]", text)


def subject_of(item: dict[str, Any]) -> str:
    """The track-record key of an evidence item: `learned:<id>`, or `<kind>:<source>:<location>` for a section."""
    if item.get("source_kind") == LEARNED:
        return f"{LEARNED}:{item['source_id']}"
    return f"{item.get('source_kind')}:{item.get('source_id')}:{item.get('location') or ''}"[:300]


def learned_subject(answer_id: int) -> str:
    return f"{LEARNED}:{answer_id}"


def record_subjects(session: Session, items: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each evidence item's key (`subject_of`) → the track record it answers to. A resolved ticket's passage holds that
    ticket's learned answer, so it answers to the learned answer's record: one record per answer whichever route
    found it, and an answer held after re-opens is held on both routes, not sent again as a passage."""
    tickets = {int(item["source_id"]) for item in items if item.get("source_kind") == TICKET_KIND}
    bound: dict[int, int] = {}
    if tickets:
        rows = session.execute(
            select(LearnedQuestion.ticket_id, LearnedQuestion.learned_answer_id)
            .where(LearnedQuestion.ticket_id.in_(tickets))
            .order_by(LearnedQuestion.id)
        )
        bound = {ticket_id: answer_id for ticket_id, answer_id in rows}  # the latest binding, as teaching indexes it
    subjects = {}
    for item in items:
        answer_id = bound.get(int(item["source_id"])) if item.get("source_kind") == TICKET_KIND else None
        subjects[subject_of(item)] = learned_subject(answer_id) if answer_id is not None else subject_of(item)
    return subjects


def item_records(session: Session, items: Sequence[dict[str, Any]]) -> dict[str, TrackRecord]:
    """Each evidence item's track record, keyed by the item's own `subject_of` (see `record_subjects`)."""
    subjects = record_subjects(session, items)
    records = track_records(session, list(dict.fromkeys(subjects.values())))
    return {key: records[subject] for key, subject in subjects.items()}


def cited_subjects(session: Session, action: Action) -> list[str]:
    """The answers a drafted action cited (none for a message a person wrote)."""
    if action.analysis_id is None:
        return []
    evidence = session.scalar(select(Analysis.evidence).where(Analysis.id == action.analysis_id)) or []
    return list(dict.fromkeys(record_subjects(session, [item for item in evidence if item.get("cited")]).values()))


def count(session: Session, subjects: Iterable[str], category: str | None, verdict: Verdict) -> None:
    """Add one `verdict` to each subject's record in `category`."""
    for subject in dict.fromkeys(subjects):
        record = session.scalar(
            select(AnswerRecord).where(AnswerRecord.subject == subject, AnswerRecord.category == (category or ""))
        )
        if record is None:
            record = AnswerRecord(subject=subject, category=category or "", **dict.fromkeys(VERDICTS, 0))
            session.add(record)
        setattr(record, verdict, getattr(record, verdict) + 1)
        record.updated_at = utcnow()
        session.flush()


@dataclass(frozen=True)
class TrackRecord:
    """What people and customers did with one answer, over every category (or one)."""

    subject: str
    approved: int = 0
    edited: int = 0
    rejected: int = 0
    confirmed: int = 0
    assumed: int = 0
    reopened: int = 0
    reopened_since_review: int = 0

    @property
    def successes(self) -> float:
        """Approved and confirmed count whole; assumed (silence) half: a customer who gave up is silent too."""
        return self.approved + self.confirmed + 0.5 * self.assumed

    @property
    def failures(self) -> float:
        """A re-open counts double: a customer came back because it did not help."""
        return self.edited + self.rejected + 2.0 * self.reopened

    @property
    def reliability(self) -> float:
        """The answer's success rate with one pseudo-case each way (Laplace): 2 approvals 0.75, 14 0.94."""
        return (self.successes + 1.0) / (self.successes + self.failures + 2.0)

    def held(self, reopens: int) -> bool:
        return self.reopened_since_review >= reopens

    def as_dict(self) -> dict[str, int]:
        return {verdict: getattr(self, verdict) for verdict in VERDICTS}


def track_records(session: Session, subjects: Sequence[str], category: str | None = None) -> dict[str, TrackRecord]:
    """Each subject's record summed over categories (or in `category` alone), with re-opens since a lead's review."""
    if not subjects:
        return {}
    query = select(AnswerRecord.subject, *[func.sum(getattr(AnswerRecord, v)) for v in VERDICTS]).where(
        AnswerRecord.subject.in_(list(subjects))
    )
    if category is not None:
        query = query.where(AnswerRecord.category == category)
    sums = {
        row[0]: [int(value or 0) for value in row[1:]] for row in session.execute(query.group_by(AnswerRecord.subject))
    }
    reviewed = dict(
        session.execute(
            select(AnswerReview.subject, AnswerReview.reopened_at_review).where(
                AnswerReview.subject.in_(list(subjects))
            )
        ).all()
    )
    records = {}
    for subject in subjects:
        values = dict(zip(VERDICTS, sums.get(subject, [0] * len(VERDICTS)), strict=True))
        records[subject] = TrackRecord(
            subject, **values, reopened_since_review=max(0, values["reopened"] - reviewed.get(subject, 0))
        )
    return records


def per_category(session: Session, subject: str) -> list[dict[str, Any]]:
    """One subject's record, category by category, for the Knowledge Base page."""
    rows = session.scalars(select(AnswerRecord).where(AnswerRecord.subject == subject).order_by(AnswerRecord.category))
    return [{"category": row.category, **{v: getattr(row, v) for v in VERDICTS}} for row in rows]


def review_answer(session: Session, subject: str, reviewer: str) -> None:
    """A lead looked at a held answer: the re-opens so far no longer hold it (new ones count again)."""
    reopened = track_records(session, [subject])[subject].reopened
    review = session.get(AnswerReview, subject) or AnswerReview(subject=subject)
    review.reviewed_by, review.reviewed_at, review.reopened_at_review = reviewer, utcnow(), reopened
    session.add(review)
    session.flush()


def reusable(answer: LearnedAnswer) -> bool:
    """Whether the desk may give the answer to someone else: no particulars, or a lead marked it general."""
    return not answer.particulars or answer.general_by is not None


def resolution_text(body: str, echoed: Sequence[str] = ()) -> str:
    """The resolution without its greeting line, signature and any line quoting `echoed` customer text (the
    template's "Thank you for contacting us about ..."): what the steps were, not who wrote to whom."""
    quotes = [quote.strip() for quote in echoed if len(quote.strip()) >= 8]
    lines = [line for line in body.strip().splitlines() if not any(quote in line for quote in quotes)]
    if lines and GREETING.match(lines[0]):
        lines = lines[1:]
    for position in range(max(0, len(lines) - SIGNATURE_LINES), len(lines)):
        if SIGN_OFF.match(lines[position]):
            lines = lines[:position]
            break
    return "\n".join(lines).strip()


def _cleaned(ticket: Ticket, body: str) -> str:
    """The answer without our own framing (the template's lines naming the ticket, the sources line) and without what
    `resolution_text` cuts: what a person answered, not the letter around it."""
    ours = [line for line in body.splitlines() if ticket.reference in line or line.startswith(SOURCES_LABEL)]
    return resolution_text(body, [ticket.subject, (ticket.subject or ticket.description)[:200], *ours])


def _same_text(session: Session, text: str) -> LearnedAnswer | None:
    normalised = " ".join(text.split()).casefold()
    for answer in session.scalars(select(LearnedAnswer).where(func.length(LearnedAnswer.answer) == len(text))):
        if " ".join(answer.answer.split()).casefold() == normalised:
            return answer
    return None


def _bind_question(session: Session, answer: LearnedAnswer, ticket: Ticket) -> None:
    """The ticket's question becomes one more way of asking what `answer` answers (its text is filled later)."""
    known = session.scalar(
        select(LearnedQuestion.id).where(
            LearnedQuestion.learned_answer_id == answer.id, LearnedQuestion.ticket_id == ticket.id
        )
    )
    if known is None:
        session.add(LearnedQuestion(learned_answer_id=answer.id, ticket_id=ticket.id))
        session.flush()


def learn_answer(session: Session, ticket: Ticket, action: Action, origin: Origin, actor: str) -> LearnedAnswer | None:
    """Keep what `action` sent as a learned answer to the ticket's question; the learned answer it is (an existing one
    when the action gave a learned answer unchanged or the same text), or None when nothing of operator text is left.

    A resolution that gave a learned answer as drafted binds the question to that answer; anything else is kept by
    its cleaned text. A person's answer counts as one approval of the learned answer it becomes (when the draft did
    not already cite it: that approval is counted with the draft's verdict)."""
    cited = cited_subjects(session, action)
    given = [int(subject.split(":")[1]) for subject in cited if subject.startswith(f"{LEARNED}:")]
    answer = session.get(LearnedAnswer, given[0]) if given and origin in ("approved", "confirmed") else None
    if answer is None:
        text = _cleaned(ticket, action.body or "")
        if not text:
            return None
        answer = _same_text(session, text)
        if answer is None:
            answer = LearnedAnswer(
                ticket_id=ticket.id,
                action_id=action.id,
                origin=origin,
                answer=text,
                category=ticket.category,
                particulars=particulars_in(text, [ticket.requester_name or "", ticket.directory_name or ""]),
                created_by=actor,
            )
            session.add(answer)
            session.flush()
        if origin in PERSON_ORIGINS and answer.origin == "confirmed":
            answer.origin = origin  # a person now stands behind what a customer confirmed
        if origin in PERSON_ORIGINS and learned_subject(answer.id) not in cited:
            count(session, [learned_subject(answer.id)], ticket.category, "approved")
    _bind_question(session, answer, ticket)
    return answer


def person_decided(
    session: Session,
    ticket: Ticket,
    action: Action,
    verdict: Literal["approved", "edited", "rejected", "wrote"],
    actor: str,
) -> None:
    """A person approved (as drafted or after an edit), rejected or wrote a message: the cited answers' track record
    moves, and a resolution that went out becomes a learned answer."""
    if verdict != "wrote":
        count(session, cited_subjects(session, action), ticket.category, verdict)
    if verdict != "rejected" and action.kind in (ActionKind.PROPOSE_RESOLUTION, ActionKind.MANUAL_REPLY):
        learn_answer(session, ticket, action, "wrote" if verdict == "wrote" else verdict, actor)


def outcome_verdict(
    session: Session, outcome: ResolutionOutcome, verdict: Literal["confirmed", "assumed", "reopened"]
) -> None:
    """What became of a resolution counts for every answer it gave: those its draft cited and the learned answer it
    became. A confirmed automatic answer becomes a learned answer to the ticket's question; a re-opened automatic
    answer keeps the ticket for a person from now on."""
    action = session.get(Action, outcome.action_id) if outcome.action_id else None
    ticket = session.get(Ticket, outcome.ticket_id)
    if action is None or ticket is None:
        return
    if verdict == "confirmed" and outcome.automated:
        learn_answer(session, ticket, action, "confirmed", "customer")
    if verdict == "reopened":
        keep_for_a_person(ticket, "the customer said an answer did not help: a person answers this ticket")
    learned = session.scalars(select(LearnedAnswer.id).where(LearnedAnswer.action_id == action.id)).all()
    count(session, [*cited_subjects(session, action), *map(learned_subject, learned)], outcome.category, verdict)


def keep_for_a_person(ticket: Ticket, reason: str) -> None:
    """The ticket never gets an automatic answer again: the reason holds every later draft (trust/decision.py)."""
    ticket.additional_info = {**(ticket.additional_info or {}), PERSON_ONLY: reason}


def article_candidates(session: Session, min_approvals: int) -> list[tuple[LearnedAnswer, TrackRecord, list[str]]]:
    """Reusable learned answers approved at least `min_approvals` times and not yet published: article drafts to
    offer the leads, each with its record and the questions it answered."""
    answers = [
        answer
        for answer in session.scalars(
            select(LearnedAnswer).where(LearnedAnswer.published_document_id.is_(None)).order_by(LearnedAnswer.id)
        )
        if reusable(answer)
    ]
    records = track_records(session, [learned_subject(answer.id) for answer in answers])
    offered = []
    for answer in answers:
        record = records[learned_subject(answer.id)]
        if record.approved >= min_approvals:
            offered.append((answer, record, question_variants(session, answer.id)))
    return offered


def question_variants(session: Session, answer_id: int) -> list[str]:
    """The questions a learned answer answered, as read from their tickets, each cleaned of its customer's
    particulars (`without_particulars`): what a lead reviews, edits or drops before an article shows them."""
    rows = _asked(session, answer_id)
    return list(
        dict.fromkeys(
            without_particulars(" ".join((question or subject or "").split()), [requester or ""])
            for question, subject, requester in rows
            if question or subject
        )
    )


def _asked(session: Session, answer_id: int) -> list[tuple[str | None, str | None, str | None]]:
    """(question, ticket subject, requester's name) of each question a learned answer answered."""
    rows = session.execute(
        select(LearnedQuestion.question, Ticket.subject, Ticket.requester_name)
        .join(Ticket, Ticket.id == LearnedQuestion.ticket_id, isouter=True)
        .where(LearnedQuestion.learned_answer_id == answer_id)
        .order_by(LearnedQuestion.id)
    ).all()
    return [tuple(row) for row in rows]


def reviewed_variants(session: Session, answer_id: int, title: str, questions: Sequence[str]) -> tuple[str, list[str]]:
    """A lead's title and question variants for an article from a learned answer, or ValueError naming what still
    holds a customer's particulars (the requesters' names among them): nothing a customer wrote reaches the
    knowledge base with them."""
    names = [requester or "" for _, _, requester in _asked(session, answer_id)]
    title = " ".join(title.split())
    if not title:
        raise ValueError("an article needs a title")
    variants = list(dict.fromkeys(" ".join(question.split()) for question in questions if question.strip()))
    for label, text in (("the title", title), *((f"question {n}", v) for n, v in enumerate(variants, 1))):
        if found := particulars_in(text, names):
            raise ValueError(f"{label} still names {', '.join(found)}: rewrite or drop it before publishing")
    return title, variants


def article_markdown(title: str, questions: Sequence[str], answer: str) -> str:
    """The article a lead publishes from a learned answer: its title, the questions it answers (when the lead kept
    any), the answer."""
    asked = "".join(f"- {question}\n" for question in questions)
    variants = f"## Questions this answers\n\n{asked}\n" if asked else ""
    return f"# {title.strip()}\n\n{variants}## Answer\n\n{answer.strip()}\n"
