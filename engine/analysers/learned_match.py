"""Finding the learned answer to a new ticket: its question against the questions learned answers answered.

A learned question is the focus of the ticket it came from (engine/analysers/confidence.py's `question_focus`,
without the replies), embedded by the knowledge base's embedder and kept on its row, so each question is embedded
once. The match is the closest question of a reusable learned answer, from another ticket; its confidence is the
answer's track record scaled by how close the paraphrase is (engine/analysers/confidence.py's `learned_confidence`).
The questions are customer text: they are matched against and shown to operators, never put in a message.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.confidence import question_focus
from engine.core.db import transaction
from engine.core.models import LearnedAnswer, LearnedQuestion, Ticket
from engine.core.settings import Settings
from engine.outcomes.learned import LEARNED, TrackRecord, learned_subject, reusable, track_records
from kb.embed import Embedder, get_embedder

log = logging.getLogger(__name__)
FILL_BATCH = 64
LEARNED_TITLE = "Answer our team gave before"
"""The citation title of a learned answer: ours, so the final provenance check accepts it."""


def fill_questions(factory: sessionmaker[Session], embedder: Embedder) -> int:
    """Give each learned question that has none its text (the ticket's focus) and embedding; how many were filled."""
    filled = 0
    while True:
        with factory() as session:
            rows = session.execute(
                select(LearnedQuestion.id, Ticket.subject, Ticket.description)
                .join(Ticket, Ticket.id == LearnedQuestion.ticket_id)
                .where(LearnedQuestion.vector.is_(None))
                .limit(FILL_BATCH)
            ).all()
        if not rows:
            return filled
        questions = [
            question_focus(f"{subject}\n{(description or '')[:1500]}") or subject for _, subject, description in rows
        ]
        vectors = embedder.embed_queries(questions)
        with transaction(factory) as session:
            for (question_id, _, _), question, vector in zip(rows, questions, vectors, strict=True):
                row = session.get(LearnedQuestion, question_id)
                if row is not None:
                    row.question, row.vector = question, [round(float(value), 6) for value in vector]
        filled += len(rows)


QUESTION_COLUMNS = (
    LearnedQuestion.id,
    LearnedQuestion.learned_answer_id,
    LearnedQuestion.ticket_id,
    LearnedQuestion.vector,
)


class QuestionVectors:
    """The learned questions' embeddings as one matrix, read from the database once per new question."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._ids: list[int] = []
        self._rows: list[tuple[int, int]] = []
        """(learned answer id, ticket id) of each row of the matrix."""
        self._matrix = np.zeros((0, 0), dtype=np.float32)

    def current(self, session: Session) -> tuple[list[tuple[int, int]], np.ndarray]:
        with self._lock:
            known = self._ids[-1] if self._ids else 0
            new = session.execute(
                select(*QUESTION_COLUMNS)
                .where(LearnedQuestion.id > known, LearnedQuestion.vector.is_not(None))
                .order_by(LearnedQuestion.id)
            ).all()
            gap = session.scalar(
                select(LearnedQuestion.id).where(LearnedQuestion.id <= known, LearnedQuestion.vector.is_(None)).limit(1)
            )
            if gap is not None:  # a question emptied again (a new embedder): read them all again
                self._reset()
                new = session.execute(
                    select(*QUESTION_COLUMNS).where(LearnedQuestion.vector.is_not(None)).order_by(LearnedQuestion.id)
                ).all()
            if new:
                vectors = np.array([row.vector for row in new], dtype=np.float32)
                vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
                self._matrix = vectors if not self._ids else np.vstack([self._matrix, vectors])
                self._ids += [row.id for row in new]
                self._rows += [(row.learned_answer_id, row.ticket_id) for row in new]
            return list(self._rows), self._matrix


@dataclass(frozen=True)
class LearnedMatch:
    """The learned answer whose question is closest to a new ticket's, with what the decision needs of it."""

    answer: LearnedAnswer
    similarity: float
    question: str
    record: TrackRecord

    @property
    def subject(self) -> str:
        return learned_subject(self.answer.id)

    def evidence(self) -> dict[str, Any]:
        """The learned answer as a cited piece of evidence: operator text under our own title. `question` is the
        matched question for the coverage test and the operators' eyes; no message is built from it."""
        return {
            "source_kind": LEARNED,
            "source_id": self.answer.id,
            "title": LEARNED_TITLE,
            "document": "",
            "location": "",
            "location_data": {},
            "text": self.answer.answer,
            "fused_score": round(self.similarity, 4),
            "chunk_id": 0,
            "question": self.question,
            "similarity": round(self.similarity, 4),
            "track_record": self.record.as_dict(),
            "cited": True,
        }


def best_learned_answer(
    session: Session,
    embedder: Embedder,
    vectors: QuestionVectors,
    question: str,
    *,
    ticket_id: int,
    floor: float,
) -> LearnedMatch | None:
    """The reusable learned answer whose closest question (from another ticket) is at least `floor` similar."""
    rows, matrix = vectors.current(session)
    if not rows or not question.strip():
        return None
    query = embedder.embed_queries([question])[0].astype(np.float32)
    similarity = matrix @ (query / max(float(np.linalg.norm(query)), 1e-9))
    for index in np.argsort(-similarity):
        if similarity[index] < floor:
            return None
        answer_id, source_ticket = rows[index]
        if source_ticket == ticket_id:
            continue
        answer = session.get(LearnedAnswer, answer_id)
        if answer is None or not reusable(answer):
            continue
        asked = session.scalar(
            select(LearnedQuestion.question).where(
                LearnedQuestion.learned_answer_id == answer_id, LearnedQuestion.ticket_id == source_ticket
            )
        )
        record = track_records(session, [learned_subject(answer_id)])[learned_subject(answer_id)]
        return LearnedMatch(answer, float(similarity[index]), asked or "", record)
    return None


def learned_answer_for(
    factory: sessionmaker[Session], settings: Settings, vectors: QuestionVectors, question: str, ticket_id: int
) -> LearnedMatch | None:
    """The analyser's step: fill new learned questions, then match; on a failure the knowledge base alone answers."""
    with factory() as session:
        if session.scalar(select(LearnedQuestion.id).limit(1)) is None:
            return None  # nothing learned yet: no embedder is loaded for it
    try:
        embedder = get_embedder(settings)
        fill_questions(factory, embedder)
        with factory() as session:
            match = best_learned_answer(
                session, embedder, vectors, question, ticket_id=ticket_id, floor=settings.LEARNED_MATCH_MIN_SIMILARITY
            )
            if match is not None:
                session.expunge(match.answer)
            return match
    except Exception:  # learned answers are an addition: the knowledge base still answers without them
        log.exception("matching learned answers failed; the knowledge base alone answers")
        return None
