"""What the retrieval-only drafts of the demo say: heading-only drafts, tables, and needless questions.

Builds the demo knowledge base (connectors/demo_data/kb/*.md, local MiniLM), calibrates it as the engine's
`calibrate` job would, analyses every demo ticket with LLM_PROVIDER=none, and prints:
- proposed resolutions, and how many of them are a section heading alone (one step that is the cited section's
  own heading), or carry table rows;
- requests for information that ask for a workspace of a customer who gave a `ws_…` id, and billing requests
  that ask for an error message or a screenshot;
- a few drafts in full, to read.

    .venv/bin/python bench/drafts.py [--examples 5] [--uncalibrated]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.demo import ALLOWED_DOMAINS, CONTACT_POINTS, load_sample  # noqa: E402
from engine.analysers.retrieval_analyser import RetrievalAnalyser  # noqa: E402
from engine.core.analysis import AnalysisResult, TicketSnapshot  # noqa: E402
from engine.core.db import make_engine, make_session_factory, upgrade_database  # noqa: E402
from engine.core.settings import load_settings  # noqa: E402
from engine.jobs import calibrate_knowledge  # noqa: E402
from kb.embed import go_offline  # noqa: E402
from kb.indexer import add_document  # noqa: E402

KB_FILES = ROOT / "connectors" / "demo_data" / "kb"
WORKSPACE_ID = re.compile(r"\bws_[a-z0-9]{3,}\b", re.I)


def demo_snapshots() -> list[TicketSnapshot]:
    records = [record for record in load_sample() if record["kind"] == "ticket" and not record.get("headers")]
    return [
        TicketSnapshot(
            id=number,
            reference=f"TCKT-{number}",
            subject=record["subject"],
            description=record["body"],
            email=record["requester_email"],
            requester_name=None,
            source="demo",
            priority=record.get("priority"),
            category=record.get("category"),
            team=None,
            follow_up_count=0,
        )
        for number, record in enumerate(records, 1)
    ]


def heading_only(result: AnalysisResult) -> bool:
    """One step that is the cited section's own heading: the draft says nothing."""
    if result.decision != "resolve" or len(result.resolution_steps) != 1:
        return False
    location: dict[str, Any] = dict(result.evidence[0].get("location_data") or {})  # type: ignore[call-overload]
    heading = str(location.get("section") or location.get("title") or "").rsplit(" > ", 1)[-1]
    return result.resolution_steps[0].strip() == heading.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=5, help="drafts printed in full")
    parser.add_argument(
        "--uncalibrated", action="store_true", help="skip the calibration: the default fusion and cautious confidence"
    )
    args = parser.parse_args()
    go_offline()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        engine = make_engine(url)
        upgrade_database(engine)
        factory = make_session_factory(engine)
        settings = load_settings(
            _env_file=None,
            DATA_DIR=Path(folder) / "data",
            DATABASE_URL=url,
            DEMO_FEED_ENABLED=False,
            ENGINE_ENABLED=False,
            OUTGOING_ALLOWED_DOMAINS=",".join(ALLOWED_DOMAINS),
            OUTGOING_CONTACT_POINTS=",".join(CONTACT_POINTS),
        )
        for path in sorted(KB_FILES.glob("*.md")):
            add_document(factory, settings, path.name, path.read_bytes(), uploaded_by="bench")
        if not args.uncalibrated:
            calibrate_knowledge(factory, settings)
        analyser = RetrievalAnalyser(factory, settings)
        tickets = demo_snapshots()
        results = [(ticket, analyser.analyse(ticket)) for ticket in tickets]
        engine.dispose()
    resolved = [(ticket, result) for ticket, result in results if result.decision == "resolve"]
    headings = [(ticket, result) for ticket, result in resolved if heading_only(result)]
    tables = [(t, r) for t, r in resolved if "|" in str(r.evidence[0].get("passage") or r.evidence[0]["text"])]
    asks = [(ticket, result) for ticket, result in results if result.decision == "ask"]
    workspace_asked = [
        (t, r)
        for t, r in asks
        if WORKSPACE_ID.search(t.text) and any("which workspace" in q.lower() for q in r.follow_up_questions)
    ]
    screenshot_asked = [
        (t, r)
        for t, r in asks
        if t.category == "billing"
        and any("screenshot" in q.lower() or "error" in q.lower() for q in r.follow_up_questions)
    ]
    print(
        f"demo tickets analysed: {len(results)}; proposed resolutions: {len(resolved)}; "
        f"requests for information: {len(asks)}"
    )
    print(f"resolutions that are a section heading alone: {len(headings)}")
    print(f"resolutions citing a passage with a table: {len(tables)}")
    print(f"requests for information asking which workspace of a customer who gave a ws_ id: {len(workspace_asked)}")
    print(f"billing requests for information asking for an error message or screenshot: {len(screenshot_asked)}")
    for ticket, result in (headings + tables)[: args.examples]:
        print(f"\n--- {ticket.reference} {ticket.subject!r} cites {result.evidence[0]['location']}")
        for number, step in enumerate(result.resolution_steps, 1):
            print(f"  {number}. {step}")
    for ticket, result in (workspace_asked + screenshot_asked + asks)[: args.examples]:
        print(f"\n--- {ticket.reference} {ticket.subject!r} ({ticket.category}) asks:")
        for question in result.follow_up_questions:
            print(f"  - {question}")


if __name__ == "__main__":
    main()
