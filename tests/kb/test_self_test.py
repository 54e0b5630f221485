"""The self-test picks each knowledge base's fusion from its own documents, on two synthetic knowledge bases.

Topic i is named by the word `kw{i}a` in a document's heading and first sentence. In the knowledge base where
vectors win, the rest of the document says `kw{i}b` instead, which only the (fake) embedder knows to be the same
topic; in the one where keywords win, the rest repeats `kw{i}a` and the embedder takes questions for the next topic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kb.calibration import Fusion
from kb.self_test import SelfTestCorpus, choose_fusion, masked_texts, pseudo_queries, run_self_test, with_duplicates
from tests.factories import DIMENSION, TopicEmbedder, topic_corpus


class MisleadingEmbedder(TopicEmbedder):
    """Reads every question as the next topic's: a model out of its domain, sure of the wrong neighbour."""

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.roll(self.embed_documents(texts), 1, axis=1)


def test_pseudo_queries_are_headings_and_first_sentences_cut_from_their_source() -> None:
    corpus = topic_corpus(TopicEmbedder(), body_word="b")
    queries = pseudo_queries(corpus)
    first = [query for query in queries if query.source == ("kb", 3)]
    assert [query.text for query in first] == [
        "Guide to kw3a setup",
        "The kw3a feature needs configuring once per account.",
    ]
    masked = masked_texts(corpus, first)
    assert "kw3a" not in masked[3] and "kw3b" in masked[3]
    assert masked[4] == corpus.texts[4], "other documents keep their text"


def test_every_section_gives_questions_and_every_source_is_asked_before_any_twice() -> None:
    sections = [
        "Printing in colour\nColour printing is allowed on the third floor printers. Choose colour in the dialog.",
        "Scanning to email\nTap Scan on the printer panel and pick your own address. The file arrives as a PDF.",
        "Badge not recognised\nRegister the badge once at the printer. Hold it on the reader for two seconds.",
    ]
    corpus = SelfTestCorpus(
        ids=[str(i) for i in range(4)],
        texts=[*sections, "Guest wifi\nGuests join the NW-Guest network with the code from reception desks."],
        sources=[("kb", 1), ("kb", 1), ("kb", 1), ("kb", 2)],
        vectors=np.zeros((4, DIMENSION), dtype=np.float32),
    )
    queries = pseudo_queries(corpus)
    printer = [query.text for query in queries if query.source == ("kb", 1)]
    assert printer[:4] == [
        "Printing in colour",
        "Colour printing is allowed on the third floor printers.",
        "Scanning to email",
        "Tap Scan on the printer panel and pick your own address.",
    ]
    first_two = {query.source for query in pseudo_queries(corpus, max_queries=2)}
    assert first_two == {("kb", 1), ("kb", 2)}, "a long manual cannot crowd out a short article"


def test_vectors_win_where_the_words_differ() -> None:
    embedder = TopicEmbedder()
    test = run_self_test(topic_corpus(embedder, body_word="b"), embedder)
    assert test.fusion.vector_weight >= 0.6, test.report
    assert test.report["vector_mrr"] > test.report["bm25_mrr"]
    assert test.report["mrr"] >= test.report["vector_mrr"] - 0.01


def test_keywords_win_where_vectors_mislead() -> None:
    embedder = MisleadingEmbedder()
    test = run_self_test(topic_corpus(embedder, body_word="a"), embedder)
    assert test.fusion.vector_weight <= 0.4, test.report
    assert test.report["bm25_mrr"] > test.report["vector_mrr"]
    assert test.report["mrr"] >= test.report["bm25_mrr"] - 0.01


def test_too_small_a_knowledge_base_keeps_the_default() -> None:
    embedder = TopicEmbedder()
    corpus = topic_corpus(embedder, body_word="b")
    tiny = SelfTestCorpus(corpus.ids[:2], corpus.texts[:2], corpus.sources[:2], corpus.vectors[:2])
    test = run_self_test(tiny, embedder)
    assert test.fusion == Fusion() and test.samples == [] and test.report["queries"] == 4


def test_ties_go_to_the_more_balanced_fusion() -> None:
    grid = {
        Fusion("rrf", 1.0): {"mrr": 0.90},
        Fusion("rrf", 0.7): {"mrr": 0.898},
        Fusion("minmax", 0.5): {"mrr": 0.80},
    }
    assert choose_fusion(grid) == Fusion("rrf", 0.7)


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
    queries = with_duplicates(twin, pseudo_queries(twin))
    heading = next(query for query in queries if query.text == "Guide to kw3a setup")
    assert heading.answers == {("kb", 3), ("kb", 99)}
    assert "Guide to kw3a setup" not in masked_texts(twin, queries)[-1]
    assert run_self_test(twin, embedder).report["hit_at_1"] == 1.0
