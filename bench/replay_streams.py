"""Replay streams for `python -m engine.evaluate replay`: cases in arrival order plus the knowledge base they meet.

    .venv/bin/python bench/replay_streams.py ../shared/data OUT_DIR

Writes OUT_DIR/<stream>/cases.jsonl and OUT_DIR/<stream>/kb/. Every case has the replay's fields and two more that
the benchmark reads: `question` (cases with the same value are paraphrases of one question) and `has_article`
(whether the knowledge base holds a document that answers it).

- `tv` (dev stream: bench/evaluation.py's figures were tuned on it): the EMQA Smart TV questions (answer: the
  expert's answer text), the manual as one document per section, and the 50 Galaxy S10 questions as cases that
  expect no answer. The sections answering about a fifth of the questions are left out of the knowledge base, chosen
  among sections asked about at least twice, so their paraphrases recur after a person answered the first.
- `bike` (never tuned on): bench/data/bike_help.json (40 help articles with two rider's paraphrases each, written for
  this project; no replay or decision setting was chosen on it), a fifth of the articles left out, the first line of
  40 real IT tickets (shared data `itsm-tickets`) as cases that expect no answer.
- `router` (dev stream, tuned on): bench/data/router_help.json, 30 help articles of an imaginary home Wi-Fi router
  with two or three customer questions each in their own words and 20 out-of-scope questions (one hostile), written
  for this project (issue #22) to tune the decision path on; a fifth of the articles left out as for `bike`.
- `demo`: the demo feed's 267 tickets with the demo articles, labelled by the sample itself (`expected_action`; no
  evidence labels, so an automatic answer is right by its label). A person's `answer` is the opening of the demo
  article that shares the most words with the ticket (a rule written here, not the product's retrieval).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from evaluation import TV_MANUAL, section_file  # noqa: E402
from retrieval import label, load_questions, load_s10_questions, load_sections  # noqa: E402

NO_ARTICLE_SHARE = 0.2
SEED = 22
DEMO = ROOT / "connectors" / "demo_data"
BIKE = ROOT / "bench" / "data" / "bike_help.json"
ROUTER = ROOT / "bench" / "data" / "router_help.json"
WORD = re.compile(r"[a-z]{4,}")
IT_TICKETS = 40


def write_stream(out: Path, cases: list[dict[str, Any]], documents: dict[str, str]) -> Path:
    """The stream's folder: cases.jsonl in arrival order and kb/ with one file per document."""
    (out / "kb").mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        (out / "kb" / name).write_text(text, encoding="utf-8")
    (out / "cases.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases), encoding="utf-8")
    return out


def without_articles(groups: dict[str, list[Any]], share: float, rng: random.Random) -> set[str]:
    """Question groups asked at least twice whose articles leave the knowledge base, about `share` of all questions."""
    total = sum(len(members) for members in groups.values())
    recurring = sorted(name for name, members in groups.items() if len(members) >= 2)
    rng.shuffle(recurring)
    chosen: set[str] = set()
    for name in recurring:
        if sum(len(groups[group]) for group in chosen) >= share * total:
            break
        chosen.add(name)
    return chosen


def tv_stream(data_dir: Path, out: Path) -> Path:
    rng = random.Random(SEED)
    sections = load_sections(data_dir / TV_MANUAL)
    questions = load_questions(data_dir)
    label(questions, sections)
    groups: dict[str, list[Any]] = defaultdict(list)
    for question in questions:
        if question.relevant:
            groups[str(min(question.relevant))].append(question)
    removed_groups = without_articles(groups, NO_ARTICLE_SHARE, rng)
    removed = {index for name in removed_groups for question in groups[name] for index in question.relevant}
    documents = {
        section_file(index, title): f"{title}\n\n{text}\n"
        for index, (title, text) in enumerate(sections)
        if index not in removed
    }
    cases = [
        {
            "subject": "",
            "body": question.question,
            "expected_action": "resolve",
            "expected_evidence": [section_file(index, sections[index][0])[:7] for index in sorted(question.relevant)],
            "answer": question.answer,
            "question": f"tv-{name}",
            "has_article": bool(question.relevant - removed),
        }
        for name, members in groups.items()
        for question in members
    ]
    cases += [
        {
            "subject": "",
            "body": question.question,
            "expected_action": "escalate",
            "question": f"s10-{n}",
            "has_article": False,
        }
        for n, question in enumerate(load_s10_questions(data_dir))
    ]
    return write_stream(out, numbered(cases, rng, "tv"), documents)


def help_centre_stream(
    source: Path, prefix: str, out: Path, out_of_scope: Callable[[random.Random], list[dict[str, str]]]
) -> Path:
    """A help centre's articles (`source`: title, text, questions) with a fifth of them left out, its questions as
    cases that expect the article, and the tickets `out_of_scope` draws (subject, body) as cases that expect no
    answer. One random generator, seeded SEED, chooses in that order, then shuffles the arrival order."""
    rng = random.Random(SEED)
    articles = json.loads(source.read_text(encoding="utf-8"))["articles"]
    groups = {f"{prefix}-{n:02d}": article["questions"] for n, article in enumerate(articles)}
    removed = without_articles(groups, NO_ARTICLE_SHARE, rng)
    documents = {
        f"{prefix}-{n:02d}.md": f"# {article['title']}\n\n{article['text']}\n"
        for n, article in enumerate(articles)
        if f"{prefix}-{n:02d}" not in removed
    }
    cases = [
        {
            "subject": "",
            "body": question,
            "expected_action": "resolve",
            "expected_evidence": [f"{prefix}-{n:02d}"],
            "answer": article["text"],
            "question": f"{prefix}-{n:02d}",
            "has_article": f"{prefix}-{n:02d}" not in removed,
        }
        for n, article in enumerate(articles)
        for question in article["questions"]
    ]
    cases += [
        {**ticket, "expected_action": "escalate", "question": f"{prefix}-out-{n}", "has_article": False}
        for n, ticket in enumerate(out_of_scope(rng))
    ]
    return write_stream(out, numbered(cases, rng, prefix), documents)


def bike_stream(data_dir: Path, out: Path) -> Path:
    with (data_dir / "itsm-tickets" / "tickets_dev.csv").open(encoding="utf-8", errors="replace") as handle:
        rows = [row for row in csv.DictReader(handle) if len((row.get("Description") or "").split()) >= 6]
    it_tickets = [{"subject": row["Short description"], "body": row["Description"]} for row in rows]
    return help_centre_stream(BIKE, "bike", out, lambda rng: rng.sample(it_tickets, IT_TICKETS))


def router_stream(data_dir: Path, out: Path) -> Path:
    questions = json.loads(ROUTER.read_text(encoding="utf-8"))["out_of_scope"]
    return help_centre_stream(ROUTER, "router", out, lambda _: [{"subject": "", "body": text} for text in questions])


def demo_stream(out: Path) -> Path:
    """The demo tickets in the feed's order with the demo articles; replies to earlier tickets are left out."""
    articles = {path.name: path.read_text(encoding="utf-8") for path in sorted((DEMO / "kb").glob("*.md"))}
    words = {name: set(WORD.findall(text.lower())) for name, text in articles.items()}
    cases = []
    for line in (DEMO / "tickets.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["kind"] != "ticket":
            continue
        asked = set(WORD.findall(f"{record['subject']} {record['body']}".lower()))
        closest = max(articles, key=lambda name: len(asked & words[name]))
        action = record["expected_action"] if record["expected_action"] in ("resolve", "ask") else "escalate"
        cases.append(
            {
                "id": record["id"],
                "subject": record["subject"],
                "body": record["body"],
                "category": record.get("category") or "",
                "expected_action": action,
                "answer": opening(articles[closest]) if action == "resolve" else "",
                "question": record["id"],
                "has_article": action == "resolve",
            }
        )
    return write_stream(out, cases, articles)


def opening(article: str) -> str:
    """An article's first paragraphs without headings: what a person would paste as the answer."""
    paragraphs = [part.strip() for part in article.split("\n\n") if part.strip() and not part.startswith("#")]
    return "\n\n".join(paragraphs[:2])[:900]


def numbered(cases: list[dict[str, Any]], rng: random.Random, prefix: str) -> list[dict[str, Any]]:
    """The cases in a random arrival order, each with its position as id."""
    rng.shuffle(cases)
    return [{"id": f"{prefix}-{n:04d}", **case} for n, case in enumerate(cases, 1)]


STREAMS = {"tv": tv_stream, "bike": bike_stream, "router": router_stream}


def build(data_dir: Path, out: Path, names: list[str]) -> dict[str, Path]:
    built = {name: STREAMS[name](data_dir, out / name) for name in names if name in STREAMS}
    if "demo" in names:
        built["demo"] = demo_stream(out / "demo")
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the shared data folder (emanual-qa/, itsm-tickets/)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--streams", nargs="+", default=["tv", "bike", "demo"])
    args = parser.parse_args()
    for name, folder in build(args.data_dir, args.out, args.streams).items():
        cases = [json.loads(line) for line in (folder / "cases.jsonl").read_text(encoding="utf-8").splitlines()]
        without = sum(not case["has_article"] and case["expected_action"] == "resolve" for case in cases)
        print(f"{name}: {len(cases)} cases ({without} answerable only by a person's answer), {folder}")


if __name__ == "__main__":
    main()
