"""The Goals of issue #22 on replay streams (bench/replay_streams.py), printed and never asserted.

    .venv/bin/python bench/replay.py ../shared/data [--streams tv router bike demo] [--limit N] [--json-dir DIR]

Each stream goes through `engine.replay` (the real desk on a scratch database, the database outbox, a simulated
person and customer) at the desk's default settings. Printed per stream: the replay's windows of 100 and, over
the last 70 % of the stream, the automatic share of tickets and its precision, and automatic answers to a question
before anyone answered it (no article in the knowledge base and no person's answer to an earlier paraphrase).
The demo stream also prints its share and precision after the first hour of simulated operator work: the person
spends MINUTES per approval, edit, written answer or escalation, and the hour ends with the case that brings the
total to 60 minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from replay_streams import build  # noqa: E402

from engine.core.settings import get_settings  # noqa: E402
from engine.evaluate import load_cases  # noqa: E402
from engine.replay import CaseResult, print_summary, replay, scratch_settings  # noqa: E402

LATE_SHARE = 0.7
MINUTES = {"approved": 1, "edited": 3, "wrote": 4, "escalated": 1}
TUNED = {"tv": "dev", "router": "dev, written for this project", "demo": "demo", "bike": "never tuned on"}


def share_and_precision(results: list[CaseResult]) -> str:
    automatic = [result for result in results if result.automatic]
    right = sum(bool(result.right) for result in automatic)
    precision = f"{right / len(automatic):.3f}" if automatic else "—"
    share = len(automatic) / max(1, len(results))
    return f"{len(automatic)} of {len(results)} automatic ({share:.1%}), precision {precision}"


def answered_before_anyone(results: list[CaseResult], rows: list[dict[str, Any]]) -> int:
    """Automatic answers to a question no article answers and no person had answered in an earlier paraphrase."""
    answered: set[str] = set()
    early = 0
    for result, row in zip(results, rows, strict=True):
        if result.automatic and not row["has_article"] and row["question"] not in answered:
            early += 1
        if result.person in ("approved", "edited", "wrote"):
            answered.add(row["question"])
    return early


def after_first_hour(results: list[CaseResult]) -> tuple[int, list[CaseResult]]:
    spent = 0
    for position, result in enumerate(results):
        spent += MINUTES.get(result.person or "", 0)
        if spent >= 60:
            return position + 1, results[position + 1 :]
    return len(results), []


def run_stream(name: str, folder: Path, limit: int | None, json_dir: Path | None) -> None:
    cases = load_cases(folder / "cases.jsonl")[:limit]
    rows = [json.loads(line) for line in (folder / "cases.jsonl").read_text(encoding="utf-8").splitlines()][:limit]
    with tempfile.TemporaryDirectory() as scratch:
        results = replay(cases, scratch_settings(get_settings(), Path(scratch)), [folder / "kb"])
    if json_dir:
        json_dir.mkdir(parents=True, exist_ok=True)
        (json_dir / f"{name}.json").write_text(json.dumps([result.as_json() for result in results], indent=1))
    print(f"\n== stream {name} ({TUNED[name]}): {len(results)} cases")
    print_summary(results)
    late = results[int(len(results) * (1 - LATE_SHARE)) :]
    print(f"last 70 %: {share_and_precision(late)}  (goal: ≥ 60 % at precision ≥ 0.97)")
    print(f"automatic answers before anyone answered the question: {answered_before_anyone(results, rows)} (goal: 0)")
    if name == "demo":
        hour, rest = after_first_hour(results)
        print(f"the first hour of operator work covered {hour} tickets; after it: {share_and_precision(rest)}")
        print(
            "  (goal: ≥ 30 % automatic at precision ≥ 0.95; an automatic answer is right when the ticket expects one)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the shared data folder")
    parser.add_argument("--streams", nargs="+", default=["tv", "bike", "demo"])
    parser.add_argument("--limit", type=int, help="replay only the first N cases of each stream")
    parser.add_argument("--json-dir", type=Path, help="write each stream's per-case JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as streams:
        for name, folder in build(args.data_dir, Path(streams), args.streams).items():
            run_stream(name, folder, args.limit, args.json_dir)


if __name__ == "__main__":
    main()
