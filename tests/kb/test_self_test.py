"""The self-test picks each knowledge base's fusion from its own documents and real answered questions, on two
synthetic knowledge bases.

Topic i is named by the word `kw{i}a` in a document's heading and first sentence. In the knowledge base where
vectors win, the rest of the document says `kw{i}b` instead, which only the (fake) embedder knows to be the same
topic; in the one where keywords win, the rest repeats `kw{i}a` and the embedder takes questions for the next topic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from kb.calibration import FUSION_METHODS, Fusion
from kb.self_test import (
    ANSWERED,
    DOCUMENTS_WORDS,
    MIN_QUERIES,
    PARAPHRASED,
    REAL_FULL_WEIGHT,
    VECTOR_WEIGHTS,
    AnsweredQuestion,
    PseudoQuery,
    SelfTestCorpus,
    answered_questions,
    best_single,
    choose_fusion,
    masked_texts,
    mean_grid,
    paraphrase_questions,
    run_self_test,
    style_weights,
    with_duplicates,
)
from tests.factories import DIMENSION, TopicEmbedder, topic_corpus


class MisleadingEmbedder(TopicEmbedder):
    """Reads every question as the next topic's: a model out of its domain, sure of the wrong neighbour."""

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.roll(self.embed_documents(texts), 1, axis=1)


def test_questions_are_body_sentences_reworded_and_cut_from_their_source() -> None:
    corpus = topic_corpus(TopicEmbedder(), body_word="b")
    queries = paraphrase_questions(corpus)
    third = [query for query in queries if query.source == ("kb", 3)]
    assert [query.text for query in third] == [
        "The kw3a feature needs configuring once per account",
        "Open the options panel and follow the steps for kw3b save",
    ], "sentences too short to ask about are skipped; 'settings' is reworded, a dangling 'the' dropped"
    assert third[1].cut.startswith("Open the settings panel")
    masked = masked_texts(corpus, third)
    assert "kw3a feature" not in masked[3] and "Open the settings" not in masked[3] and "Then check" in masked[3]
    assert masked[4] == corpus.texts[4], "other documents keep their text"


def test_questions_never_hold_the_headings_word_sequence_and_every_source_is_asked_before_any_twice() -> None:
    sections = [
        "Printing in colour\nPrinting in colour is allowed on the third floor printers. Choose colour in the print "
        "dialog before you send the job.",
        "Scanning to email\nTap Scan on the printer panel and pick your own address. The scanned file arrives as a "
        "PDF within a minute.",
        "Badge not recognised\nRegister the badge once at the printer. Hold the badge not recognised by the reader "
        "on it for two seconds.",
    ]
    corpus = SelfTestCorpus(
        ids=[str(i) for i in range(4)],
        texts=[
            *sections,
            "Guest wifi\nGuests join the NW-Guest network with the code from reception desks. Codes change daily "
            "and reception hands out a new one each morning at nine.",
        ],
        sources=[("kb", 1), ("kb", 1), ("kb", 1), ("kb", 2)],
        vectors=np.zeros((4, DIMENSION), dtype=np.float32),
    )
    queries = paraphrase_questions(corpus)
    printer = [query.text for query in queries if query.source == ("kb", 1)]
    assert printer[:2] == [
        "is allowed on the third floor printers",
        "Choose colour in the print dialog before you send the job",
    ]
    headings = ["printing in colour", "scanning to email", "badge not recognised", "guest wifi"]
    assert not [query.text for query in queries if any(heading in query.text.lower() for heading in headings)]
    assert any(query.cut.startswith("Hold the badge not recognised") for query in queries)
    first_two = {query.source for query in paraphrase_questions(corpus, max_queries=2)}
    assert first_two == {("kb", 1), ("kb", 2)}, "a long manual cannot crowd out a short article"


def test_vectors_win_where_the_words_differ() -> None:
    embedder = TopicEmbedder()
    test = run_self_test(topic_corpus(embedder, body_word="b"), embedder)
    assert test.report["vector_mrr"] > test.report["bm25_mrr"]
    assert test.report["styles"][PARAPHRASED]["vector_mrr"] > test.report["styles"][PARAPHRASED]["bm25_mrr"]
    assert test.fusion.vector_weight == 1.0 or test.report["mrr"] >= test.report["vector_mrr"] - 0.01, test.report
    assert {(row["method"], row["vector_weight"]) for row in test.report["grid"]} >= {("rrf", 0.0), ("rrf", 1.0)}


def test_keywords_win_where_vectors_mislead() -> None:
    embedder = MisleadingEmbedder()
    test = run_self_test(topic_corpus(embedder, body_word="a"), embedder)
    assert test.report["bm25_mrr"] > test.report["vector_mrr"]
    assert test.fusion.vector_weight == 0.0 or test.report["mrr"] >= test.report["bm25_mrr"] - 0.01, test.report


def test_too_small_a_knowledge_base_keeps_the_default() -> None:
    embedder = TopicEmbedder()
    corpus = topic_corpus(embedder, body_word="b")
    tiny = SelfTestCorpus(corpus.ids[:2], corpus.texts[:2], corpus.sources[:2], corpus.vectors[:2])
    test = run_self_test(tiny, embedder)
    assert test.fusion == Fusion() and test.samples == [] and test.report["queries"] < MIN_QUERIES


def scores(mrr: float, ndcg: float | None = None) -> dict[str, float]:
    return {"mrr": mrr, "ndcg": mrr + 0.02 if ndcg is None else ndcg}


def test_a_hybrid_within_the_noise_of_the_best_single_retriever_loses_to_it() -> None:
    grid = {
        Fusion("rrf", 1.0): scores(0.90),
        Fusion("rrf", 0.0): scores(0.70),
        Fusion("rrf", 0.7): scores(0.915),
        Fusion("minmax", 0.5): scores(0.80),
    }
    assert choose_fusion({PARAPHRASED: grid}, {PARAPHRASED: 0.02}) == Fusion("rrf", 1.0)
    assert choose_fusion({PARAPHRASED: grid}, {PARAPHRASED: 0.005}) == Fusion("rrf", 0.7), "beyond the noise it wins"


def test_a_hybrid_that_wins_on_mrr_but_loses_ndcg_is_not_chosen() -> None:
    grid = {
        Fusion("rrf", 0.0): scores(0.80, 0.85),
        Fusion("rrf", 1.0): scores(0.60),
        Fusion("rrf", 0.3): scores(0.85, 0.83),
    }
    assert choose_fusion({PARAPHRASED: grid}, {PARAPHRASED: 0.0}) == Fusion("rrf", 0.0)


def test_where_the_styles_disagree_the_retriever_best_on_average_is_kept_not_a_hybrid_that_wins_on_one() -> None:
    """Paraphrases favour vectors a little, questions in the manual's words favour keywords a lot (the Smart TV
    and S10 manuals' pattern): keywords alone, though a hybrid is best on the paraphrases by far."""
    paraphrased = {Fusion("rrf", 0.0): scores(0.41), Fusion("rrf", 1.0): scores(0.50), Fusion("rrf", 0.6): scores(0.58)}
    in_its_words = {
        Fusion("rrf", 0.0): scores(0.91),
        Fusion("rrf", 1.0): scores(0.74),
        Fusion("rrf", 0.6): scores(0.84),
    }
    grids = {PARAPHRASED: paraphrased, DOCUMENTS_WORDS: in_its_words}
    assert choose_fusion(grids, dict.fromkeys(grids, 0.0)) == Fusion("rrf", 0.0)
    in_its_words[Fusion("rrf", 0.6)] = scores(0.95)
    assert choose_fusion(grids, dict.fromkeys(grids, 0.0)) == Fusion("rrf", 0.6), "it wins on both: chosen"


def test_real_questions_outweigh_the_made_ones_as_they_accumulate() -> None:
    made = {Fusion("rrf", 0.0): scores(0.90), Fusion("rrf", 1.0): scores(0.80)}
    real = {Fusion("rrf", 0.0): scores(0.50), Fusion("rrf", 1.0): scores(0.70)}
    grids = {PARAPHRASED: made, DOCUMENTS_WORDS: made, ANSWERED: real}
    few = style_weights({PARAPHRASED: [], DOCUMENTS_WORDS: [], ANSWERED: [PseudoQuery("q", ("kb", 1))] * 10})
    many = style_weights({PARAPHRASED: [], DOCUMENTS_WORDS: [], ANSWERED: [PseudoQuery("q", ("kb", 1))] * 500})
    assert few == {PARAPHRASED: 1.0, DOCUMENTS_WORDS: 1.0, ANSWERED: 2 * 10 / REAL_FULL_WEIGHT}
    assert many[ANSWERED] == 2.0, "capped at the made styles' total"
    assert choose_fusion(grids, dict.fromkeys(grids, 0.0), few) == Fusion("rrf", 0.0)
    assert choose_fusion(grids, dict.fromkeys(grids, 0.0), many) == Fusion("rrf", 1.0)


def test_the_choice_is_the_best_single_on_average_or_a_hybrid_that_beats_it_on_every_style() -> None:
    rng = random.Random(22)
    for _ in range(300):
        grids = {
            style: {
                Fusion(method, weight): scores(mrr := rng.random(), min(1.0, mrr + rng.uniform(-0.05, 0.1)))
                for method in FUSION_METHODS
                for weight in VECTOR_WEIGHTS
            }
            for style in (PARAPHRASED, DOCUMENTS_WORDS)
        }
        noise = {style: rng.uniform(0.0, 0.05) for style in grids}
        chosen = choose_fusion(grids, noise)
        single = best_single(mean_grid(grids, dict.fromkeys(grids, 1.0)))
        for grid in grids.values():
            assert grid[chosen]["mrr"] >= grid[single]["mrr"]
            assert grid[chosen]["ndcg"] >= grid[single]["ndcg"] - 0.01


def test_real_answered_questions_join_the_self_test_as_asked() -> None:
    embedder = MisleadingEmbedder()
    corpus = topic_corpus(embedder, body_word="a")
    pairs = [
        AnsweredQuestion("how do I set up kw5a for my team", ("kb", 5)),
        AnsweredQuestion("how do I set up kw5a for my team", ("kb", 6)),
        AnsweredQuestion("where is kw7a", ("kb", 7)),
        AnsweredQuestion("a question about a deleted article", ("kb", 999)),
    ]
    real = answered_questions(pairs, set(corpus.sources))
    assert [(query.text, query.answers, query.masked) for query in real] == [
        ("how do I set up kw5a for my team", {("kb", 5), ("kb", 6)}, False),
        ("where is kw7a", {("kb", 7)}, False),
    ]
    without = run_self_test(corpus, embedder)
    joined = run_self_test(corpus, embedder, pairs)
    assert without.report["real_questions"] == 0 and joined.report["real_questions"] == 2
    assert joined.report["queries"] == without.report["queries"] + 2
    assert masked_texts(corpus, real) == corpus.texts, "a real question is asked against the documents as they are"
    assert ANSWERED not in joined.report["styles"], f"fewer than {MIN_QUERIES} real questions are no style of their own"
    many = [
        AnsweredQuestion(f"is kw{topic}a set up once per account ({n})", ("kb", topic))
        for topic in range(8)
        for n in (1, 2)
    ]
    counted = run_self_test(corpus, embedder, many).report["styles"]
    assert set(counted) == {PARAPHRASED, DOCUMENTS_WORDS, ANSWERED}
    assert counted[ANSWERED]["questions"] == 16 and counted[ANSWERED]["weight"] == round(2 * 16 / REAL_FULL_WEIGHT, 2)


def test_a_duplicated_section_answers_the_pseudo_query_too() -> None:
    """Manuals repeat sections word for word: finding the twin is no miss, and the twin is masked as well."""
    embedder = TopicEmbedder()
    corpus = topic_corpus(embedder, body_word="b")
    twin = SelfTestCorpus(
        [*corpus.ids, "twin"],
        [*corpus.texts, corpus.texts[3]],
        [*corpus.sources, ("kb", 99)],
        np.vstack([corpus.vectors, corpus.vectors[3:4]]),
    )
    queries = with_duplicates(twin, paraphrase_questions(twin))
    first = next(query for query in queries if query.cut == "The kw3a feature needs configuring once per account.")
    assert first.answers == {("kb", 3), ("kb", 99)}
    assert "kw3a feature" not in masked_texts(twin, queries)[-1]
