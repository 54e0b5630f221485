"""How well a new question finds the learned answer to its paraphrase (engine/analysers/learned_match.py), without
the whole desk: fast enough to fit the match's fusion and floor on, printed and never asserted.

    .venv/bin/python bench/learned_match.py ../shared/data [--streams tv demo mine] [--fit] [--limit N]

Each stream's cases arrive in order. Every case is matched against the learned answers taught by the cases before
it, then (when it expects an answer) teaches its own: the person's `answer`, merged with an identical earlier one as
the desk merges them. A match is right when the teaching case shares an expected document with the case (tv, bike)
or, where cases name none, gives the same answer (demo: the opening of the same article; mine: the same group).
Cases that expect no answer, and the first paraphrase of each question, can only be matched wrongly.

Streams: `tv`, `demo` (bench/replay_streams.py), `mine` (bench/data/learned_paraphrases.json, written for this
bench) are tuned on: `--fit` fits the fusion on demo and mine (FIT_ON). `bike` is never tuned on: run it once,
after the fit.
Printed per stream: at each floor, automatic-eligible matches (score at or above it), their precision, and the share
of the cases that could be matched (an earlier paraphrase was answered) that were matched right, over the whole
stream and its last 70 %.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from replay_streams import NO_ARTICLE_SHARE, build, numbered, without_articles, write_stream  # noqa: E402

from engine.analysers import learned_match  # noqa: E402
from engine.analysers.confidence import question_focus  # noqa: E402
from engine.analysers.learned_match import Learned, LearnedSet, closest, fused  # noqa: E402
from kb.embed import LocalEmbedder  # noqa: E402

MINE = ROOT / "bench" / "data" / "learned_paraphrases.json"
LATE_SHARE = 0.7
FLOORS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8)
TUNED = ("tv", "demo", "mine")
FIT_ON = ("demo", "mine")
"""tv is tuned on but not fitted on: its labels call many true paraphrases wrong (one question, several sections)."""


@dataclass
class Case:
    text: str
    labels: frozenset[str]
    """What makes a learned answer right for it: expected documents, or the answer's own identity."""
    answer: str
    teaches: bool


@dataclass
class Observation:
    """One case's match: every shortlisted answer's features and whether it is right; whether any earlier answer
    could have been right; whether the case is in the stream's last 70 %."""

    features: np.ndarray
    right: np.ndarray
    reachable: bool
    late: bool


def stream_cases(folder: Path, answer_labels: bool) -> list[Case]:
    cases = []
    for line in (folder / "cases.jsonl").read_text(encoding="utf-8").splitlines():
        case = json.loads(line)
        text = question_focus(f"{case['subject']}\n{case['body'][:1500]}".strip()) or case["body"]
        teaches = case["expected_action"] == "resolve" and bool(case.get("answer"))
        labels = {case["answer"]} if answer_labels else set(case.get("expected_evidence") or [case["question"]])
        cases.append(
            Case(text, frozenset(labels if teaches else {f"none:{case['id']}"}), case.get("answer", ""), teaches)
        )
    return cases


def write_mine_stream(out: Path) -> Path:
    """The learned-paraphrase groups as a replay stream (bench/replay.py's folder layout): one article per group
    but for a fifth of the questions (groups asked at least twice, as bench/replay_streams.py leaves out)."""
    groups = {group["name"]: group for group in json.loads(MINE.read_text(encoding="utf-8"))["groups"]}
    rng = random.Random(22)
    removed = without_articles({name: group["questions"] for name, group in groups.items()}, NO_ARTICLE_SHARE, rng)
    documents = {
        f"{name}.md": f"# {name.replace('-', ' ').capitalize()}\n\n{group['answer']}\n"
        for name, group in groups.items()
        if name not in removed
    }
    cases = [
        {
            "subject": "",
            "body": question,
            "expected_action": "resolve",
            "expected_evidence": [name],
            "answer": group["answer"],
            "question": name,
            "has_article": name not in removed,
        }
        for name, group in groups.items()
        for question in group["questions"]
    ]
    return write_stream(out, numbered(cases, rng, "mine"), documents)


def mine_cases() -> list[Case]:
    groups = json.loads(MINE.read_text(encoding="utf-8"))["groups"]
    cases = [
        Case(question, frozenset({group["name"]}), group["answer"], True)
        for group in groups
        for question in group["questions"]
    ]
    random.Random(22).shuffle(cases)
    return cases


def observe(cases: list[Case], embedder: LocalEmbedder) -> list[Observation]:
    """Replay the cases' questions against the answers taught so far (identical answers merge into one)."""
    questions = embedder.embed_queries([case.text for case in cases])
    answers = sorted({case.answer for case in cases if case.teaches})
    answer_vectors = dict(zip(answers, embedder.embed_documents(answers), strict=True)) if answers else {}
    taught: dict[str, tuple[list[int], frozenset[str]]] = {}
    observations = []
    for number, case in enumerate(cases):
        learned = [
            Learned(
                position,
                tuple(members),
                tuple(cases[member].text for member in members),
                np.stack([questions[member] for member in members]),
                answer,
                answer_vectors[answer],
            )
            for position, (answer, (members, _)) in enumerate(taught.items())
        ]
        labels = [labels for _, labels in taught.values()]
        ranked = closest(case.text, questions[number], LearnedSet(learned)) if learned else []
        observations.append(
            Observation(
                np.array([closeness.features() for _, closeness in ranked]).reshape(-1, 3),
                np.array([bool(labels[item.answer_id] & case.labels) for item, _ in ranked], dtype=bool),
                any(known & case.labels for known in labels),
                number >= (1 - LATE_SHARE) * len(cases),
            )
        )
        if case.teaches:
            taught.setdefault(case.answer, ([], case.labels))[0].append(number)
    return observations


def best(observation: Observation) -> tuple[float, bool] | None:
    """The top match by the current fusion: its score and whether it is right."""
    if not len(observation.right):
        return None
    scores = [fused(row) for row in observation.features]
    top = int(np.argmax(scores))
    return scores[top], bool(observation.right[top])


def report(name: str, observations: list[Observation]) -> None:
    tops = [best(observation) for observation in observations]
    for part, chosen in (
        ("all", range(len(observations))),
        ("last 70 %", [i for i, o in enumerate(observations) if o.late]),
    ):
        reachable = sum(observations[i].reachable for i in chosen)
        print(f"  {name} {part}: {len(chosen)} cases, {reachable} with an earlier paraphrase answered")
        for floor in FLOORS:
            matched = [tops[i] for i in chosen if tops[i] is not None and tops[i][0] >= floor]
            right = sum(correct for _, correct in matched)
            precision = f"{right / len(matched):.3f}" if matched else "—"
            reach = f"{right / reachable:.1%}" if reachable else "—"
            print(f"    floor {floor:.2f}: {len(matched)} matched, precision {precision}, {reach} of reachable right")


def fit(observations: list[Observation]) -> None:
    """A logistic fusion of the three signals, fitted on every shortlisted candidate of the streams given."""
    from sklearn.linear_model import LogisticRegression

    features = np.vstack([observation.features for observation in observations if len(observation.right)])
    labels = np.concatenate([observation.right for observation in observations if len(observation.right)])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(features, labels)
    learned_match.FUSION_WEIGHTS = np.round(model.coef_[0], 3)
    learned_match.FUSION_BIAS = round(float(model.intercept_[0]), 3)
    print(f"fitted on {len(labels)} candidates ({int(labels.sum())} right); the reports below use it:")
    print(f"FUSION_WEIGHTS = np.array({learned_match.FUSION_WEIGHTS.tolist()})")
    print(f"FUSION_BIAS = {learned_match.FUSION_BIAS}")


def as_json(observation: Observation) -> dict[str, object]:
    return {**asdict(observation), "features": observation.features.tolist(), "right": observation.right.tolist()}


def from_json(row: dict[str, object]) -> Observation:
    return Observation(
        np.array(row["features"]).reshape(-1, 3), np.array(row["right"], dtype=bool), row["reachable"], row["late"]
    )


def observe_streams(data_dir: Path, names: list[str], limit: int) -> dict[str, list[Observation]]:
    embedder = LocalEmbedder(batch_size=32)
    observed = {}
    with tempfile.TemporaryDirectory() as scratch:
        folders = build(data_dir, Path(scratch), [name for name in names if name != "mine"])
        for name in names:
            cases = mine_cases() if name == "mine" else stream_cases(folders[name], answer_labels=name == "demo")
            observed[name] = observe(cases[: limit or None], embedder)
    return observed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the shared data folder (emanual-qa/, itsm-tickets/)")
    parser.add_argument("--streams", nargs="+", default=list(TUNED))
    parser.add_argument("--fit", action="store_true", help="fit the fusion on the --fit-on streams, then report")
    parser.add_argument("--fit-on", nargs="+", default=list(FIT_ON), help="streams with labels fit to fit on")
    parser.add_argument("--limit", type=int, default=0, help="only each stream's first N cases")
    parser.add_argument("--cache", type=Path, help="keep the matches here and read them back (same streams, limit)")
    parser.add_argument("--replay-stream", type=Path, help="only write the `mine` stream here for bench/replay.py")
    args = parser.parse_args()
    if args.replay_stream:
        print(f"mine: {write_mine_stream(args.replay_stream)}")
        return
    if args.cache and args.cache.exists():
        observed = {name: [from_json(row) for row in rows] for name, rows in json.loads(args.cache.read_text()).items()}
    else:
        observed = observe_streams(args.data_dir, args.streams, args.limit)
        if args.cache:
            args.cache.write_text(json.dumps({name: [as_json(o) for o in rows] for name, rows in observed.items()}))
    if args.fit:
        fit([observation for name in args.fit_on for observation in observed[name]])
    for name, observations in observed.items():
        print(f"{name} ({'tuned on' if name in TUNED else 'never tuned on'}):")
        report(name, observations)


if __name__ == "__main__":
    main()
