"""Embedding providers: the local model, and Azure / OpenAI-compatible endpoints against a loopback emulator;
a change of model asks for a reindex instead of mixing vectors."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import overload

import numpy as np
import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from kb import indexer
from kb.embed import LOCAL_MODEL_NAME, WINDOW_BATCHES, get_embedder
from kb.search import search
from kb.store import ReindexRequiredError, reset_caches
from tests.factories import own_transactions
from tests.kb.conftest import assert_consistent
from tests.kb.embeddings_emulator import DIMENSION, EmbeddingsEmulator
from tests.waiting import wait_until

ROUTER = b"# Router\nTo reset the router, hold the recessed button for ten seconds.\n"
MAIL = b"# Mailbox\nWhen Outlook says the mailbox is full, archive old items.\n"


def test_local_model_is_loaded_once_and_normalised(settings: Settings) -> None:
    embedder = get_embedder(settings)
    assert embedder is get_embedder(settings.model_copy(update={"KB_CHUNK_SIZE": 500}))
    vectors = embedder.embed_documents(["reset the router", "reboot the modem", "bake a cake"])
    assert embedder.name == LOCAL_MODEL_NAME and vectors.shape == (3, 384) and embedder.dimension == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_remote_providers_over_the_wire(provider: str, settings: Settings) -> None:
    with EmbeddingsEmulator() as emulator:
        if provider == "openai":
            remote = settings.model_copy(
                update={
                    "EMBEDDINGS_PROVIDER": "openai",
                    "OPENAI_BASE_URL": emulator.url + "/v1",
                    "OPENAI_API_KEY": SecretStr("sk-test"),
                    "EMBED_BATCH_SIZE": 2,
                }
            )
        else:
            remote = settings.model_copy(
                update={
                    "EMBEDDINGS_PROVIDER": "azure",
                    "AZURE_OPENAI_EMBED_API_ENDPOINT": emulator.url,
                    "AZURE_OPENAI_EMBED_API_KEY": SecretStr("azure-key"),
                    "AZURE_OPENAI_EMBED_MODEL": "ada-deployment",
                    "EMBED_BATCH_SIZE": 2,
                }
            )
        embedder = get_embedder(remote)
        vectors = embedder.embed_documents(["one", "two", "three"])
        assert vectors.shape == (3, DIMENSION) and embedder.dimension == DIMENSION
        assert len(emulator.requests) == 2  # batched by EMBED_BATCH_SIZE
        request = emulator.requests[0]
        if provider == "openai":
            assert request["path"] == "/v1/embeddings" and request["headers"]["authorization"] == "Bearer sk-test"
            assert embedder.name == "openai:text-embedding-3-small"
        else:
            assert request["path"].startswith("/openai/deployments/ada-deployment/embeddings?api-version=")
            assert request["headers"]["api-key"] == "azure-key" and embedder.name == "azure:ada-deployment"
        assert request["body"]["input"] == ["one", "two"]  # strings, not tiktoken ids: works offline


def test_changing_model_asks_for_reindex(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        indexer.add_document(own_transactions(session), settings, "router.md", ROUTER)
        indexer.add_document(own_transactions(session), settings, "mail.md", MAIL)
    reset_caches()
    with EmbeddingsEmulator() as emulator, session_factory() as session:
        remote = settings.model_copy(update={"EMBEDDINGS_PROVIDER": "openai", "OPENAI_BASE_URL": emulator.url})
        with pytest.raises(ReindexRequiredError, match="python -m kb reindex"):
            search(session, remote, "router")
        refused = indexer.add_document(own_transactions(session), remote, "late.md", b"# Late\nA late document.\n")
        assert refused.status == "error" and "reindex" in (refused.error or "")

        counts = indexer.reindex_all(own_transactions(session), remote)
        assert counts["vector_index_replaced"] == 1 and counts["documents"] == 3
        assert search(session, remote, "recessed button router", k=1)[0].title == "Router"
        assert_consistent(session, remote)
        assert all(r["body"]["model"] == "text-embedding-3-small" for r in emulator.requests)


class HeldTexts(Sequence[str]):
    """Texts read past `first` only once `release` is set: a long embedding run (a calibration, a large upload)
    caught between its batches, after encoding the first ones."""

    def __init__(self, texts: list[str], first: int) -> None:
        self.texts, self.first = texts, first
        self.reached, self.release = threading.Event(), threading.Event()

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        start = (index.start or 0) if isinstance(index, slice) else index
        if start >= self.first and not self.reached.is_set():
            self.reached.set()
            self.release.wait(timeout=120)
        return self.texts[index]


def test_a_long_run_of_the_local_model_lets_a_query_in_between_its_batches(settings: Settings) -> None:
    embedder = get_embedder(settings.model_copy(update={"EMBED_BATCH_SIZE": 4}))
    first = 4 * WINDOW_BATCHES
    texts = HeldTexts([f"article paragraph number {n}" for n in range(first + 8)], first=first)
    long_run: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: long_run.append(embedder.embed_documents(texts)), daemon=True)
    worker.start()
    try:
        wait_until(texts.reached.is_set, timeout=60, what="the long run between its batches")
        query: list[np.ndarray] = []
        asker = threading.Thread(target=lambda: query.append(embedder.embed_queries(["reset the router"])), daemon=True)
        asker.start()
        wait_until(lambda: bool(query), timeout=60, what="the query answered while the long run waits")
        assert query[0].shape == (1, 384)
    finally:
        texts.release.set()
    worker.join(timeout=60)
    assert long_run[0].shape == (first + 8, 384)
