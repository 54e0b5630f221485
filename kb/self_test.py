"""The knowledge base tests its own retrieval: it picks its fusion and fits the desk's confidence model.

Pseudo-queries come from each document's own heading and first sentence (and from operator-approved
ticket → evidence pairs). Each pseudo-query's text is cut out of its source's chunks before the test, so BM25
cannot win by finding the query verbatim and the test rewards what paraphrased questions need. The fusion
(method and the vectors' share) with the best MRR of finding the pseudo-query's source is kept. The same runs,
plus off-topic questions and pseudo-queries with their own document held out, label the confidence model's
training cases: was the top hit right?
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import transaction
from engine.core.models import KbChunk, KbDocument
from engine.core.settings import Settings
from kb.calibration import DEFAULT_FUSION, FUSION_METHODS, Calibration, Fusion, chunk_census, save_calibration
from kb.confidence import Verdict, evidence_features, fit_confidence
from kb.embed import Embedder
from kb.keyword import KeywordIndex, KeywordRecord, tokenize
from kb.ledger import AWAITING_REVIEW
from kb.search import FusedHit, best_per_source, deterministic_queries, fuse
from kb.store import get_runtime

log = logging.getLogger(__name__)
OFF_TOPIC = Path(__file__).resolve().parent / "data" / "off_topic_questions.txt"
VECTOR_WEIGHTS = tuple(round(step / 10, 1) for step in range(11))
MAX_QUERIES = 400
CANDIDATES = 50
TOP = 10
MIN_QUERIES = 8
MIN_LEFT = 8
MAX_RELEVANT = 40
TIE = 0.005
SENTENCE_END = re.compile(r"(?<=[.!?])\s")
HEADING_MAX = 120
Source = tuple[str, int]
Lists = list[tuple[str, list[tuple[str, float, str, int]]]]


@dataclass
class SelfTestCorpus:
    """Chunks as the indexes hold them: ids, texts, (kind, source id), unit vectors; titles per source."""

    ids: list[str]
    texts: list[str]
    sources: list[Source]
    vectors: np.ndarray
    titles: dict[Source, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PseudoQuery:
    """A question with the sources that answer it: its own, and any other holding its text (a duplicated section)."""

    text: str
    source: Source
    masked: bool = True
    relevant: frozenset[Source] = frozenset()

    @property
    def answers(self) -> frozenset[Source]:
        return self.relevant or frozenset({self.source})


@dataclass
class SelfTest:
    """The chosen fusion, what the test measured, and the labelled cases for the confidence model."""

    fusion: Fusion
    report: dict[str, Any]
    samples: list[tuple[dict[str, float], int]]


def off_topic_questions() -> list[str]:
    lines = OFF_TOPIC.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def pseudo_queries(corpus: SelfTestCorpus, max_queries: int = MAX_QUERIES) -> list[PseudoQuery]:
    """Each section's heading and first sentence, as a customer's question names what a section covers.

    Sources are taken in a fixed hash order and their sections in turn (one from each source before a second
    from any), so a large knowledge base is sampled evenly; a question is kept only where its source, once
    the question is cut out, still has MIN_LEFT terms to be found by."""
    chunks: dict[Source, list[int]] = defaultdict(list)
    for index, source in enumerate(corpus.sources):
        chunks[source].append(index)
    order = sorted(chunks, key=lambda source: hashlib.sha256(f"{source[0]}:{source[1]}".encode()).digest())
    left = {source: len(tokenize(" ".join(corpus.texts[index] for index in chunks[source]))) for source in order}
    candidates = {source: _section_questions(corpus, source, chunks[source]) for source in order}
    queries: list[PseudoQuery] = []
    for turn in range(max(map(len, candidates.values()), default=0)):
        for source in order:
            if turn >= len(candidates[source]) or len(queries) >= max_queries:
                continue
            text = candidates[source][turn]
            cut = len(tokenize(text))
            if cut >= 2 and left[source] - cut >= MIN_LEFT:
                queries.append(PseudoQuery(text, source))
                left[source] -= cut
    return queries


def _section_questions(corpus: SelfTestCorpus, source: Source, indexes: list[int]) -> list[str]:
    """A source's headings and first sentences, once each, in document order (its title when the first
    chunk has no heading line)."""
    found: list[str] = []
    for position, index in enumerate(indexes):
        lines = [line.strip() for line in corpus.texts[index].splitlines() if line.strip()]
        heading_line = lines[0] if len(lines) > 1 and len(lines[0]) <= HEADING_MAX else ""
        heading = heading_line or (corpus.titles.get(source, "") if position == 0 else "")
        body = " ".join(lines[1:] if heading_line else lines)
        sentence = " ".join(SENTENCE_END.split(body, maxsplit=1)[0].split()[:30]) if body else ""
        for text in (heading, sentence):
            if text and text.lower() not in {known.lower() for known in found}:
                found.append(text)
    return found


def with_duplicates(corpus: SelfTestCorpus, queries: Sequence[PseudoQuery]) -> list[PseudoQuery]:
    """Each masked pseudo-query with every source whose text holds it; too generic ones (in more than
    MAX_RELEVANT sources, say a heading like "Overview") are dropped."""
    lowered = [text.lower() for text in corpus.texts]
    kept = []
    for query in queries:
        if not query.masked:
            kept.append(query)
            continue
        needle = query.text.lower()
        relevant = frozenset(corpus.sources[i] for i, text in enumerate(lowered) if needle in text) | {query.source}
        if len(relevant) <= MAX_RELEVANT:
            kept.append(replace(query, relevant=relevant))
    return kept


def masked_texts(corpus: SelfTestCorpus, queries: Sequence[PseudoQuery]) -> list[str]:
    """Each chunk with the masked pseudo-queries it answers cut out (case-insensitive)."""
    by_source: dict[Source, list[str]] = defaultdict(list)
    for query in queries:
        if query.masked:
            for source in query.answers:
                by_source[source].append(query.text)
    texts = list(corpus.texts)
    for index, source in enumerate(corpus.sources):
        for text in by_source.get(source, []):
            texts[index] = re.sub(re.escape(text), " ", texts[index], flags=re.IGNORECASE)
    return texts


class _Retrievers:
    """BM25 over the masked texts and exact cosine over their vectors: what retrieval would see."""

    def __init__(self, corpus: SelfTestCorpus, texts: list[str], embedder: Embedder) -> None:
        self.corpus, self.texts, self.embedder = corpus, texts, embedder
        self.vectors = corpus.vectors.copy()
        changed = [index for index, text in enumerate(texts) if text != corpus.texts[index]]
        if changed:
            self.vectors[changed] = embedder.embed_documents([texts[index] for index in changed])
        self.vectors /= np.maximum(np.linalg.norm(self.vectors, axis=1, keepdims=True), 1e-9)
        self.keywords = KeywordIndex(None)
        self.keywords.add(
            (
                KeywordRecord.from_text(chunk_id, "", kind, source_id, "", 0, text)
                for chunk_id, (kind, source_id), text in zip(corpus.ids, corpus.sources, texts, strict=True)
            ),
            persist=False,
        )
        self.index_of = {chunk_id: index for index, chunk_id in enumerate(corpus.ids)}

    def lists(self, questions: Sequence[str]) -> list[Lists]:
        """Both retrievers' ranked lists for every phrasing of every question."""
        phrasings = [deterministic_queries(question) for question in questions]
        flat = [phrase for group in phrasings for phrase in group]
        query_vectors = self.embedder.embed_queries(flat) if flat else np.zeros((0, self.vectors.shape[1]))
        query_vectors = query_vectors / np.maximum(np.linalg.norm(query_vectors, axis=1, keepdims=True), 1e-9)
        similarities = query_vectors @ self.vectors.T
        result, row = [], 0
        for group in phrasings:
            lists: Lists = []
            for phrase in group:
                scores = similarities[row]
                row += 1
                best = np.argsort(-scores)[:CANDIDATES]
                lists.append(
                    ("vector", [(self.corpus.ids[i], float(scores[i]), *self.corpus.sources[i]) for i in best])
                )
                ranked = self.keywords.search(phrase, CANDIDATES)
                lists.append(
                    ("bm25", [(cid, score, *self.corpus.sources[self.index_of[cid]]) for cid, score in ranked])
                )
            result.append(lists)
        return result

    def evidence(self, hits: Sequence[FusedHit], fusion: Fusion) -> list[dict[str, Any]]:
        """Hits shaped like kb.search's Evidence, as the confidence features read them, with the text these
        indexes hold: a masked pseudo-query's own words are not in its passage, as a paraphrase's are not."""
        return [
            {
                "title": self.corpus.titles.get((hit.kind, hit.source_id), ""),
                "text": self.texts[self.index_of[hit.chunk_id]],
                "fused_score": hit.fused_score / fusion.best_score,
                "vector_rank": hit.ranks.get("vector"),
                "vector_score": hit.scores.get("vector"),
                "bm25_rank": hit.ranks.get("bm25"),
                "bm25_score": hit.scores.get("bm25"),
            }
            for hit in hits
        ]


def _without(lists: Lists, sources: frozenset[Source]) -> Lists:
    return [(name, [item for item in ranked if (item[2], item[3]) not in sources]) for name, ranked in lists]


def _rank_of(lists: Lists, fusion: Fusion, sources: frozenset[Source]) -> int | None:
    ranked = best_per_source(fuse(lists, fusion), TOP)
    return next((n for n, hit in enumerate(ranked, 1) if (hit.kind, hit.source_id) in sources), None)


def _scores(ranks: Sequence[int | None]) -> dict[str, float]:
    count = max(1, len(ranks))
    return {
        "mrr": round(sum(1.0 / rank for rank in ranks if rank) / count, 4),
        "ndcg": round(sum(1.0 / math.log2(rank + 1) for rank in ranks if rank) / count, 4),
        "hit_at_1": round(sum(rank == 1 for rank in ranks) / count, 4),
    }


def choose_fusion(grid: dict[Fusion, dict[str, float]]) -> Fusion:
    """The best MRR; among fusions within TIE of it, the most balanced one (a hybrid is the safer bet)."""
    best = max(scores["mrr"] for scores in grid.values())
    close = [fusion for fusion, scores in grid.items() if scores["mrr"] >= best - TIE]
    return min(close, key=lambda f: (abs(f.vector_weight - 0.5), FUSION_METHODS.index(f.method), -grid[f]["mrr"]))


def run_self_test(
    corpus: SelfTestCorpus,
    embedder: Embedder,
    approved: Sequence[tuple[str, Source]] = (),
    max_queries: int = MAX_QUERIES,
) -> SelfTest:
    """Pseudo-queries (masked) and approved pairs (as asked) → the fusion grid → the confidence cases.

    The fusion is chosen on the masked run alone. The confidence model learns from the masked run (a question
    sharing none of its exact words with the passage) and from the same questions unmasked (sharing all):
    real questions fall between the two, so the model is fitted across that whole range.
    """
    queries = pseudo_queries(corpus, max_queries)
    known = set(corpus.sources)
    queries += [PseudoQuery(question, source, masked=False) for question, source in approved if source in known]
    queries = with_duplicates(corpus, queries)
    if len(queries) < MIN_QUERIES:
        return SelfTest(DEFAULT_FUSION, {"queries": len(queries), "note": "too few documents to choose"}, [])
    retrievers = _Retrievers(corpus, masked_texts(corpus, queries), embedder)
    lists = retrievers.lists([query.text for query in queries])
    grid = {
        Fusion(method, weight): _scores(
            [_rank_of(found, Fusion(method, weight), q.answers) for q, found in zip(queries, lists, strict=True)]
        )
        for method in FUSION_METHODS
        for weight in VECTOR_WEIGHTS
    }
    fusion = choose_fusion(grid)
    unmasked = _Retrievers(corpus, list(corpus.texts), embedder)
    samples: list[tuple[dict[str, float], int]] = []
    for run, run_lists in ((retrievers, lists), (unmasked, unmasked.lists([query.text for query in queries]))):
        for query, found in zip(queries, run_lists, strict=True):
            hits = best_per_source(fuse(found, fusion), 5)
            right = bool(hits) and (hits[0].kind, hits[0].source_id) in query.answers
            samples.append((evidence_features(query.text, run.evidence(hits, fusion)), int(right)))
            held_out = best_per_source(fuse(_without(found, query.answers), fusion), 5)
            samples.append((evidence_features(query.text, run.evidence(held_out, fusion)), 0))
    off_topic = off_topic_questions()
    for question, found in zip(off_topic, retrievers.lists(off_topic), strict=True):
        samples.append(
            (evidence_features(question, retrievers.evidence(best_per_source(fuse(found, fusion), 5), fusion)), 0)
        )
    report = {
        "queries": len(queries),
        "approved_pairs": sum(not query.masked for query in queries),
        **grid[fusion],
        "bm25_mrr": grid[Fusion("rrf", 0.0)]["mrr"],
        "vector_mrr": grid[Fusion("rrf", 1.0)]["mrr"],
        "grid": [{"method": f.method, "vector_weight": f.vector_weight, **scores} for f, scores in grid.items()],
    }
    return SelfTest(fusion, report, samples)


def load_corpus(factory: sessionmaker[Session], settings: Settings) -> tuple[SelfTestCorpus, tuple[int, int]]:
    """Every chunk the database and Chroma both hold and search may cite (no quarantined ones), with titles, and
    the chunk census it was read at; the read transaction ends before Chroma is asked for vectors."""
    with factory() as session:
        census = chunk_census(session)
        rows = session.execute(
            select(KbChunk.id, KbChunk.text, KbChunk.source_kind, KbChunk.source_id)
            .where(~AWAITING_REVIEW)
            .order_by(KbChunk.id)
        ).all()
        titles = {
            ("kb", doc_id): title or "" for doc_id, title in session.execute(select(KbDocument.id, KbDocument.title))
        }
    vectors = get_runtime(settings).vectors.vectors_of([str(row.id) for row in rows])
    kept = [row for row in rows if str(row.id) in vectors]
    dimension = len(next(iter(vectors.values()))) if vectors else 1
    corpus = SelfTestCorpus(
        ids=[str(row.id) for row in kept],
        texts=[row.text for row in kept],
        sources=[(row.source_kind, row.source_id) for row in kept],
        vectors=np.vstack([vectors[str(row.id)] for row in kept]) if kept else np.zeros((0, dimension), np.float32),
        titles=titles,
    )
    return corpus, census


def calibrate(factory: sessionmaker[Session], settings: Settings, feedback: Sequence[Verdict] = ()) -> Calibration:
    """Run the self-test on the knowledge base, fit the confidence model, store both, and return them.

    `feedback` is the operators' verdicts on drafts (the engine reads them: engine.analysers.confidence); the
    self-test and the fit run outside any transaction, the result is stored in its own."""
    corpus, census = load_corpus(factory, settings)
    approved = [
        (question, (str(evidence[0]["source_kind"]), int(evidence[0]["source_id"])))
        for question, evidence, label in feedback
        if label and "source_kind" in evidence[0]
    ]
    test = run_self_test(corpus, get_runtime(settings).embedder, approved)
    labelled = [(evidence_features(question, evidence), label) for question, evidence, label in feedback]
    model = fit_confidence([*test.samples, *labelled], feedback=len(labelled)) if test.samples else None
    calibration = Calibration(
        fusion=test.fusion,
        self_test=test.report,
        confidence=model.to_record() if model else None,
        chunks=census[0],
        max_chunk_id=census[1],
    )
    with transaction(factory) as session:
        save_calibration(session, calibration)
    log.info(
        "knowledge base calibrated: %s; self-test %s queries, MRR %s; confidence fitted on %s cases",
        test.fusion.describe(),
        test.report.get("queries"),
        test.report.get("mrr"),
        model.samples if model else 0,
    )
    return calibration
