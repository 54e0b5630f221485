"""An incremental BM25 (Okapi) keyword index with an append-only log, so restarts replay instead of rebuild.

rank-bm25 and bm25s both score a frozen corpus: adding one ticket means rebuilding everything, and
rank-bm25 scores every document in a Python loop (too slow at 100k chunks, see bench/retrieval.py).
Here each term keeps a postings list; a query touches only its terms' postings, with numpy.
Deleted chunks are tombstoned and compacted away later. The database stays the ledger: `sync`
repairs the index from `kb_chunks` whenever another process changed it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Tuned on half of the EMQA questions (bench/retrieval.py): k1=0.75, b=0.3 beat the textbook 1.5 / 0.75 by
# about 0.05 nDCG@10 on the tuning half and the held-out half alike (and cost 0.009 on the S10 questions).
# Chunks are short and capped (KB_CHUNK_SIZE), so length normalisation matters little. Only term counts
# are stored, so changing these needs no reindex.
K1 = 0.75
B = 0.3
KINDS = {"kb": 1, "ticket": 2}
STOPWORDS = frozenset(
    " ".join(
        (
            "a an and are as at be by can could do does for from has have how i if in into is it its me my no",
            "not of on or our so that the their them then there these they this to was we were what when where",
            "which who why will with would you your yours am been being did doing had having he her here him his",
            "she should than too very just about above after again all any because before below between both",
            "down during each few further more most nor off once only other out over own same some such through",
            "under until up while",
        )
    ).split()
)
TOKEN = re.compile(r"\w+", re.UNICODE)


def stem(word: str) -> str:
    """A light suffix stripper: 'devices', 'device' and 'updating', 'updated', 'update' meet."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    return [
        stem(token)
        for token in TOKEN.findall(text.lower())
        if token not in STOPWORDS and (len(token) > 1 or token.isdigit())
    ]


@dataclass(frozen=True)
class KeywordRecord:
    """What the keyword index keeps per chunk: its terms and what the filters need, not its text."""

    chunk_id: str
    content_hash: str
    kind: str
    source_id: int
    team: str
    date: int
    terms: dict[str, int]

    @classmethod
    def from_text(
        cls, chunk_id: str, content_hash: str, kind: str, source_id: int, team: str, date: int, text: str
    ) -> KeywordRecord:
        return cls(chunk_id, content_hash, kind, source_id, team, date, dict(Counter(tokenize(text))))


class KeywordIndex:
    """BM25 over chunks; thread-safe; optionally persisted to a JSON-lines log under DATA_DIR."""

    def __init__(self, path: Path | None = None, *, k1: float = K1, b: float = B) -> None:
        self.path = path
        self.k1, self.b = k1, b
        self.synced_token: str | None = None
        self._lock = threading.RLock()
        self._clear()
        if path is not None and path.exists():
            self._replay()

    def _clear(self) -> None:
        self._slot_of: dict[str, int] = {}
        self._records: list[KeywordRecord | None] = []
        self._doclen: list[int] = []
        self._vocab: dict[str, int] = {}
        self._postings: list[tuple[list[int], list[int]]] = []
        self._df: list[int] = []
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._teams: dict[str, int] = {"": 0}
        self._arrays: dict[str, np.ndarray] | None = None
        self._alive = 0
        self._total_len = 0
        self._log_lines = 0

    def __len__(self) -> int:
        return self._alive

    def __contains__(self, chunk_id: str) -> bool:
        return chunk_id in self._slot_of

    def hashes(self) -> dict[str, str]:
        """Every indexed chunk id with its content hash, for comparing against the database."""
        with self._lock:
            return {
                chunk_id: record.content_hash
                for chunk_id, slot in self._slot_of.items()
                if (record := self._records[slot]) is not None
            }

    def add(self, records: Iterable[KeywordRecord], *, persist: bool = True) -> None:
        """Add or replace chunks; a replaced chunk's old terms are retracted first."""
        records = list(records)
        with self._lock:
            for record in records:
                self._remove_one(record.chunk_id)
                self._add_one(record)
            if persist:
                self._append([_record_line(record) for record in records])

    def remove(self, chunk_ids: Iterable[str], *, persist: bool = True) -> None:
        with self._lock:
            chunk_ids = [chunk_id for chunk_id in chunk_ids if chunk_id in self._slot_of]
            for chunk_id in chunk_ids:
                self._remove_one(chunk_id)
            if persist and chunk_ids:
                self._append([json.dumps({"r": chunk_ids})])
            if len(self._records) > 1000 and self._alive < len(self._records) // 2:
                self._compact_memory()

    def _add_one(self, record: KeywordRecord) -> None:
        slot = len(self._records)
        self._slot_of[record.chunk_id] = slot
        self._records.append(record)
        length = sum(record.terms.values())
        self._doclen.append(length)
        self._teams.setdefault(record.team, len(self._teams))
        for term, count in record.terms.items():
            term_id = self._vocab.get(term)
            if term_id is None:
                term_id = self._vocab[term] = len(self._postings)
                self._postings.append(([], []))
                self._df.append(0)
            slots, counts = self._postings[term_id]
            slots.append(slot)
            counts.append(count)
            self._df[term_id] += 1
            self._cache.pop(term_id, None)
        self._alive += 1
        self._total_len += length
        self._arrays = None

    def _remove_one(self, chunk_id: str) -> None:
        slot = self._slot_of.pop(chunk_id, None)
        if slot is None:
            return
        record = self._records[slot]
        self._records[slot] = None
        if record is None:
            return
        for term in record.terms:
            self._df[self._vocab[term]] -= 1
        self._alive -= 1
        self._total_len -= self._doclen[slot]
        self._arrays = None

    def _compact_memory(self) -> None:
        """Drop tombstones: rebuild postings from the kept term counts (no re-tokenising)."""
        live = [record for record in self._records if record is not None]
        log_lines = self._log_lines
        self._clear()
        self._log_lines = log_lines
        for record in live:
            self._add_one(record)

    def _filter_arrays(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            records = self._records
            self._arrays = {
                "alive": np.array([record is not None for record in records], dtype=bool),
                "doclen": np.asarray(self._doclen, dtype=np.float32),
                "kind": np.array([KINDS.get(r.kind, 0) if r else 0 for r in records], dtype=np.int8),
                "team": np.array([self._teams[r.team] if r else 0 for r in records], dtype=np.int32),
                "date": np.array([r.date if r else 0 for r in records], dtype=np.int64),
            }
        return self._arrays

    def _term_arrays(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get(term_id)
        if cached is None:
            slots, counts = self._postings[term_id]
            cached = self._cache[term_id] = (np.asarray(slots, dtype=np.int64), np.asarray(counts, dtype=np.float32))
        return cached

    def search(
        self,
        query: str,
        n: int,
        *,
        kinds: set[str] | None = None,
        team: str | None = None,
        since: int | None = None,
    ) -> list[tuple[str, float]]:
        """The n best chunks for `query` as (chunk id, BM25 score), best first; only chunks with a matching term."""
        terms = tokenize(query)
        with self._lock:
            term_ids = {self._vocab[term] for term in terms if term in self._vocab}
            if not term_ids or not self._alive:
                return []
            arrays = self._filter_arrays()
            total = self._alive
            avgdl = self._total_len / total if total else 1.0
            scores = np.zeros(len(self._records), dtype=np.float32)
            for term_id in term_ids:
                df = self._df[term_id]
                if df <= 0:
                    continue
                slots, counts = self._term_arrays(term_id)
                idf = math.log(1.0 + (total - df + 0.5) / (df + 0.5))
                norm = self.k1 * (1.0 - self.b + self.b * arrays["doclen"][slots] / avgdl)
                scores[slots] += idf * counts * (self.k1 + 1.0) / (counts + norm)
            mask = arrays["alive"] & (scores > 0)
            if kinds:
                mask &= np.isin(arrays["kind"], [KINDS.get(kind, -1) for kind in kinds])
            if team is not None:
                mask &= np.isin(arrays["team"], [0, self._teams.get(team, -1)])
            if since is not None:
                mask &= arrays["date"] >= since
            candidates = np.flatnonzero(mask)
            if candidates.size > n:
                candidates = candidates[np.argpartition(-scores[candidates], n - 1)[:n]]
            ordered = candidates[np.argsort(-scores[candidates], kind="stable")]
            return [(self._records[slot].chunk_id, float(scores[slot])) for slot in ordered]  # type: ignore[union-attr]

    def source_of(self, chunk_id: str) -> tuple[str, int] | None:
        """(kind, source id) of a chunk, for de-duplicating evidence by source without the database."""
        slot = self._slot_of.get(chunk_id)
        record = self._records[slot] if slot is not None else None
        return (record.kind, record.source_id) if record is not None else None

    def _append(self, lines: list[str]) -> None:
        if self.path is None or not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path) as handle:
            handle.write("".join(line + "\n" for line in lines))
        self._log_lines += len(lines)
        if self._log_lines > 3 * self._alive + 1000:
            self.save_snapshot()

    def save_snapshot(self) -> None:
        """Rewrite the log as just the live chunks, atomically, so replay stays proportional to the index."""
        if self.path is None:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            lines = [_record_line(record) for record in self._records if record is not None]
            with _locked(self.path), temporary.open("w", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in lines))
                handle.flush()
                os.fsync(handle.fileno())
                temporary.replace(self.path)
            self._log_lines = len(lines)

    def _replay(self) -> None:
        assert self.path is not None
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash; `sync` restores whatever it held
                self._log_lines += 1
                if "r" in entry:
                    for chunk_id in entry["r"]:
                        self._remove_one(chunk_id)
                else:
                    self._remove_one(entry["id"])
                    self._add_one(
                        KeywordRecord(
                            entry["id"], entry["h"], entry["k"], entry["s"], entry["t"], entry["d"], entry["f"]
                        )
                    )

    def reset(self) -> None:
        """Forget everything, on disk too (a full rebuild follows)."""
        with self._lock:
            self._clear()
            self.synced_token = None
            if self.path is not None:
                self.path.unlink(missing_ok=True)


def _record_line(record: KeywordRecord) -> str:
    return json.dumps(
        {
            "id": record.chunk_id,
            "h": record.content_hash,
            "k": record.kind,
            "s": record.source_id,
            "t": record.team,
            "d": record.date,
            "f": record.terms,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[object]:
    """An exclusive lock across processes (CLI and server) while the log is appended or rewritten."""
    lock_path = path.with_suffix(".lock")
    with lock_path.open("a") as lock_handle:
        fcntl.flock(lock_handle, fcntl.LOCK_EX)
        try:
            with path.open("a", encoding="utf-8") as handle:
                yield handle
        finally:
            fcntl.flock(lock_handle, fcntl.LOCK_UN)
