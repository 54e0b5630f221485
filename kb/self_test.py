"""The knowledge base tests its own retrieval: it picks its fusion and fits the desk's confidence model.

Questions are made from the sentences in each section's body, reworded (and real questions people answered
join them). They are asked in two styles that bracket how customers write: PARAPHRASED, with their sentence cut
out of its source so only the rest of the section can find it (this favours vectors), and in the DOCUMENTS'
WORDS, against the sections as they are (this favours keywords, as expert questions written from a manual do).
Real answered questions are a third style that weighs more as they accumulate. The single retriever best over
the styles is kept unless a hybrid beats it on every style beyond the noise. The same runs, plus off-topic
questions and questions with their own document held out, label the confidence model's training cases.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import transaction
from engine.core.models import KbChunk, KbDocument
from engine.core.settings import Settings
from kb.calibration import (
    DEFAULT_FUSION,
    FUSION_METHODS,
    Calibration,
    Fusion,
    chunk_census,
    save_calibration,
    stored_calibration,
)
from kb.confidence import ConfidenceModel, Verdict, evidence_features, fit_confidence, recalibrated
from kb.embed import Embedder
from kb.keyword import STOPWORDS, TOKEN, KeywordIndex, KeywordRecord, tokenize
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
MIN_SENTENCE_TERMS = 4
QUESTION_WORDS = 12
MIN_GAIN = 0.01
"""A hybrid replaces the best single retriever only if it wins by more than the self-test's noise, at least this."""
PARAPHRASED = "paraphrased"
DOCUMENTS_WORDS = "documents' words"
ANSWERED = "answered by people"
REAL_FULL_WEIGHT = 100
"""Real answered questions weigh as much as all the made question styles together from this many on."""
NOISE_ERRORS = 2.0
"""The self-test's noise: this many standard errors of the MRR difference (the test's questions are easier for
keywords than real paraphrases are, so a hybrid must win clearly to be trusted)."""
SENTENCE_END = re.compile(r"(?<=[.!?])\s")
HEADING_MAX = 120
REWORDING = {
    "select": "choose",
    "press": "push",
    "tap": "touch",
    "display": "screen",
    "screen": "display",
    "configure": "set",
    "settings": "options",
    "setting": "option",
    "enable": "turn",
    "disable": "stop",
    "activate": "start",
    "delete": "erase",
    "remove": "take",
    "connect": "plug",
    "disconnect": "unplug",
    "install": "put",
    "purchase": "buy",
    "error": "problem",
    "unable": "cannot",
    "automatically": "itself",
    "adjust": "change",
    "modify": "change",
    "increase": "raise",
    "decrease": "lower",
    "verify": "check",
    "ensure": "make sure",
    "launch": "open",
    "device": "gadget",
    "application": "app",
    "information": "info",
    "approximately": "about",
    "additional": "more",
    "receive": "get",
    "obtain": "get",
    "require": "need",
    "requires": "needs",
    "required": "needed",
    "assistance": "help",
    "navigate": "go",
    "utilise": "use",
    "utilize": "use",
}
"""Words a manual uses → the plainer word a customer would type: a paraphrase changes some terms, not all."""
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
class AnsweredQuestion:
    """A real question and a source that answered it (a person approved an answer citing it): the self-test
    asks it as asked, beside the questions it makes from the documents."""

    question: str
    source: Source


@dataclass(frozen=True)
class PseudoQuery:
    """A question with the sources that answer it; `cut` is the sentence it was made from, cut out of its
    source during the test ("" for a real question, asked against the knowledge base as it is)."""

    text: str
    source: Source
    cut: str = ""
    relevant: frozenset[Source] = frozenset()

    @property
    def masked(self) -> bool:
        return bool(self.cut)

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


def paraphrase_questions(corpus: SelfTestCorpus, max_queries: int = MAX_QUERIES) -> list[PseudoQuery]:
    """Questions made from the sentences in a section's body, reworded, never its heading's words in order.

    Customers ask about what a section says, in their own words; a question built from the heading favours
    keywords (the heading's terms recur all through its body) and chose the wrong fusion on paraphrased help
    threads. Sources are taken in a fixed hash order and their sentences in turn (one from each source before
    a second from any), so a large knowledge base is sampled evenly; a question is kept only where its source,
    once its sentence is cut out, still has MIN_LEFT terms to be found by."""
    chunks: dict[Source, list[int]] = defaultdict(list)
    for index, source in enumerate(corpus.sources):
        chunks[source].append(index)
    order = sorted(chunks, key=lambda source: hashlib.sha256(f"{source[0]}:{source[1]}".encode()).digest())
    left = {source: len(tokenize(" ".join(corpus.texts[index] for index in chunks[source]))) for source in order}
    candidates = {source: _section_paraphrases(corpus, source, chunks[source]) for source in order}
    queries: list[PseudoQuery] = []
    for turn in range(max(map(len, candidates.values()), default=0)):
        for source in order:
            if turn >= len(candidates[source]) or len(queries) >= max_queries:
                continue
            question, sentence = candidates[source][turn]
            cut = len(tokenize(sentence))
            if left[source] - cut >= MIN_LEFT:
                queries.append(PseudoQuery(question, source, cut=sentence))
                left[source] -= cut
    return queries


def _section_paraphrases(corpus: SelfTestCorpus, source: Source, indexes: list[int]) -> list[tuple[str, str]]:
    """(question, the body sentence it rewords) for a source's sentences, once each, in document order."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    for position, index in enumerate(indexes):
        lines = [line.strip() for line in corpus.texts[index].splitlines() if line.strip()]
        heading_line = lines[0] if len(lines) > 1 and len(lines[0]) <= HEADING_MAX else ""
        headings = [heading_line, corpus.titles.get(source, "") if position == 0 else ""]
        body = " ".join(lines[1:] if heading_line else lines)
        for sentence in SENTENCE_END.split(body):
            sentence = sentence.strip()
            if len(tokenize(sentence)) < MIN_SENTENCE_TERMS or sentence.lower() in seen:
                continue
            seen.add(sentence.lower())
            question = reword(sentence, [heading for heading in headings if heading])
            if len(tokenize(question)) >= 2:
                found.append((question, sentence))
    return found


def reword(sentence: str, headings: Sequence[str] = ()) -> str:
    """A customer's version of a sentence: its first QUESTION_WORDS words (no stop word left dangling), common
    terms swapped for the words people use (REWORDING), and no heading's exact word sequence."""
    words = [REWORDING.get(word.lower(), word) for word in TOKEN.findall(sentence)][:QUESTION_WORDS]
    while words and words[-1].lower() in STOPWORDS:
        words.pop()
    question = " ".join(words)
    for heading in headings:
        sequence = " ".join(TOKEN.findall(heading))
        if sequence:
            question = re.sub(rf"\b{re.escape(sequence)}\b", " ", question, flags=re.IGNORECASE)
    return " ".join(question.split())


def answered_questions(pairs: Sequence[AnsweredQuestion], known: set[Source]) -> list[PseudoQuery]:
    """Real questions, each with every source a person's approved answer to it drew on (as asked, nothing cut)."""
    sources: dict[str, set[Source]] = defaultdict(set)
    for pair in pairs:
        text = " ".join(pair.question.split())
        if text and pair.source in known:
            sources[text].add(pair.source)
    return [PseudoQuery(text, min(found), relevant=frozenset(found)) for text, found in sources.items()]


def with_duplicates(corpus: SelfTestCorpus, queries: Sequence[PseudoQuery]) -> list[PseudoQuery]:
    """Each question made from a sentence, with every source whose text holds that sentence; too generic ones
    (in more than MAX_RELEVANT sources, say a boilerplate warning) are dropped."""
    lowered = [text.lower() for text in corpus.texts]
    kept = []
    for query in queries:
        if not query.masked:
            kept.append(query)
            continue
        needle = query.cut.lower()
        relevant = frozenset(corpus.sources[i] for i, text in enumerate(lowered) if needle in text) | {query.source}
        if len(relevant) <= MAX_RELEVANT:
            kept.append(replace(query, relevant=relevant))
    return kept


def masked_texts(corpus: SelfTestCorpus, queries: Sequence[PseudoQuery]) -> list[str]:
    """Each chunk with the sentences its questions were made from cut out (case-insensitive), so a question
    finds its source by the rest of the section, as a paraphrase does."""
    by_source: dict[Source, list[str]] = defaultdict(list)
    for query in queries:
        if query.masked:
            for source in query.answers:
                by_source[source].append(query.cut)
    texts = list(corpus.texts)
    for index, source in enumerate(corpus.sources):
        for text in by_source.get(source, []):
            texts[index] = re.sub(re.escape(text), " ", texts[index], flags=re.IGNORECASE)
    return texts


class _Retrievers:
    """BM25 over the masked texts and exact cosine over their vectors: what retrieval would see."""

    def __init__(
        self, corpus: SelfTestCorpus, texts: list[str], embedder: Embedder, asked: dict[str, np.ndarray]
    ) -> None:
        self.corpus, self.texts, self.embedder, self.asked = corpus, texts, embedder, asked
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
        """Both retrievers' ranked lists for every phrasing of every question; each phrasing is embedded once per
        self-test (`asked` is shared by its masked and unmasked runs)."""
        phrasings = [deterministic_queries(question) for question in questions]
        flat = [phrase for group in phrasings for phrase in group]
        new = list(dict.fromkeys(phrase for phrase in flat if phrase not in self.asked))
        if new:
            embedded = self.embedder.embed_queries(new)
            embedded = embedded / np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-9)
            self.asked.update(zip(new, embedded, strict=True))
        query_vectors = np.array([self.asked[phrase] for phrase in flat]).reshape(len(flat), self.vectors.shape[1])
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


def is_single(fusion: Fusion) -> bool:
    """Vectors alone or BM25 alone: all the weight on one retriever."""
    return fusion.vector_weight in (0.0, 1.0)


Grid = dict[Fusion, dict[str, float]]


def best_single(grid: Grid) -> Fusion:
    """The single retriever with the best MRR (then nDCG); a tie goes to vectors, which paraphrases favour."""
    singles = [fusion for fusion in grid if is_single(fusion)]
    return max(singles, key=lambda f: (grid[f]["mrr"], grid[f]["ndcg"], f.vector_weight, f.method == "rrf"))


def mean_grid(grids: dict[str, Grid], weights: dict[str, float]) -> Grid:
    """Each fusion's scores averaged over the question styles, each style counted by its weight."""
    total = sum(weights[style] for style in grids) or 1.0
    first = next(iter(grids.values()))
    return {
        fusion: {
            metric: round(sum(weights[style] * grid[fusion][metric] for style, grid in grids.items()) / total, 4)
            for metric in first[fusion]
        }
        for fusion in first
    }


def choose_fusion(grids: dict[str, Grid], noise: dict[str, float], weights: dict[str, float] | None = None) -> Fusion:
    """The single retriever with the best MRR over the question styles (weighted mean), unless a hybrid beats it
    on EVERY style: by more than that style's noise (at least MIN_GAIN) in MRR, losing no more than MIN_GAIN nDCG.

    The styles pull opposite ways: questions in the documents' own words favour keywords, paraphrases favour
    vectors, and which of the two a desk's customers write is not known from its documents. A hybrid that wins
    on one style and loses on the other lost to its best retriever on the benchmarks' real questions (Smart TV,
    S10, bike), so it must win on all of them to be trusted; otherwise the retriever best on average is kept."""
    weights = weights or dict.fromkeys(grids, 1.0)
    single = best_single(mean_grid(grids, weights))

    def beats_everywhere(fusion: Fusion) -> bool:
        return all(
            grid[fusion]["mrr"] - grid[single]["mrr"] > max(noise[style], MIN_GAIN)
            and grid[fusion]["ndcg"] >= grid[single]["ndcg"] - MIN_GAIN
            for style, grid in grids.items()
        )

    winners = [fusion for fusion in next(iter(grids.values())) if not is_single(fusion) and beats_everywhere(fusion)]
    if not winners:
        return single
    return max(winners, key=lambda f: min(grid[f]["mrr"] - grid[single]["mrr"] for grid in grids.values()))


def paired_noise(first: Sequence[int | None], second: Sequence[int | None]) -> float:
    """NOISE_ERRORS standard errors of the MRR difference between two fusions on the same questions."""
    differences = np.array(
        [(1.0 / a if a else 0.0) - (1.0 / b if b else 0.0) for a, b in zip(first, second, strict=True)]
    )
    if len(differences) < 2:
        return 1.0
    return NOISE_ERRORS * float(differences.std(ddof=1) / math.sqrt(len(differences)))


def style_weights(styles: dict[str, Sequence[PseudoQuery]]) -> dict[str, float]:
    """Each style made from the documents counts once; real answered questions count more as they accumulate,
    up to as much as all the made ones together at REAL_FULL_WEIGHT questions (they are how this desk is asked)."""
    made = sum(1 for style in styles if style != ANSWERED)
    weights = {style: 1.0 for style in styles if style != ANSWERED}
    if ANSWERED in styles:
        weights[ANSWERED] = made * min(1.0, len(styles[ANSWERED]) / REAL_FULL_WEIGHT)
    return weights


def run_self_test(
    corpus: SelfTestCorpus,
    embedder: Embedder,
    answered: Sequence[AnsweredQuestion] = (),
    max_queries: int = MAX_QUERIES,
) -> SelfTest:
    """Questions made from the documents and real answered questions → a fusion grid per question style → the
    choice → the confidence cases.

    The made questions are asked twice: PARAPHRASED (their sentence cut out of its source, found by the rest of
    the section as a paraphrase is) and in the DOCUMENTS' WORDS (the sections as they are, as an expert who read
    the manual asks); real questions (ANSWERED, once there are MIN_QUERIES) are asked against the documents as
    they are. The confidence model learns from both runs: real questions fall between the two.
    """
    made = paraphrase_questions(corpus, max_queries)
    real = answered_questions(answered, set(corpus.sources))
    queries = with_duplicates(corpus, made + real)
    if len(queries) < MIN_QUERIES:
        return SelfTest(DEFAULT_FUSION, {"queries": len(queries), "note": "too few documents to choose"}, [])
    asked: dict[str, np.ndarray] = {}
    retrievers = _Retrievers(corpus, masked_texts(corpus, queries), embedder, asked)
    unmasked = _Retrievers(corpus, list(corpus.texts), embedder, asked)
    texts = [query.text for query in queries]
    lists, open_lists = retrievers.lists(texts), unmasked.lists(texts)
    styles: dict[str, list[tuple[PseudoQuery, Lists]]] = {
        PARAPHRASED: [(query, found) for query, found in zip(queries, lists, strict=True) if query.masked],
        DOCUMENTS_WORDS: [(query, found) for query, found in zip(queries, open_lists, strict=True) if query.masked],
    }
    asked_by_people = [(query, found) for query, found in zip(queries, open_lists, strict=True) if not query.masked]
    if len(asked_by_people) >= MIN_QUERIES:
        styles[ANSWERED] = asked_by_people
    styles = {style: pairs for style, pairs in styles.items() if pairs}
    fusions = [Fusion(method, weight) for method in FUSION_METHODS for weight in VECTOR_WEIGHTS]
    ranks = {
        style: {fusion: [_rank_of(found, fusion, query.answers) for query, found in pairs] for fusion in fusions}
        for style, pairs in styles.items()
    }
    grids = {
        style: {fusion: _scores(found) for fusion, found in by_fusion.items()} for style, by_fusion in ranks.items()
    }
    weights = style_weights({style: [query for query, _ in pairs] for style, pairs in styles.items()})
    noise = {}
    for style, grid in grids.items():
        single, hybrid = best_single(grid), max((f for f in fusions if not is_single(f)), key=lambda f: grid[f]["mrr"])
        noise[style] = paired_noise(ranks[style][hybrid], ranks[style][single])
    fusion = choose_fusion(grids, noise, weights)
    samples: list[tuple[dict[str, float], int]] = []
    for run, run_lists in ((retrievers, lists), (unmasked, open_lists)):
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
    overall = mean_grid(grids, weights)
    report = {
        "queries": len(queries),
        "real_questions": len(real),
        **_summary(overall, fusion),
        "styles": {
            style: {
                "questions": len(styles[style]),
                "weight": round(weights[style], 2),
                "noise": round(noise[style], 4),
            }
            | _summary(grid, fusion)
            for style, grid in grids.items()
        },
        "grid": [{"method": f.method, "vector_weight": f.vector_weight, **scores} for f, scores in overall.items()],
    }
    return SelfTest(fusion, report, samples)


def _summary(grid: Grid, chosen: Fusion) -> dict[str, float]:
    """The chosen fusion's scores beside BM25 alone and vectors alone (each by its better combination of phrasings)."""
    bm25 = max((f for f in grid if f.vector_weight == 0.0), key=lambda f: grid[f]["mrr"])
    vectors = max((f for f in grid if f.vector_weight == 1.0), key=lambda f: grid[f]["mrr"])
    return {
        **grid[chosen],
        "bm25_mrr": grid[bm25]["mrr"],
        "bm25_ndcg": grid[bm25]["ndcg"],
        "vector_mrr": grid[vectors]["mrr"],
        "vector_ndcg": grid[vectors]["ndcg"],
    }


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


def calibrate(
    factory: sessionmaker[Session],
    settings: Settings,
    feedback: Sequence[Verdict] = (),
    answered: Sequence[AnsweredQuestion] = (),
    judged: int = 0,
) -> Calibration:
    """Run the self-test on the knowledge base, fit the confidence model, store both, and return them.

    `feedback` is the operators' verdicts on drafts (the newest of `judged` drafts people decided) and `answered`
    the real questions people answered from the knowledge base (the engine reads them: engine.analysers.confidence,
    engine.outcomes.teaching); the self-test and the fit run outside any transaction, the result is stored in its
    own."""
    corpus, census = load_corpus(factory, settings)
    test = run_self_test(corpus, get_runtime(settings).embedder, answered)
    labelled = [(evidence_features(question, evidence), label) for question, evidence, label in feedback]
    model = fit_confidence([*test.samples, *labelled], feedback=len(labelled)) if test.samples else None
    model = replace(recalibrated(model, labelled), judged=judged) if model else None
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
        "knowledge base calibrated: %s; self-test %s questions (%s real), MRR %s (BM25 alone %s, vectors alone %s); "
        "confidence fitted on %s cases",
        test.fusion.describe(),
        test.report.get("queries"),
        test.report.get("real_questions"),
        test.report.get("mrr"),
        test.report.get("bm25_mrr"),
        test.report.get("vector_mrr"),
        model.samples if model else 0,
    )
    return calibration


VERDICTS_TO_RESCALE = 5
"""New operators' verdicts since the confidence model last saw them that refit its second stage between calibrations."""


def rescale_on_verdicts(factory: sessionmaker[Session], judged: int, read: Callable[[], Sequence[Verdict]]) -> bool:
    """Refit the stored confidence model's second stage (kb/confidence.py's `recalibrated`) on the verdicts `read`
    returns once VERDICTS_TO_RESCALE drafts were judged since it last read them (`judged`: how many people decided
    in all, a count the caller takes cheaply); whether it was refitted and stored. Cheap (no self-test, no embedder,
    and no verdict read while too few are new), so the operators' scale follows their verdicts without waiting for
    the knowledge base to change by a tenth."""
    with factory() as session:
        calibration = stored_calibration(session)
    if calibration is None or not calibration.confidence:
        return False
    model = ConfidenceModel.from_record(calibration.confidence)
    if not model.samples or judged < model.judged + VERDICTS_TO_RESCALE:
        return False
    feedback = read()
    rescaled = recalibrated(
        model, [(evidence_features(question, evidence), label) for question, evidence, label in feedback]
    )
    with transaction(factory) as session:  # the count is kept even when too few of a kind to refit: read again later
        save_calibration(session, replace(calibration, confidence=replace(rescaled, judged=judged).to_record()))
    if rescaled is model:  # `recalibrated` returns the model itself when the verdicts are too few of a kind
        return False
    log.info(
        "confidence rescaled on %s operators' verdicts: slope %s, offset %s",
        rescaled.verdicts,
        rescaled.verdict_slope,
        rescaled.verdict_offset,
    )
    return True
