"""Offline evaluation: replay labelled tickets through retrieval, analysis and policy, with nothing sent.

    python -m engine.evaluate DATASET [--kb PATH ...] [--out report.json]

DATASET is a CSV or JSONL file of past tickets with columns `subject`, `body` (or `description` /
`question`), optional `id`, `category`, `expected_action` (resolve, ask, escalate, or not_resolve: any
decision but a resolution) and optional `expected_evidence` (document names or titles, `|`-separated in
CSV, a list in JSONL). With `--kb`, a scratch knowledge base is built from those files; without it the
configured knowledge base is used (read only); a scratch one calibrates itself first, as the index job
would. The report (decisions, the auto-send precision/coverage curve, and how well the confidence is
calibrated: expected calibration error over 10 bins and the reliability table) is printed and saved as JSON
(DATA_DIR/evaluation/latest.json by default), which the Metrics page shows.

    python -m engine.evaluate replay CASES.jsonl --kb DIR [DIR ...] [--json OUT]

replays the cases through the whole desk with a simulated person and customer (engine/replay.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.core.analysis import AnalysisResult, TicketSnapshot
from engine.core.db import make_engine, make_session_factory, upgrade_database
from engine.core.models import utcnow
from engine.core.settings import Settings, get_settings, load_settings
from engine.jobs import calibrate_knowledge
from engine.outcomes.metrics import auto_send_at, ratio
from engine.runtime import build_analyser
from kb.indexer import add_document

ACTIONS = ("resolve", "ask", "escalate")
THRESHOLDS = sorted({round(step * 0.05, 2) for step in range(21)} | {round(0.8 + step * 0.01, 2) for step in range(11)})
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Case:
    id: str
    subject: str
    body: str
    category: str
    expected_action: str
    expected_evidence: tuple[str, ...] = ()
    answer: str = ""
    """What a person would send (the replay's simulated person)."""


@dataclass
class Outcome:
    case: Case
    decision: str
    confidence: float
    blocked: bool
    evidence_names: list[str] = field(default_factory=list)
    """Each cited source's title and file name: a dataset may name the expected evidence by either."""
    analyser: str = ""
    latency_ms: int = 0
    error: str | None = None
    stated_confidence: float | None = None
    """What an AI model said of its confidence before the desk calibrated it (None: no model's answer)."""

    def evidence_hit(self, k: int) -> bool | None:
        """Whether an expected document is among the top k cited; None when the case names none."""
        if not self.case.expected_evidence:
            return None
        return any(names_expected(name, self.case.expected_evidence) for name in self.evidence_names[:k])

    def right_resolution(self) -> bool:
        """Would this answer have been right: a resolution was expected, and the cited source is the right one."""
        if self.case.expected_action != "resolve":
            return False
        hit = self.evidence_hit(1)
        return True if hit is None else hit

    def decision_right(self) -> bool:
        if self.case.expected_action == "not_resolve":
            return self.decision != "resolve"
        return self.decision == self.case.expected_action

    def auto_sent(self, threshold: float) -> bool:
        return self.decision == "resolve" and not self.blocked and self.confidence >= threshold


def names_expected(cited: str, expected: Iterable[str]) -> bool:
    """Whether a cited source's name (title and file name) contains one of the `expected` document names."""
    cited = cited.lower()
    return any(name.lower() in cited for name in expected if name)


def load_cases(path: Path) -> list[Case]:
    """Read CSV or JSONL tolerantly: unknown columns are ignored, missing ones get defaults."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            rows: list[dict[str, Any]] = list(csv.DictReader(handle))
    else:
        rows = [
            json.loads(line) for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()
        ]
    cases = []
    for number, row in enumerate(rows, 1):
        evidence = row.get("expected_evidence") or []
        if isinstance(evidence, str):
            evidence = [part.strip() for part in evidence.split("|")]
        body = row.get("body") or row.get("description") or row.get("question") or ""
        cases.append(
            Case(
                id=str(row.get("id") or number),
                subject=str(row.get("subject") or ""),
                body=str(body),
                category=str(row.get("category") or "uncategorised"),
                expected_action=str(row.get("expected_action") or "resolve").strip().lower(),
                expected_evidence=tuple(str(item) for item in evidence if item),
                answer=str(row.get("answer") or ""),
            )
        )
    return cases


def snapshot_of(case: Case, number: int) -> TicketSnapshot:
    return TicketSnapshot(
        id=-number,
        reference=f"EVAL-{case.id}",
        subject=case.subject,
        description=case.body,
        email="evaluation@example.invalid",
        requester_name=None,
        source="evaluation",
        priority=None,
        category=None,
        team=None,
        follow_up_count=0,
    )


def outcome_of(case: Case, result: AnalysisResult) -> Outcome:
    return Outcome(
        case=case,
        decision=result.decision,
        confidence=result.confidence,
        blocked=bool(result.guards),
        evidence_names=[f"{item.get('title', '')} {item.get('document', '')}" for item in result.evidence],
        analyser=result.analyser,
        latency_ms=result.latency_ms,
        error=result.error,
        stated_confidence=(result.model_confidence or {}).get("stated"),
    )


def report(outcomes: list[Outcome], *, dataset: str, analyser: str, threshold: float) -> dict[str, Any]:
    """Decision accuracy and confusion matrix, hit@5, auto-send precision/coverage, per category, the curve."""
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in outcomes:
        confusion[outcome.case.expected_action][outcome.decision] += 1
    per_category: dict[str, Any] = {}
    for category in sorted({outcome.case.category for outcome in outcomes}):
        subset = [outcome for outcome in outcomes if outcome.case.category == category]
        per_category[category] = _scores(subset, threshold)
    return {
        "generated_at": utcnow().isoformat(),
        "dataset": dataset,
        "analyser": analyser,
        "cases": len(outcomes),
        "auto_send_threshold": threshold,
        **_scores(outcomes, threshold),
        "confusion_matrix": {expected: dict(row) for expected, row in sorted(confusion.items())},
        "per_category": per_category,
        "threshold_curve": [
            {
                "threshold": value,
                **{
                    key: _scores(outcomes, value)[key]
                    for key in (
                        "auto_send_precision",
                        "coverage",
                        "answerable_coverage",
                        "auto_sent",
                        "unanswerable_sent",
                    )
                },
            }
            for value in THRESHOLDS
        ],
        **calibration(outcomes),
        "per_case": [
            {
                "id": outcome.case.id,
                "decision": outcome.decision,
                "confidence": outcome.confidence,
                "analyser": outcome.analyser,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error,
                "stated_confidence": outcome.stated_confidence,
            }
            for outcome in outcomes
        ],
    }


def calibration(outcomes: list[Outcome], bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Is confidence a probability? Per confidence bin, the mean confidence beside the share of cases whose top
    passage was the right answer; the expected calibration error is their gap weighted by the bin's cases."""
    table = []
    error = 0.0
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        members = [o for o in outcomes if low <= o.confidence < high or (index == bins - 1 and o.confidence >= high)]
        if not members:
            table.append({"bin": f"{low:.1f}-{high:.1f}", "cases": 0, "mean_confidence": None, "accuracy": None})
            continue
        confidence = sum(o.confidence for o in members) / len(members)
        accuracy = sum(o.right_resolution() for o in members) / len(members)
        error += len(members) / len(outcomes) * abs(confidence - accuracy)
        table.append(
            {
                "bin": f"{low:.1f}-{high:.1f}",
                "cases": len(members),
                "mean_confidence": round(confidence, 4),
                "accuracy": round(accuracy, 4),
            }
        )
    return {"expected_calibration_error": round(error, 4) if outcomes else None, "reliability": table}


def _scores(outcomes: list[Outcome], threshold: float) -> dict[str, Any]:
    sent = [outcome for outcome in outcomes if outcome.auto_sent(threshold)]
    hits = [hit for outcome in outcomes if (hit := outcome.evidence_hit(5)) is not None]
    answerable = sum(outcome.case.expected_action == "resolve" for outcome in outcomes)
    sent_answerable = sum(outcome.case.expected_action == "resolve" for outcome in sent)
    return {
        "decision_accuracy": ratio(sum(outcome.decision_right() for outcome in outcomes), len(outcomes)),
        "hit_at_5": ratio(sum(hits), len(hits)),
        **auto_send_at(outcomes, threshold),
        "answerable_coverage": ratio(sent_answerable, answerable),
        "unanswerable_sent": len(sent) - sent_answerable,
    }


def evaluate(cases: list[Case], settings: Settings, *, dataset: str) -> dict[str, Any]:
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    analyser = build_analyser(settings, make_session_factory(engine))
    outcomes = [
        outcome_of(case, analyser.analyse(snapshot_of(case, number)))
        for number, case in enumerate(tqdm(cases, desc="analysing", unit="ticket", file=sys.stderr, disable=None), 1)
    ]
    engine.dispose()
    return report(outcomes, dataset=dataset, analyser=analyser.name, threshold=settings.AUTO_SEND_MIN_CONFIDENCE)


def build_scratch_knowledge(settings: Settings, paths: list[Path]) -> None:
    """Index `paths` (files or folders) into the scratch database and vector store of `settings`."""
    files = [
        file for path in paths for file in (sorted(path.rglob("*")) if path.is_dir() else [path]) if file.is_file()
    ]
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    for file in tqdm(files, desc="indexing knowledge", unit="file", file=sys.stderr, disable=None):
        add_document(factory, settings, file.name, file.read_bytes(), uploaded_by="evaluation")
    calibration = calibrate_knowledge(factory, settings)
    engine.dispose()
    print(
        f"knowledge base calibrated itself: {calibration.fusion.describe()}, self-test {calibration.self_test}"[:400],
        file=sys.stderr,
    )


def print_report(result: dict[str, Any]) -> None:
    print(f"dataset: {result['dataset']}  analyser: {result['analyser']}  cases: {result['cases']}")
    print(
        f"decision accuracy {result['decision_accuracy']}  hit@5 {result['hit_at_5']}  auto-send threshold "
        f"{result['auto_send_threshold']}: precision {result['auto_send_precision']}, coverage {result['coverage']}"
    )
    print("\nconfusion matrix (rows expected, columns decided)")
    print(f"{'':<14}" + "".join(f"{action:>10}" for action in ACTIONS))
    for expected, row in result["confusion_matrix"].items():
        print(f"{expected:<14}" + "".join(f"{row.get(action, 0):>10}" for action in ACTIONS))
    print("\nper category")
    for category, scores in result["per_category"].items():
        print(
            f"  {category:<20} accuracy {scores['decision_accuracy']}  hit@5 {scores['hit_at_5']}  "
            f"precision {scores['auto_send_precision']}  coverage {scores['coverage']}"
        )
    print("\nauto-send threshold curve (answerable coverage: share of the cases expecting a resolution sent)")
    print(f"{'threshold':>10}{'precision':>11}{'coverage':>10}{'answerable':>12}{'sent':>6}{'unanswerable sent':>19}")
    for point in result["threshold_curve"]:
        print(
            f"{point['threshold']:>10.2f}{point['auto_send_precision'] or 0:>11.3f}{point['coverage'] or 0:>10.3f}"
            f"{point['answerable_coverage'] or 0:>12.3f}{point['auto_sent']:>6}{point['unanswerable_sent']:>19}"
        )
    print(f"\nconfidence calibration: expected calibration error {result['expected_calibration_error']} (10 bins)")
    print(f"{'confidence':>12}{'cases':>7}{'mean conf.':>12}{'right':>8}")
    for row in result["reliability"]:
        if row["cases"]:
            print(f"{row['bin']:>12}{row['cases']:>7}{row['mean_confidence']:>12.3f}{row['accuracy']:>8.3f}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["replay"]:
        from engine.replay import main as replay  # engine.replay builds on this module

        return replay(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m engine.evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--kb", type=Path, nargs="*", help="build a scratch knowledge base from these files/folders")
    parser.add_argument("--out", type=Path, help="where to save the JSON report")
    args = parser.parse_args(argv)
    settings = get_settings()
    cases = load_cases(args.dataset)
    with tempfile.TemporaryDirectory() as scratch:
        if args.kb:
            evaluation_settings = load_settings(
                **{**settings.model_dump(), "DATA_DIR": Path(scratch), "DATABASE_URL": "", "CHROMA_HOST": ""}
            )
            build_scratch_knowledge(evaluation_settings, args.kb)
        else:
            evaluation_settings = settings
        result = evaluate(cases, evaluation_settings, dataset=str(args.dataset))
    out = args.out or settings.DATA_DIR / "evaluation" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print_report(result)
    print(f"\nreport saved to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
