"""Fusion (weighted reciprocal rank, min-max scores) and the BM25 parameters, without a database or a model."""

from __future__ import annotations

import pytest

from kb.calibration import DEFAULT_FUSION, RRF_K, Fusion
from kb.keyword import K1, B, KeywordIndex, KeywordRecord
from kb.search import fuse


def ranked(*sources: int, kind: str = "kb") -> list[tuple[str, float, str, int]]:
    """A retriever's list, best first: one chunk per source, chunk id 'source:0'."""
    return [(f"{source}:0", 1.0 / position, kind, source) for position, source in enumerate(sources, 1)]


def test_defaults_before_calibration_are_the_emqa_ones() -> None:
    assert Fusion("rrf", 0.25, 10) == DEFAULT_FUSION and RRF_K == 10
    assert DEFAULT_FUSION.weights == {"vector": 0.25, "bm25": 0.75}
    assert (K1, B) == (0.75, 0.3)


def test_bm25_outweighs_vectors_by_default() -> None:
    hits = fuse([("vector", ranked(1, 2)), ("bm25", ranked(2, 1))])
    assert [hit.source_id for hit in hits] == [2, 1]
    assert hits[0].fused_score == pytest.approx(0.75 / (RRF_K + 1) + 0.25 / (RRF_K + 2))
    assert hits[0].ranks == {"vector": 2, "bm25": 1}


def test_equal_weights_tie_and_break_by_source() -> None:
    hits = fuse([("vector", ranked(1, 2)), ("bm25", ranked(2, 1))], Fusion("rrf", 0.5, 60))
    assert [hit.source_id for hit in hits] == [1, 2]
    assert hits[0].fused_score == pytest.approx(hits[1].fused_score)
    assert hits[0].fused_score == pytest.approx(0.5 / 61 + 0.5 / 62)


def test_min_max_fusion_weighs_score_gaps_not_ranks() -> None:
    """A vector list where source 2 is nearly as good as 1 lets a clear BM25 win for 2 decide; RRF would tie."""
    vector = [("1:0", 0.80, "kb", 1), ("2:0", 0.79, "kb", 2), ("3:0", 0.20, "kb", 3)]
    bm25 = [("2:0", 9.0, "kb", 2), ("1:0", 1.0, "kb", 1)]
    hits = fuse([("vector", vector), ("bm25", bm25)], Fusion("minmax", 0.5))
    assert [hit.source_id for hit in hits] == [2, 1, 3]
    assert hits[0].fused_score == pytest.approx(0.5 * (0.59 / 0.60) + 0.5 * 1.0)
    assert Fusion("minmax", 0.5).best_score == 1.0


def test_vector_weight_one_is_the_vector_ranking() -> None:
    hits = fuse([("vector", ranked(1, 2, 3)), ("bm25", ranked(3, 2, 1))], Fusion("rrf", 1.0))
    assert [hit.source_id for hit in hits] == [1, 2, 3]


def test_invalid_fusion_is_refused() -> None:
    with pytest.raises(ValueError, match="vector weight"):
        Fusion("rrf", 1.5)
    with pytest.raises(ValueError, match="method"):
        Fusion("borda", 0.5)


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


def test_unnamed_retriever_has_no_say() -> None:
    hits = fuse([("other", ranked(1)), ("bm25", ranked(2))])
    assert [hit.source_id for hit in hits] == [2, 1] and hits[1].fused_score == 0.0


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
