"""CSV downloads neutralise formulas (OWASP "CSV injection"): text from tickets, sources and operators stays text."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.settings import Settings
from engine.operators.actions import Actor, override_decision
from engine.operators.auth import create_operator
from engine.operators.exports import FORMULA_PREFIXES, to_safe_csv
from tests.factories import new_ticket
from tests.pages.conftest import open_page
from tests.security.conftest import lines_of

ROOT = Path(__file__).resolve().parents[2]
FORMULAS = lines_of("formula-injection.txt")


def cells(data: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(data.decode())) for cell in row]


def test_every_formula_prefix_is_neutralised_and_numbers_are_kept() -> None:
    frame = pd.DataFrame({"text": FORMULAS, "number": range(-3, len(FORMULAS) - 3)})
    exported = pd.read_csv(io.BytesIO(to_safe_csv(frame)), dtype=str, keep_default_na=False)
    assert list(exported["text"]) == ["'" + formula for formula in FORMULAS]
    assert list(exported["number"]) == [str(n) for n in range(-3, len(FORMULAS) - 3)]


def test_no_csv_is_written_outside_the_shared_helper() -> None:
    """Every export goes through engine/operators/exports.py: a new `.to_csv(` or `csv.writer` elsewhere fails here."""
    writers = re.compile(r"\.to_csv\(|csv\.writer|csv\.DictWriter")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("engine", "pages", "ui", "kb", "connectors")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "exports.py" and writers.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders + [p for p in ["Home.py"] if writers.search((ROOT / p).read_text(encoding="utf-8"))] == []


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bytes every `st.download_button` on a page offered."""
    offered: list[bytes] = []
    original = streamlit.download_button

    def recording(label: str, data: Any, *args: Any, **kwargs: Any) -> Any:
        offered.append(data)
        return original(label, data, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", recording)
    return offered


def test_metrics_and_audit_downloads_carry_no_live_formula(
    app: Settings, session_factory: sessionmaker[Session], downloads: list[bytes]
) -> None:
    lee = Actor("lee", Role.LEAD)
    for formula in FORMULAS:
        ticket_id = new_ticket(session_factory, app, source=formula[:50], category=formula)
        with session_factory.begin() as session:
            override_decision(session, app, lee, ticket_id, "escalate", reason=formula, team=formula)
    with session_factory.begin() as session:
        create_operator(session, Actor("ada", Role.ADMIN), FORMULAS[0][:100], Role.LEAD, password="long enough pw")
    assert not open_page("pages/4_Metrics.py", "lee").exception
    audit = open_page("pages/6_Audit.py", "lee")
    audit.button(key="audit_export").click().run()
    everything = [cell for data in downloads for cell in cells(data)]
    assert len(downloads) >= 4
    assert {"'" + formula for formula in FORMULAS} & set(everything), "the payloads reached the exports"
    assert [cell for cell in everything if cell.startswith(FORMULA_PREFIXES)] == []
