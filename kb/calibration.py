"""What each knowledge base chose for itself: its fusion and its confidence model, and when to choose again.

The choice is made by kb/self_test.py from the knowledge base alone and stored in `source_cursors` under
`kb:calibration` as JSON, so every process (engine, UI replicas) reads the same weights. A knowledge base
that changed by RECALIBRATE_SHARE of its chunks since then is calibrated again by the index job.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.models import KbChunk, SourceCursor, utcnow

log = logging.getLogger(__name__)
CALIBRATION_SOURCE = "kb:calibration"
RECALIBRATE_SHARE = 0.10
RRF_K = 10
FUSION_METHODS = ("rrf", "minmax")


@dataclass(frozen=True)
class Fusion:
    """How two retrievers' lists become one ranking: `rrf` (Σ w/(k + rank)) or `minmax` (Σ w · the score scaled
    to 0..1 within its list), with the vectors' share of the weight; BM25 gets the rest."""

    method: str = "rrf"
    vector_weight: float = 0.25
    rrf_k: int = RRF_K

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS or not 0.0 <= self.vector_weight <= 1.0 or self.rrf_k < 1:
            raise ValueError(f"invalid fusion {self}: method one of {FUSION_METHODS}, vector weight 0..1, k >= 1")

    @property
    def weights(self) -> dict[str, float]:
        return {"vector": self.vector_weight, "bm25": 1.0 - self.vector_weight}

    @property
    def best_score(self) -> float:
        """The score of a source both retrievers rank first, so fused scores read as a share of it."""
        return 1.0 / (self.rrf_k + 1) if self.method == "rrf" else 1.0

    def describe(self) -> str:
        """In people's words: one retriever alone, or how the two are combined."""
        if self.vector_weight == 1.0:
            return "vectors alone (by meaning)"
        if self.vector_weight == 0.0:
            return "keywords alone (BM25)"
        method = f"RRF k={self.rrf_k}" if self.method == "rrf" else "min-max scores"
        return f"{method}, vectors {self.vector_weight:.0%} / BM25 {1 - self.vector_weight:.0%}"


DEFAULT_FUSION = Fusion()
"""Until a knowledge base has calibrated itself: the EMQA choice, BM25 : vectors 3 : 1 by RRF k=10."""


@dataclass
class Calibration:
    """One self-calibration: the chosen fusion, its self-test scores, the confidence model, and the size of the
    knowledge base it was made on (to tell when it is out of date)."""

    fusion: Fusion
    self_test: dict[str, Any] = field(default_factory=dict)
    confidence: dict[str, Any] | None = None
    chunks: int = 0
    max_chunk_id: int = 0
    calibrated_at: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        data = json.loads(text)
        return cls(**{**data, "fusion": Fusion(**data["fusion"])})


def stored_calibration(session: Session) -> Calibration | None:
    """The knowledge base's calibration, or None when it has none; a damaged record is logged and ignored."""
    text = session.scalar(select(SourceCursor.cursor).where(SourceCursor.source == CALIBRATION_SOURCE))
    if not text:
        return None
    try:
        return Calibration.from_json(text)
    except (ValueError, TypeError, KeyError) as error:
        log.error("the stored retrieval calibration (%s) is unreadable, using defaults: %s", CALIBRATION_SOURCE, error)
        return None


def stored_fusion(session: Session) -> Fusion:
    calibration = stored_calibration(session)
    return calibration.fusion if calibration else DEFAULT_FUSION


def save_calibration(session: Session, calibration: Calibration) -> None:
    """Store (replace) the calibration; the caller commits."""
    calibration.calibrated_at = calibration.calibrated_at or utcnow().isoformat()
    row = session.get(SourceCursor, CALIBRATION_SOURCE)
    if row is None:
        session.add(SourceCursor(source=CALIBRATION_SOURCE, cursor=calibration.to_json()))
    else:
        row.cursor = calibration.to_json()


def chunk_census(session: Session) -> tuple[int, int]:
    """(number of chunks, highest chunk id): ids only grow, so the two tell how much was added and removed."""
    count, highest = session.execute(select(func.count(KbChunk.id), func.max(KbChunk.id))).one()
    return int(count or 0), int(highest or 0)


def changed_share(session: Session, calibration: Calibration | None) -> float:
    """Share of the knowledge base added or removed since `calibration` (1.0 when there is none)."""
    count, _ = chunk_census(session)
    if calibration is None:
        return 1.0 if count else 0.0
    added = int(session.scalar(select(func.count(KbChunk.id)).where(KbChunk.id > calibration.max_chunk_id)) or 0)
    removed = max(0, calibration.chunks - (count - added))
    return (added + removed) / max(1, calibration.chunks)


def needs_calibration(session: Session) -> bool:
    """True when the knowledge base has chunks and changed by RECALIBRATE_SHARE since it last calibrated."""
    return changed_share(session, stored_calibration(session)) >= RECALIBRATE_SHARE


def calibration_summary(session: Session) -> dict[str, Any]:
    """What the Knowledge Base page shows: the fusion in use, its self-test, the confidence model, staleness."""
    calibration = stored_calibration(session)
    if calibration is None:
        return {"calibrated": False, "fusion": DEFAULT_FUSION.describe(), "changed_since": None}
    return {
        "calibrated": True,
        "fusion": calibration.fusion.describe(),
        "calibrated_at": calibration.calibrated_at,
        "chunks": calibration.chunks,
        "self_test": {key: value for key, value in calibration.self_test.items() if key != "grid"},
        "confidence_samples": (calibration.confidence or {}).get("samples", 0),
        "changed_since": round(changed_share(session, calibration), 3),
    }
