"""Routing benchmark on the ITSM tickets: the reference (TF-IDF + LinearSVC) and engine/analysers/routing.py side by
side.

Usage: .venv/bin/python bench/routing.py /work/shared/data [--tuning]

tickets_dev.csv is split by row order: the first 80 % is the tuning part, the last 20 % the held-out part. Tuning
figures (`--tuning`) come from two time-ordered folds, as the desk is used (no ticket is predicted from its future):
A trains on the tuning part's older 80 % and scores its newest 20 %, B trains on the older 60 % and scores the next
20 %; the held-out figures train on the whole tuning part and score the held-out part once. All go through
`engine.analysers.routing.evaluate_files`, the path of `python -m engine.routing evaluate`. Each split prints the
full table and issue #25's table. Figures are printed; nothing is asserted.
Times are wall-clock on this machine (2 cores): training, and prediction per ticket in a batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from engine.analysers.routing import COVERAGES, RoutingScores, evaluate_files, routing_report

HELD_OUT_SHARE = 0.2


def reference(train: Path, test: Path) -> dict[str, Any]:
    """The baseline to beat: raw subject + description, TF-IDF words + character 2–4-grams, LinearSVC."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.svm import LinearSVC

    def read(path: Path) -> tuple[list[str], list[str]]:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame = frame[frame["Assignment group"].str.strip() != ""]
        return list(frame["Short description"] + " " + frame["Description"]), list(frame["Assignment group"])

    texts, teams = read(train)
    test_texts, test_teams = read(test)
    first_line = Counter(teams).most_common(1)[0][0]
    began = time.perf_counter()
    model = make_pipeline(
        make_union(TfidfVectorizer(), TfidfVectorizer(analyzer="char", ngram_range=(2, 4))), LinearSVC()
    ).fit(texts, teams)
    trained = time.perf_counter() - began
    began = time.perf_counter()
    decision = model.decision_function(test_texts)
    predicted = time.perf_counter() - began
    classes = list(model.classes_)
    scores = RoutingScores(
        predicted=[classes[index] for index in decision.argmax(axis=1)],
        confidence=decision.max(axis=1),
        specialist=-decision[:, classes.index(first_line)],
        routed=[True] * len(test_texts),
    )
    return {
        **routing_report(test_teams, scores, first_line),
        "train_seconds": trained,
        "latency_ms": predicted / len(test_texts) * 1000,
    }


def table(title: str, results: dict[str, dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    rows = [
        ("accuracy", lambda r: r["accuracy"]),
        ("macro-F1", lambda r: r["macro_f1"]),
        ("specialist AUROC", lambda r: r["specialist_auroc"]),
        *(
            (f"precision @ {coverage:.0%} coverage", lambda r, c=coverage: r["precision_at_coverage"][c])
            for coverage in COVERAGES
        ),
        ("routed share (abstention)", lambda r: r["routed_share"]),
        ("routed precision", lambda r: r["routed_precision"]),
        ("  target it was chosen for", lambda r: r.get("target_precision")),
        ("  it kept on newest training", lambda r: r.get("validation", {}).get("routed_precision")),
        ("  chosen without their newer half", lambda r: r.get("validation", {}).get("checked_routed_precision")),
        ("specialist tickets routed", lambda r: r["specialists_routed"]),
        ("specialist-flagged share", lambda r: r.get("specialist_flagged_share")),
        ("specialist-flagged precision", lambda r: r.get("specialist_flagged_precision")),
        ("  kept on newest training", lambda r: r.get("validation", {}).get("specialist_precision")),
        ("training s", lambda r: r["train_seconds"]),
        ("prediction ms/ticket", lambda r: r["latency_ms"]),
    ]
    names = list(results)
    lines = [title, f"{'':32s}" + "".join(f"{name:>14s}" for name in names)]
    for label, value in rows:
        lines.append(f"{label:32s}" + "".join(f"{cell(value(results[name])):>14s}" for name in names))
    return "\n".join(lines)


def issue_table(title: str, results: dict[str, dict[str, Any]]) -> str:
    """Issue #25's table: the reference beside the product, as a Markdown table."""
    reference, learned = results["reference"], results["learned"]

    def number(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    routed = (
        f"{learned['routed_share']:.1%} / {number(learned['routed_precision'])}, where the threshold was chosen for "
        f"{learned['target_precision']:.2f}"
    )
    return "\n".join(
        [
            title,
            "| | reference | the product |",
            "|---|---|---|",
            *(
                f"| {label} | {number(reference[key])} | {number(learned[key])} |"
                for label, key in (
                    ("accuracy", "accuracy"),
                    ("macro-F1", "macro_f1"),
                    ("specialist-needed AUROC", "specialist_auroc"),
                )
            ),
            f"| routed share / its precision | — | {routed} |",
        ]
    )


def compare(train: Path, test: Path) -> dict[str, dict[str, Any]]:
    return {"reference": reference(train, test), "learned": evaluate_files(train, test)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--tuning", action="store_true", help="also score the tuning part's two time-ordered folds")
    args = parser.parse_args()
    frame = pd.read_csv(args.data_dir / "itsm-tickets" / "tickets_dev.csv", dtype=str, keep_default_na=False)
    cut = round(len(frame) * (1 - HELD_OUT_SHARE))
    tuning, held_out = frame.iloc[:cut], frame.iloc[cut:]
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)

        def written(part: pd.DataFrame, name: str) -> Path:
            part.to_csv(directory / name, index=False)
            return directory / name

        splits = []
        if args.tuning:
            slice_size = round(len(tuning) * HELD_OUT_SHARE)
            for fold, end in (("A", len(tuning)), ("B", len(tuning) - slice_size)):
                splits.append(
                    (
                        f"TUNING part, fold {fold}: tickets {end - slice_size + 1}–{end} scored by a model of the "
                        f"{end - slice_size} before them (choices were made here)",
                        tuning.iloc[: end - slice_size],
                        tuning.iloc[end - slice_size : end],
                    )
                )
        splits.append(
            (
                f"HELD-OUT part ({len(held_out)} tickets, last {HELD_OUT_SHARE:.0%} by row order, scored once)",
                tuning,
                held_out,
            )
        )
        for number, (title, train, test) in enumerate(splits):
            results = compare(written(train, f"train{number}.csv"), written(test, f"test{number}.csv"))
            print(table(title, results))
            print()
            print(issue_table(title, results))
            print()


if __name__ == "__main__":
    main()
