"""A small linear classifier for prompt-injection and jailbreak text, beside the rules.

Features are hashed (character 2-5-grams and word 1-2-grams of the folded text), so the vectoriser holds no
state and only the coefficients ship (engine/trust/guard_model/weights.npz, trained by bench/train_guard_model.py).
Loaded once per process with numpy, never unpickled.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import spmatrix
    from sklearn.feature_extraction.text import HashingVectorizer

WEIGHTS = Path(__file__).resolve().parent / "guard_model" / "weights.npz"
FEATURES_PER_KIND = 2**17
MAX_CHARS = 20_000  # per window; longer text is scored window by window


@functools.cache
def _vectorisers() -> tuple[HashingVectorizer, HashingVectorizer]:
    """Built at the first text scored: importing scikit-learn takes seconds, and every dashboard page imports this
    module (through the actions) long before, or without ever, scoring a text."""
    from sklearn.feature_extraction.text import HashingVectorizer

    chars = HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), n_features=FEATURES_PER_KIND, alternate_sign=False, lowercase=False
    )
    words = HashingVectorizer(
        analyzer="word", ngram_range=(1, 2), n_features=FEATURES_PER_KIND, alternate_sign=False, lowercase=False
    )
    return chars, words


def features(texts: list[str]) -> spmatrix:
    """Hashed features of already folded texts (engine.trust.deobfuscate.fold)."""
    from scipy.sparse import hstack  # 0.2 s to import, and only a text being scored needs it

    chars, words = _vectorisers()
    return hstack([chars.transform(texts), words.transform(texts)]).tocsr()


@functools.cache
def _weights() -> tuple[np.ndarray, float, float]:
    with np.load(WEIGHTS, allow_pickle=False) as stored:
        return stored["coef"].astype(np.float32), float(stored["intercept"]), float(stored["threshold"])


def threshold() -> float:
    """The operating point chosen at training time (see engine/trust/guard_model/README.md)."""
    return _weights()[2]


def injection_score(folded_texts: list[str], *, window_limit: int = 12) -> float:
    """Highest probability over the texts that one is an injection or jailbreak; long texts are read in windows,
    at most `window_limit` of them spread over the whole text (the rules still read all of it)."""
    windows = [text[start : start + MAX_CHARS] for text in folded_texts for start in range(0, len(text), MAX_CHARS)]
    step = max(1, len(windows) // window_limit)
    windows = [window for window in windows[::step][:window_limit] if window.strip()]
    if not windows:
        return 0.0
    coef, intercept, _ = _weights()
    logits = features(windows) @ coef + intercept
    return float(1.0 / (1.0 + np.exp(-np.max(logits))))
