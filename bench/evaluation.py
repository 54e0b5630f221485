"""Decision quality on real data: the EMQA e-manual questions through `python -m engine.evaluate`.

With only the Smart TV manual in the knowledge base (one document per section), every Smart TV
question is answerable (right action: resolve, citing its labelled section) and every Galaxy S10
question is out of scope (right action: anything but an auto-sent resolution).

    .venv/bin/python bench/evaluation.py ../shared/data [--out report.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from retrieval import label, load_questions, load_sections  # noqa: E402

from engine.evaluate import main as evaluate  # noqa: E402

TV_MANUAL = "emanual-qa/smart_tv_remote_manual_corpus.json"
S10_QUESTIONS = "emanual-qa/s10_50_questions.csv"


def section_file(index: int, title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:50]
    return f"tv-{index:03d}-{slug}.txt"


def build_dataset(data_dir: Path, out: Path) -> tuple[Path, Path, dict[str, int]]:
    """Write the TV manual as one text file per section, and every question as a labelled ticket."""
    sections = load_sections(data_dir / TV_MANUAL)
    knowledge = out / "kb"
    knowledge.mkdir()
    for index, (title, text) in enumerate(sections):
        (knowledge / section_file(index, title)).write_text(f"{title}\n\n{text}\n", encoding="utf-8")
    questions = load_questions(data_dir)
    counts = label(questions, sections)
    cases = [
        {
            "id": f"tv-{n}",
            "subject": "",
            "body": question.question,
            "category": "smart_tv (in scope)",
            "expected_action": "resolve",
            "expected_evidence": [section_file(index, sections[index][0])[:7] for index in sorted(question.relevant)],
        }
        for n, question in enumerate(questions)
        if question.relevant
    ]
    with (data_dir / S10_QUESTIONS).open(encoding="utf-8") as handle:
        cases += [
            {
                "id": f"s10-{row['question_id']}",
                "subject": "",
                "body": row["question"],
                "category": "galaxy_s10 (out of scope)",
                "expected_action": "not_resolve",
            }
            for row in csv.DictReader(handle)
        ]
    dataset = out / "cases.jsonl"
    dataset.write_text("\n".join(json.dumps(case) for case in cases) + "\n", encoding="utf-8")
    return dataset, knowledge, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path, help="the shared data folder (holds emanual-qa/)")
    parser.add_argument("--out", type=Path, default=Path("evaluation-report.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        dataset, knowledge, counts = build_dataset(args.data_dir, Path(scratch))
        print(
            f"Smart TV questions labelled by section title: {counts['title']}, by answer text: {counts['answer']}, "
            f"unlabelled (left out): {counts['unlabelled']}; Galaxy S10 questions: out of scope"
        )
        evaluate([str(dataset), "--kb", str(knowledge), "--out", str(args.out)])


if __name__ == "__main__":
    main()
