"""Why a question whose article is in the knowledge base does not become an automatic answer, case by case.

    .venv/bin/python bench/replay_why.py ../shared/data --stream router [--limit N] [--desk DIR] [--json OUT]

Builds a replay stream (bench/replay_streams.py), indexes and calibrates its knowledge base in a scratch desk (kept
in --desk to analyse again without indexing again), and analyses every case as a fresh desk sees it: no operator's
verdict, no learned answer, the desk's default policy. Each case that expects an answer from an article gets the
first reason on the path that stops it:

- `not retrieved`: the article is not among the passages found; `not at rank 1`: found, but another passage is first;
- `held by a check`: a guard holds the draft (an injection-like text, a request no cited passage answers, ...);
- `asked for information`; `escalated`: no draft (under the resolve minimum, or the passage misses the question's
  terms); `draft under the auto-send minimum`; `automatic` (and whether it cites the article).

Cases that expect no answer are counted by what the desk did with them. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from replay_streams import build  # noqa: E402

from engine.core.analysis import AnalysisResult  # noqa: E402
from engine.core.db import make_engine, make_session_factory, upgrade_database  # noqa: E402
from engine.core.desk_policy import default_policy  # noqa: E402
from engine.core.settings import get_settings  # noqa: E402
from engine.evaluate import Case, build_scratch_knowledge, load_cases, names_expected, snapshot_of  # noqa: E402
from engine.replay import scratch_settings  # noqa: E402
from engine.runtime import build_analyser  # noqa: E402

BUILT = "indexed"


def article_rank(case: Case, result: AnalysisResult) -> int | None:
    """Where the expected article is among the passages found (0: first), None when absent."""
    names = [f"{item.get('title', '')} {item.get('document', '')}" for item in result.evidence]
    return next((rank for rank, name in enumerate(names) if names_expected(name, case.expected_evidence)), None)


def why_not_automatic(case: Case, result: AnalysisResult, auto_send_min: float) -> str:
    """The first reason on the article path that keeps this case from an automatic answer (or `automatic`)."""
    rank = article_rank(case, result)
    if result.decision == "resolve" and not result.guards and result.confidence >= auto_send_min:
        return "automatic, right" if rank == 0 else "automatic, WRONG"
    if rank is None:
        return "not retrieved"
    if rank > 0:
        return "not at rank 1"
    if result.guards:
        return "held by a check"
    if result.decision == "ask":
        return "asked for information"
    if result.decision != "resolve":
        return "escalated (under the resolve minimum or the passage misses key terms)"
    return "draft under the auto-send minimum"


def analyse_stream(folder: Path, desk: Path, limit: int | None) -> list[dict[str, Any]]:
    settings = scratch_settings(get_settings(), desk)
    if not (desk / BUILT).exists():
        build_scratch_knowledge(settings, [folder / "kb"])
        (desk / BUILT).write_text("the knowledge base of this desk is indexed and calibrated\n", encoding="utf-8")
    rows = [json.loads(line) for line in (folder / "cases.jsonl").read_text(encoding="utf-8").splitlines()][:limit]
    cases = load_cases(folder / "cases.jsonl")[:limit]
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    analyser = build_analyser(settings, make_session_factory(engine))
    auto_send_min = default_policy(settings).auto_send_min_confidence
    found = []
    try:
        for number, (case, row) in enumerate(zip(cases, rows, strict=True), 1):
            snapshot = snapshot_of(case, number)
            if case.category != "uncategorised":
                snapshot = replace(snapshot, category=case.category)
            result = analyser.analyse(snapshot)
            expects_article = case.expected_action == "resolve" and row["has_article"]
            found.append(
                {
                    "id": case.id,
                    "expects": "article" if expects_article else case.expected_action,
                    "why": why_not_automatic(case, result, auto_send_min) if expects_article else result.decision,
                    "decision": result.decision,
                    "confidence": result.confidence,
                    "reason": result.reason,
                    "guards": result.guards,
                    "automatic": result.decision == "resolve"
                    and not result.guards
                    and result.confidence >= auto_send_min,
                    "text": f"{case.subject} {case.body}".strip()[:200],
                }
            )
    finally:
        engine.dispose()
    return found


def print_reasons(found: list[dict[str, Any]]) -> None:
    with_article = [item for item in found if item["expects"] == "article"]
    print(f"{len(with_article)} cases expect an answer from an article in the knowledge base:")
    for why, count in Counter(item["why"] for item in with_article).most_common():
        print(f"  {count:>4}  {why}")
    for expects in sorted({item["expects"] for item in found} - {"article"}):
        group = [item for item in found if item["expects"] == expects]
        decisions = Counter(item["decision"] for item in group)
        automatic = sum(item["automatic"] for item in group)
        print(f"{len(group)} cases expect {expects}: {dict(decisions)}; answered automatically: {automatic}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the shared data folder")
    parser.add_argument("--stream", default="router")
    parser.add_argument("--limit", type=int, help="analyse only the first N cases")
    parser.add_argument("--desk", type=Path, help="keep the indexed desk here and reuse it on the next run")
    parser.add_argument("--json", type=Path, help="write each case's reason here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = build(args.data_dir, Path(scratch) / "streams", [args.stream])[args.stream]
        desk = args.desk or Path(scratch) / "desk"
        desk.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = analyse_stream(folder, desk, args.limit)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1), encoding="utf-8")
    print(f"== stream {args.stream}: {len(found)} cases, analysed as a fresh desk sees them")
    print_reasons(found)


if __name__ == "__main__":
    main()
