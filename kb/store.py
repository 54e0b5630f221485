"""Where the indexes live: Chroma for vectors (embedded under DATA_DIR/chroma, or a server via CHROMA_HOST)
and the BM25 log under DATA_DIR/kb. One `KbRuntime` per process and configuration, shared by threads.

We always pass our own vectors, so Chroma never tries to download its default model.
An embedded Chroma keeps its vector index in memory: when another process (`python -m kb remove`, a reindex) changes
the files under it, this process's handle goes stale; it is opened afresh, once, and the operation retried.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.core.settings import Settings
from kb.embed import Embedder, get_embedder, go_offline, model_name, reset_embedders
from kb.keyword import KeywordIndex

log = logging.getLogger(__name__)

PAGE = 5000
T = TypeVar("T")


class ReindexRequiredError(RuntimeError):
    """The vector index was built with another embedding model; vectors of two models must not mix."""


class StaleIndexError(RuntimeError):
    """The in-memory vector index no longer matches Chroma's files: another process changed them."""


class ChromaConnection:
    """One Chroma client per location, shared by the runtimes that use it, which can be opened afresh."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self.client = make()
        self.generation = 0

    def reopen(self, seen: int, why: str) -> None:
        """Close the client and open a new one, unless another thread already did since generation `seen`."""
        with self._lock:
            if self.generation != seen:
                return
            log.warning("the vector index changed under this process (%s): reopening the Chroma client", why)
            close = getattr(self.client, "close", None)
            if close is not None:
                close()
            self.client = self._make()
            self.generation += 1

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


def _stale(error: Exception) -> bool:
    """An error that a fresh client may cure: our own stale-index signal or a collection id Chroma no longer knows."""
    from chromadb.errors import NotFoundError

    return isinstance(error, (StaleIndexError, NotFoundError))


@dataclass(frozen=True)
class VectorHit:
    chunk_id: str
    score: float
    kind: str
    source_id: int


class VectorStore:
    """One Chroma collection whose metadata names the embedding model and dimension it holds."""

    def __init__(self, connection: ChromaConnection, collection_name: str, model: str) -> None:
        self.connection = connection
        self.collection_name = collection_name
        self.model = model
        self._collection: Any = None
        self._generation = connection.generation
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        return self.connection.client

    def _open(self, dimension: int | None = None) -> Any:
        """The collection, created for this model on first write; refuses a collection of another model."""
        with self._lock:
            if self._generation != self.connection.generation:
                self._collection, self._generation = None, self.connection.generation
            if self._collection is None:
                existing = {c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()}
                if self.collection_name in existing:
                    collection = self.client.get_collection(self.collection_name, embedding_function=None)
                    stored = (collection.metadata or {}).get("embed_model")
                    if stored != self.model:
                        raise ReindexRequiredError(
                            f"the vector index holds embeddings of '{stored}' but EMBEDDINGS_PROVIDER selects "
                            f"'{self.model}': run `python -m kb reindex` to rebuild it with the new model"
                        )
                    self._collection = collection
                elif dimension is not None:
                    self._collection = self.client.create_collection(
                        self.collection_name,
                        metadata={"embed_model": self.model, "embed_dim": dimension},
                        configuration={"hnsw": {"space": "cosine"}},
                        embedding_function=None,
                    )
            return self._collection

    def _fresh(self, action: Callable[[], T]) -> T:
        """Run `action`; when the handle proved stale, open the client afresh and run it once more."""
        generation = self.connection.generation
        try:
            return action()
        except Exception as error:
            if not _stale(error):
                raise
            self.connection.reopen(generation, f"{type(error).__name__}: {error}")
            return action()

    def check_model(self) -> None:
        """Raise ReindexRequiredError before any work if the stored vectors come from another model."""
        self._open()

    @property
    def dimension(self) -> int | None:
        collection = self._open()
        return None if collection is None else int((collection.metadata or {}).get("embed_dim", 0)) or None

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]) -> None:
        if ids:
            self._fresh(lambda: self._upsert(ids, vectors, metadatas))

    def _upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]) -> None:
        collection = self._open(int(vectors.shape[1]))
        stored = self.dimension
        if stored and stored != vectors.shape[1]:
            raise ReindexRequiredError(
                f"vectors of dimension {vectors.shape[1]} cannot join an index of dimension {stored}; "
                "run `python -m kb reindex`"
            )
        for start in range(0, len(ids), PAGE):
            end = start + PAGE
            collection.upsert(
                ids=list(ids[start:end]), embeddings=vectors[start:end], metadatas=list(metadatas[start:end])
            )

    def delete(self, ids: Sequence[str]) -> None:
        self._fresh(lambda: self._delete(ids))

    def _delete(self, ids: Sequence[str]) -> None:
        collection = self._open()
        if collection is None or not ids:
            return
        for start in range(0, len(ids), PAGE):
            collection.delete(ids=list(ids[start : start + PAGE]))

    def query(self, vectors: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[list[VectorHit]]:
        """The n nearest chunks for each query vector, as cosine similarity (1 - distance), best first."""
        return self._fresh(lambda: self._query(vectors, n, where))

    def _query(self, vectors: np.ndarray, n: int, where: dict[str, Any] | None) -> list[list[VectorHit]]:
        collection = self._open()
        if collection is None or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        result = collection.query(
            query_embeddings=vectors, n_results=n, where=where, include=["metadatas", "distances"]
        )
        hits = []
        for ids, distances, metadatas in zip(result["ids"], result["distances"], result["metadatas"], strict=True):
            if any(meta is None for meta in metadatas):
                raise StaleIndexError("a nearest vector has no stored record (deleted by another process)")
            hits.append(
                [
                    VectorHit(chunk_id, 1.0 - float(distance), str(meta.get("kind", "")), int(meta.get("source_id", 0)))
                    for chunk_id, distance, meta in zip(ids, distances, metadatas, strict=True)
                ]
            )
        return hits

    def vectors_of(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vectors of these chunks (those Chroma has), read in pages, for the retrieval self-test."""
        return self._fresh(lambda: self._vectors_of(ids))

    def _vectors_of(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        collection = self._open()
        found: dict[str, np.ndarray] = {}
        if collection is None:
            return found
        for start in range(0, len(ids), PAGE):
            page = collection.get(ids=list(ids[start : start + PAGE]), include=["embeddings"])
            for chunk_id, vector in zip(page["ids"], page["embeddings"], strict=True):
                found[chunk_id] = np.asarray(vector, dtype=np.float32)
        return found

    def hashes(self) -> dict[str, str]:
        """Every stored chunk id with its content hash, read in pages, for comparison with the database."""
        return self._fresh(lambda: dict(self._iter_hashes()))

    def _iter_hashes(self) -> Iterator[tuple[str, str]]:
        collection = self._open()
        if collection is None:
            return
        offset = 0
        while True:
            page = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
            for chunk_id, meta in zip(page["ids"], page["metadatas"], strict=True):
                yield chunk_id, str((meta or {}).get("hash", ""))
            if len(page["ids"]) < PAGE:
                return
            offset += PAGE

    def count(self) -> int:
        return self._fresh(lambda: 0 if (collection := self._open()) is None else int(collection.count()))

    def drop(self) -> None:
        """Delete the collection (a reindex with another model follows)."""
        with self._lock:
            existing = {c.name if hasattr(c, "name") else str(c) for c in self.client.list_collections()}
            if self.collection_name in existing:
                self.client.delete_collection(self.collection_name)
            self._collection = None


def chroma_where(kinds: set[str] | None, team: str | None, since: int | None) -> dict[str, Any] | None:
    """Chroma's metadata filter for the search filters; a team also sees chunks that belong to no team."""
    conditions: list[dict[str, Any]] = []
    if kinds:
        conditions.append({"kind": {"$in": sorted(kinds)}})
    if team is not None:
        conditions.append({"team": {"$in": [team, ""]}})
    if since is not None:
        conditions.append({"date": {"$gte": since}})
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else {"$and": conditions}


def make_chroma_client(settings: Settings) -> Any:
    """PersistentClient under DATA_DIR/chroma, or HttpClient when CHROMA_HOST is set; telemetry off."""
    go_offline()
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if settings.CHROMA_HOST:
        return chromadb.HttpClient(host=settings.CHROMA_HOST, port=settings.CHROMA_PORT, settings=chroma_settings)
    path = Path(settings.DATA_DIR) / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


@dataclass
class KbRuntime:
    """Everything retrieval needs, loaded once per process: the embedder, the vector store, the BM25 index."""

    settings_key: tuple[Any, ...]
    vectors: VectorStore
    keywords: KeywordIndex
    model: str
    settings: Settings
    lock: threading.RLock

    @property
    def embedder(self) -> Embedder:
        return get_embedder(self.settings)


_runtimes: dict[tuple[Any, ...], KbRuntime] = {}
_clients: dict[tuple[Any, ...], ChromaConnection] = {}
_runtimes_lock = threading.Lock()


def runtime_key(settings: Settings) -> tuple[Any, ...]:
    return (
        str(Path(settings.DATA_DIR).resolve()),
        settings.CHROMA_HOST,
        settings.CHROMA_PORT,
        settings.CHROMA_COLLECTION,
        model_name(settings),
    )


def get_runtime(settings: Settings) -> KbRuntime:
    """The process's runtime for these settings; the BM25 log is replayed once, on first use."""
    key = runtime_key(settings)
    with _runtimes_lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            client_key = key[:3]
            if client_key not in _clients:
                _clients[client_key] = ChromaConnection(lambda: make_chroma_client(settings))
            keyword_path = Path(settings.DATA_DIR) / "kb" / f"bm25-{settings.CHROMA_COLLECTION}.jsonl"
            runtime = KbRuntime(
                key,
                VectorStore(_clients[client_key], settings.CHROMA_COLLECTION, model_name(settings)),
                KeywordIndex(keyword_path),
                model_name(settings),
                settings,
                threading.RLock(),
            )
            _runtimes[key] = runtime
        return runtime


def reset_caches() -> None:
    """Forget every runtime, Chroma client and model (tests use a fresh DATA_DIR each)."""
    with _runtimes_lock:
        _runtimes.clear()
        for connection in _clients.values():
            connection.close()
        _clients.clear()
    reset_embedders()
