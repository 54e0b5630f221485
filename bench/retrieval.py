"""Retrieval benchmark on the EMQA e-manual data: quality (BM25 / vector / hybrid) and speed at scale.

Usage: .venv/bin/python bench/retrieval.py /work/shared/data [--skip-100k] [--cache DIR]

The Smart TV manual is the knowledge base, each of its sections one document; the 32 other manuals are
distractors. A question's relevant sections: those whose title is the last part of its hierarchy path,
else those whose text contains its answer. Figures are printed; nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.settings import load_settings
from kb.chunk import chunk_sections
from kb.embed import get_embedder, go_offline, model_name
from kb.extract import Section
from kb.keyword import KeywordIndex, KeywordRecord, tokenize
from kb.search import best_per_source, deterministic_queries, retrieve
from kb.store import KbRuntime, VectorStore, make_chroma_client

TV_CORPUS = "emanual-qa/smart_tv_remote_manual_corpus.json"
TV_QUESTIONS = "emanual-qa/smart_tv_qa/*.json"
DISTRACTORS = "emanual-qa/manuals/*.json"
DISTRACTOR_OFFSET = 100_000
MODES = {"BM25 only": ("bm25",), "vector only": ("vector",), "hybrid (RRF k=60)": ("vector", "bm25")}
FIELD = re.compile(r'^\s*"(Section Hierarchy|Link|Question|Answer)"\s*:\s*"(.*)"\s*,?\s*$')


@dataclass
class Question:
    hierarchy: str
    question: str
    answer: str
    relevant: set[int] = field(default_factory=set)
    rule: str = "unlabelled"


@dataclass
class Corpus:
    """Chunks with their source (section) ids; vectors filled in by `embed`."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    vectors: np.ndarray | None = None


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def load_sections(path: Path) -> list[tuple[str, str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(str(section.get("title", "")), " ".join(section.get("text", []))) for section in data.values()]


def load_questions(data_dir: Path) -> list[Question]:
    """The question files are hand-edited, invalid JSON: read them field by field, one per line."""
    questions: list[Question] = []
    for name in sorted(data_dir.glob(TV_QUESTIONS)):
        current: dict[str, str] = {}
        for line in Path(name).read_text(encoding="utf-8", errors="replace").splitlines():
            match = FIELD.match(line)
            if not match:
                continue
            key, value = match.group(1), match.group(2).replace('\\"', '"')
            if key == "Section Hierarchy" and current:
                questions.append(_question(current))
                current = {}
            current[key] = value
        if current:
            questions.append(_question(current))
    return [q for q in questions if q.question]


def _question(fields: dict[str, str]) -> Question:
    return Question(fields.get("Section Hierarchy", ""), fields.get("Question", ""), fields.get("Answer", ""))


def label(questions: list[Question], sections: list[tuple[str, str]]) -> dict[str, int]:
    """Title rule first, answer-text rule where no title matches; returns how many each rule labelled."""
    by_title: dict[str, set[int]] = {}
    for index, (title, _) in enumerate(sections):
        by_title.setdefault(normalise(title), set()).add(index)
    texts = [normalise(f"{title} {text}") for title, text in sections]
    counts = {"title": 0, "answer": 0, "unlabelled": 0}
    for question in questions:
        last = normalise(question.hierarchy.split(">")[-1])
        if last in by_title:
            question.relevant, question.rule = set(by_title[last]), "title"
        else:
            answer = normalise(question.answer)
            for probe in (answer, answer[:80]):
                hits = {i for i, text in enumerate(texts) if probe and probe in text}
                if hits:
                    question.relevant, question.rule = hits, "answer"
                    break
        counts[question.rule] += 1
    return counts


def chunk_corpus(sections: list[tuple[str, str]], offset: int, corpus: Corpus) -> None:
    """Chunked exactly as the product does, with the default KB_CHUNK_SIZE / KB_CHUNK_OVERLAP."""
    defaults = load_settings(_env_file=None)
    for index, (title, text) in enumerate(sections):
        sections_in = [Section(f"{title}\n{text}", {"section": title})]
        for chunk in chunk_sections(
            sections_in, chunk_size=defaults.KB_CHUNK_SIZE, chunk_overlap=defaults.KB_CHUNK_OVERLAP
        ):
            corpus.ids.append(f"{offset + index}:{chunk.index}")
            corpus.texts.append(chunk.text)
            corpus.sources.append(offset + index)


def embed(corpus: Corpus, embed_fn: Callable[[Sequence[str]], np.ndarray], cache: Path | None) -> float:
    """Vectors for every chunk, cached on disk by content; returns seconds spent embedding (0 if cached)."""
    digest = hashlib.sha256("\x00".join(corpus.texts).encode()).hexdigest()[:16]
    cached = cache / f"vectors-{digest}.npy" if cache else None
    if cached and cached.exists():
        corpus.vectors = np.load(cached)
        return 0.0
    started = time.perf_counter()
    corpus.vectors = embed_fn(corpus.texts)
    elapsed = time.perf_counter() - started
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, corpus.vectors)
    return elapsed


def build(runtime: KbRuntime, corpus: Corpus, start: int = 0, end: int | None = None) -> tuple[float, float]:
    """Index chunks [start:end] into Chroma and BM25; returns (seconds in Chroma, seconds in BM25)."""
    assert corpus.vectors is not None
    end = len(corpus.ids) if end is None else end
    t0 = time.perf_counter()
    for lo in range(start, end, 2000):
        hi = min(lo + 2000, end)
        runtime.vectors.upsert(
            corpus.ids[lo:hi],
            corpus.vectors[lo:hi],
            [{"kind": "kb", "source_id": corpus.sources[i], "team": "", "date": 0, "hash": ""} for i in range(lo, hi)],
        )
    t1 = time.perf_counter()
    runtime.keywords.add(
        (
            KeywordRecord.from_text(corpus.ids[i], "", "kb", corpus.sources[i], "", 0, corpus.texts[i])
            for i in range(start, end)
        ),
        persist=False,
    )
    return t1 - t0, time.perf_counter() - t1


def make_runtime(root: Path, name: str) -> KbRuntime:
    settings = load_settings(_env_file=None, DATA_DIR=root, EMBEDDINGS_PROVIDER="local")
    store = VectorStore(make_chroma_client(settings), name, model_name(settings))
    return KbRuntime((name,), store, KeywordIndex(None), model_name(settings), settings, threading.RLock())


def evaluate(
    runtime: KbRuntime, questions: list[Question], retrievers: tuple[str, ...], multi: bool
) -> dict[str, float]:
    ndcg, recall, mrr = [], [], []
    for question in questions:
        queries = deterministic_queries(question.question) if multi else [question.question]
        hits = best_per_source(retrieve(runtime, queries, candidates=50, retrievers=retrievers), 10)
        ranked = [hit.source_id for hit in hits]
        gains = [1.0 if source in question.relevant else 0.0 for source in ranked]
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(question.relevant), 10)))
        ndcg.append(sum(g / math.log2(i + 2) for i, g in enumerate(gains)) / ideal)
        recall.append(len(set(ranked) & question.relevant) / len(question.relevant))
        mrr.append(next((1.0 / (i + 1) for i, g in enumerate(gains) if g), 0.0))
    return {"nDCG@10": statistics.fmean(ndcg), "Recall@10": statistics.fmean(recall), "MRR@10": statistics.fmean(mrr)}


def latency(
    runtime: KbRuntime, queries: list[str], retrievers: tuple[str, ...] = ("vector", "bm25")
) -> tuple[float, float]:
    """p50 and p95 in ms of one full hybrid search: rewrites, query embedding, Chroma, BM25, fusion."""
    timings = []
    for query in queries:
        started = time.perf_counter()
        best_per_source(retrieve(runtime, deterministic_queries(query), candidates=50, retrievers=retrievers), 10)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return timings[len(timings) // 2], timings[min(len(timings) - 1, int(len(timings) * 0.95))]


def percentile_ms(timings: list[float]) -> tuple[float, float]:
    timings = sorted(timings)
    return timings[len(timings) // 2] * 1000, timings[min(len(timings) - 1, int(len(timings) * 0.95))] * 1000


def scaled(pool: Corpus, target: int) -> Corpus:
    """`target` chunks from the distractor pool: copy c of a chunk gets a 'copy c' tag in its text and its
    vector plus small noise, so neither index sees exact duplicates (there is not 100k chunks of real text)."""
    assert pool.vectors is not None
    rng = np.random.default_rng(7)
    corpus = Corpus()
    vectors = []
    copy = 0
    while len(corpus.ids) < target:
        take = min(len(pool.ids), target - len(corpus.ids))
        for i in range(take):
            corpus.ids.append(f"c{copy}:{pool.ids[i]}")
            corpus.texts.append(pool.texts[i] if copy == 0 else f"{pool.texts[i]} copy{copy}")
            corpus.sources.append(pool.sources[i] + copy * 1_000_000)
        block = pool.vectors[:take]
        if copy:
            block = block + rng.normal(0, 0.02, block.shape).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors.append(block)
        copy += 1
    corpus.vectors = np.vstack(vectors).astype(np.float32)
    return corpus


def compare_bm25_engines(corpus: Corpus, queries: list[str]) -> list[tuple[str, float, float, float]]:
    """Build time and query p50/p95 (ms) for rank-bm25, bm25s and ours on the same tokens."""
    results = []
    tokens = [tokenize(text) for text in corpus.texts]
    probe = [tokenize(q) for q in queries]
    from rank_bm25 import BM25Okapi

    started = time.perf_counter()
    okapi = BM25Okapi(tokens)
    build_s = time.perf_counter() - started
    timings = []
    for query in probe[:30]:
        started = time.perf_counter()
        scores = okapi.get_scores(query)
        np.argpartition(-scores, 50)[:50]
        timings.append(time.perf_counter() - started)
    results.append(("rank-bm25 0.2.2", build_s, *percentile_ms(timings)))
    try:
        import bm25s
    except ImportError:
        results.append(("bm25s (not installed)", float("nan"), float("nan"), float("nan")))
    else:
        started = time.perf_counter()
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        build_s = time.perf_counter() - started
        timings = []
        for query in probe:
            started = time.perf_counter()
            retriever.retrieve([query], k=50, show_progress=False, n_threads=1)
            timings.append(time.perf_counter() - started)
        results.append((f"bm25s {bm25s.__version__}", build_s, *percentile_ms(timings)))
    ours = KeywordIndex(None)
    started = time.perf_counter()
    ours.add(
        (KeywordRecord(corpus.ids[i], "", "kb", 0, "", 0, _counts(tokens[i])) for i in range(len(tokens))),
        persist=False,
    )
    build_s = time.perf_counter() - started
    timings = []
    for query in queries:
        started = time.perf_counter()
        ours.search(query, 50)
        timings.append(time.perf_counter() - started)
    results.append(("kb.keyword (incremental)", build_s, *percentile_ms(timings)))
    return results


def _counts(tokens: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for token in tokens:
        counts[token] = counts.get(token, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path, help="the shared data folder (holds emanual-qa/)")
    parser.add_argument("--skip-100k", action="store_true", help="only the quality table and the 10k scale")
    parser.add_argument("--quality-only", action="store_true", help="only the quality table")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "kb-bench-cache",
        help="where chunk vectors are cached between runs",
    )
    args = parser.parse_args()
    go_offline()
    embedder = get_embedder(load_settings(_env_file=None, EMBEDDINGS_PROVIDER="local"))

    tv_sections = load_sections(args.data_dir / TV_CORPUS)
    questions = load_questions(args.data_dir)
    counts = label(questions, tv_sections)
    labelled = [q for q in questions if q.relevant]
    print(
        f"Questions: {len(questions)} read; labelled by title {counts['title']}, by answer text {counts['answer']}, "
        f"unlabelled {counts['unlabelled']} (left out)"
    )

    tv = Corpus()
    chunk_corpus(tv_sections, 0, tv)
    pool = Corpus()
    for offset, name in enumerate(sorted(args.data_dir.glob(DISTRACTORS))):
        chunk_corpus(load_sections(Path(name)), DISTRACTOR_OFFSET * (offset + 1), pool)
    print(
        f"Chunks: Smart TV {len(tv.ids)} from {len(tv_sections)} sections; distractors {len(pool.ids)} from 32 manuals"
    )

    sample = pool.texts[:1000]
    started = time.perf_counter()
    embedder.embed_documents(sample)
    embed_rate = len(sample) / (time.perf_counter() - started)
    print(f"Embedding throughput (MiniLM, 2 cores, batch 32, fresh): {embed_rate:,.0f} chunks/s")
    embed(tv, embedder.embed_documents, args.cache)
    embed(pool, embedder.embed_documents, args.cache)

    with tempfile.TemporaryDirectory() as root:
        runtime = make_runtime(Path(root), "bench_quality")
        build(runtime, tv)
        build(runtime, pool)
        print(
            f"\nQuality: {len(labelled)} labelled questions, Smart TV manual + {len(pool.ids):,} distractor chunks "
            f"({len(runtime.keywords):,} chunks indexed), top 10 distinct sections"
        )
        print(f"{'retrieval':<34}{'nDCG@10':>9}{'Recall@10':>11}{'MRR@10':>9}")
        for multi in (True, False):
            for mode, retrievers in MODES.items():
                scores = evaluate(runtime, labelled, retrievers, multi)
                label_text = f"{mode}{', 1 query' if not multi else ''}"
                print(f"{label_text:<34}{scores['nDCG@10']:>9.3f}{scores['Recall@10']:>11.3f}{scores['MRR@10']:>9.3f}")

        if args.quality_only:
            return
        queries = [q.question for q in questions]
        print("\nSpeed (2 cores, no LLM; a query = deterministic rewrites + query embedding + Chroma + BM25 + RRF)")
        print(
            f"{'chunks':>8}  {'index chunks/s (Chroma+BM25)':>29}  {'end-to-end chunks/s':>20}  "
            f"{'hybrid p50 ms':>13}  {'hybrid p95 ms':>13}  {'BM25-only p95':>13}"
        )
        for target in (10_000, 100_000):
            if target == 100_000 and args.skip_100k:
                continue
            corpus = scaled(pool, target) if target > len(pool.ids) else _head(pool, target)
            scale_runtime = make_runtime(Path(root), f"bench_{target}")
            chroma_s, bm25_s = build(scale_runtime, corpus)
            index_rate = target / (chroma_s + bm25_s)
            combined = 1 / (1 / embed_rate + 1 / index_rate)
            p50, p95 = latency(scale_runtime, queries)
            _, bm25_p95 = latency(scale_runtime, queries, ("bm25",))
            print(
                f"{target:>8,}  {index_rate:>29,.0f}  {combined:>20,.0f}  {p50:>13.1f}  {p95:>13.1f}  {bm25_p95:>13.1f}"
            )
            if target == 100_000:
                print("\nBM25 engines at 100,000 chunks (same tokens; one query, top 50)")
                print(f"{'engine':<28}{'build s':>9}{'p50 ms':>9}{'p95 ms':>9}")
                for name, build_s, e50, e95 in compare_bm25_engines(corpus, queries[:100]):
                    print(f"{name:<28}{build_s:>9.1f}{e50:>9.1f}{e95:>9.1f}")
            scale_runtime.vectors.drop()


def _head(pool: Corpus, target: int) -> Corpus:
    assert pool.vectors is not None
    return Corpus(pool.ids[:target], pool.texts[:target], pool.sources[:target], pool.vectors[:target])


if __name__ == "__main__":
    main()
