"""Matching a new ticket to the learned answers: a paraphrase reaches the answer by its question and its text, a
question that only shares words does not, the desk's own paraphrases set the floor once there are enough, and the
in-memory index follows every change of the learned answers without a restart."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.learned_match import (
    DESK_MIN_PAIRS,
    Learned,
    LearnedIndex,
    LearnedSet,
    closest,
    floor_for,
)
from engine.core.models import LearnedAnswer, LearnedQuestion
from engine.core.settings import Settings
from kb.embed import get_embedder
from tests.factories import TopicEmbedder, new_ticket

PASSWORD = "Open the sign-in page and choose Forgot password; a reset link arrives by e-mail within minutes."
TWO_FACTOR = "Sign in with a backup code, then reset the authenticator under Profile > Security."


def learned_set(embedder: object, answers: dict[str, list[str]]) -> LearnedSet:
    """Learned answers (text: the questions it answered), each question asked by its own ticket."""
    learned, ticket = [], 0
    for answer_id, (text, questions) in enumerate(answers.items(), 1):
        vectors = embedder.embed_queries(questions)
        learned.append(
            Learned(
                answer_id,
                tuple(range(ticket, ticket + len(questions))),
                tuple(questions),
                vectors / np.linalg.norm(vectors, axis=1, keepdims=True),
                text,
                embedder.embed_documents([text])[0],
            )
        )
        ticket += len(questions)
    return LearnedSet(learned)


def best(candidates: LearnedSet, embedder: object, question: str) -> tuple[int, float]:
    [(item, closeness), *_] = closest(question, embedder.embed_queries([question])[0], candidates)
    return item.answer_id, closeness.score


def test_a_paraphrase_finds_its_answer_and_a_question_sharing_its_words_does_not(settings: Settings) -> None:
    """Real MiniLM: "lost my login password" is the forgotten-password question in other words; "how long must a
    password be" shares its main word and asks something else."""
    embedder = get_embedder(settings)
    candidates = learned_set(
        embedder,
        {
            PASSWORD: ["I forgot my password and can't get into my account anymore, what do I do?"],
            TWO_FACTOR: ["I got a new phone and my authenticator codes are gone, how can I log in?"],
        },
    )
    floor = settings.LEARNED_MATCH_MIN_SIMILARITY
    answer, score = best(candidates, embedder, "Locked out - lost my login password. Is there a way to set a new one?")
    assert answer == 1 and score >= floor
    answer, score = best(candidates, embedder, "My authenticator app was wiped after a factory reset, can't sign in")
    assert answer == 2 and score >= floor
    _, score = best(candidates, embedder, "What are the rules for a password, how long does it have to be?")
    assert score < floor, "sharing the word 'password' is not asking the same"
    _, score = best(candidates, embedder, "Our printer on the second floor jams on every page")
    assert score < floor


def test_a_ticket_is_never_matched_by_its_own_question() -> None:
    embedder = TopicEmbedder()
    candidates = learned_set(embedder, {"Answer about kw1a": ["kw1a question"], "Answer about kw2a": ["kw2a question"]})
    ranked = closest("kw1a question", embedder.embed_queries(["kw1a question"])[0], candidates, skip_ticket=0)
    assert [item.answer_id for item, _ in ranked] == [2]


def test_the_desk_floor_needs_enough_right_matches_and_keeps_its_precision() -> None:
    assert floor_for([(0.9, True)] * (DESK_MIN_PAIRS - 1), default=0.7) == 0.7, "too few to tell: the setting"
    right = [(0.99 - 0.01 * n, True) for n in range(DESK_MIN_PAIRS + 20)]
    assert floor_for(right, default=0.7) == pytest.approx(right[-1][0]), "all right: as low as the desk's pairs go"
    floor = floor_for([*right, *[(0.6, False)] * 5], default=0.7)
    assert 0.6 < floor < 0.7, "below the setting, where the desk's pairs are right; above where wrong ones begin"


def test_the_index_follows_deleted_questions_and_answers_held_for_a_lead_without_a_restart(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    embedder = TopicEmbedder()
    tickets = [new_ticket(session_factory, settings, subject=f"kw{n}a", body=f"About kw{n}a?") for n in (1, 2)]
    with session_factory.begin() as session:
        for n, ticket_id in zip((1, 2), tickets, strict=True):
            answer = LearnedAnswer(ticket_id=ticket_id, origin="wrote", answer=f"Answer about kw{n}a", created_by="ann")
            session.add(answer)
            session.flush()
            vector = embedder.embed_queries([f"kw{n}a"])[0].tolist()
            session.add(
                LearnedQuestion(learned_answer_id=answer.id, ticket_id=ticket_id, question=f"kw{n}a", vector=vector)
            )
    index = LearnedIndex()
    assert {item.text for item in index.current(session_factory, embedder).learned} == {
        "Answer about kw1a",
        "Answer about kw2a",
    }
    with session_factory.begin() as session:
        session.execute(delete(LearnedQuestion).where(LearnedQuestion.ticket_id == tickets[0]))
        held = session.query(LearnedAnswer).filter(LearnedAnswer.ticket_id == tickets[1]).one()
        held.particulars = ["an e-mail address"]  # rewritten with a customer's address: waits for a lead again
    assert index.current(session_factory, embedder).learned == []
    with session_factory.begin() as session:
        held = session.query(LearnedAnswer).filter(LearnedAnswer.ticket_id == tickets[1]).one()
        held.general_by, held.answer = "lee", "Answer about kw2a, reworded"
    assert [item.text for item in index.current(session_factory, embedder).learned] == ["Answer about kw2a, reworded"]
