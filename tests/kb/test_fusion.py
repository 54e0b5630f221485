"""Weighted reciprocal rank fusion and the BM25 parameters, without a database or a model."""

from __future__ import annotations

import pytest

from kb.keyword import K1, B, KeywordIndex, KeywordRecord
from kb.search import RETRIEVER_WEIGHTS, RRF_K, fuse


def ranked(*sources: int, kind: str = "kb") -> list[tuple[str, float, str, int]]:
    """A retriever's list, best first: one chunk per source, chunk id 'source:0'."""
    return [(f"{source}:0", 1.0 / position, kind, source) for position, source in enumerate(sources, 1)]


def test_defaults_are_the_tuned_ones() -> None:
    assert RRF_K == 10
    assert RETRIEVER_WEIGHTS == {"bm25": 3.0, "vector": 1.0}
    assert (K1, B) == (0.75, 0.3)


def test_bm25_outweighs_vectors_by_default() -> None:
    hits = fuse([("vector", ranked(1, 2)), ("bm25", ranked(2, 1))])
    assert [hit.source_id for hit in hits] == [2, 1]
    assert hits[0].fused_score == pytest.approx(3 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert hits[0].ranks == {"vector": 2, "bm25": 1}


def test_equal_weights_tie_and_break_by_source() -> None:
    hits = fuse([("vector", ranked(1, 2)), ("bm25", ranked(2, 1))], rrf_k=60, weights={"vector": 1, "bm25": 1})
    assert [hit.source_id for hit in hits] == [1, 2]
    assert hits[0].fused_score == pytest.approx(hits[1].fused_score)
    assert hits[0].fused_score == pytest.approx(1 / 61 + 1 / 62)


def test_weight_is_shared_by_a_retrievers_phrasings() -> None:
    """Three phrasings of the same question must not give the vectors three times their say."""
    one = fuse([("vector", ranked(1)), ("bm25", ranked(2))])
    three = fuse([("vector", ranked(1)), ("vector", ranked(1)), ("vector", ranked(1)), ("bm25", ranked(2))])
    assert [(h.source_id, round(h.fused_score, 9)) for h in one] == [
        (h.source_id, round(h.fused_score, 9)) for h in three
    ]
    assert [hit.source_id for hit in three] == [2, 1]


def test_ranks_count_sources_and_the_best_chunk_is_cited() -> None:
    bm25 = [("1:0", 5.0, "kb", 1), ("1:1", 4.0, "kb", 1), ("2:0", 3.0, "kb", 2)]
    vector = [("1:1", 0.9, "kb", 1), ("2:0", 0.8, "kb", 2)]
    hits = fuse([("bm25", bm25), ("vector", vector)])
    first = hits[0]
    assert first.source_id == 1 and first.ranks == {"bm25": 1, "vector": 1}
    assert first.chunk_id == "1:1"  # ranked by both lists
    assert hits[1].ranks == {"bm25": 2, "vector": 2}


def test_unnamed_retriever_weighs_one() -> None:
    hits = fuse([("other", ranked(1))], weights={})
    assert hits[0].fused_score == pytest.approx(1 / (RRF_K + 1))


def test_bm25_parameters_per_index() -> None:
    texts = {
        "short": "router reset",
        "long": "router reset " + " ".join(f"filler{i}" for i in range(40)),
        "other": "mailbox quota",
    }

    def index(**params: float) -> KeywordIndex:
        keywords = KeywordIndex(None, **params)
        keywords.add(
            (KeywordRecord.from_text(key, "", "kb", 1, "", 0, text) for key, text in texts.items()), persist=False
        )
        return keywords

    tuned, textbook, flat = index(), index(k1=1.5, b=0.75), index(k1=1.2, b=0.0)
    assert (tuned.k1, tuned.b) == (K1, B)
    for keywords in (tuned, textbook):
        assert next(chunk for chunk, _ in keywords.search("router reset", 5)) == "short"
    flat_scores = dict(flat.search("router reset", 5))
    assert flat_scores["short"] == pytest.approx(flat_scores["long"])  # b=0: no length normalisation
    assert dict(tuned.search("router", 5)) != dict(textbook.search("router", 5))
