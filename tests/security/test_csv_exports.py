"""CSV downloads neutralise formulas (OWASP "CSV injection"): text from tickets, sources and operators stays text.

That includes the "Download as CSV" of every table's own toolbar: switched off in the shipped configuration, and
every table goes through ui/tables.py, which neutralises the text whenever it is switched back on.
"""

from __future__ import annotations

import ast
import csv
import io
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import streamlit
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.settings import Settings
from engine.operators.actions import override_decision
from engine.operators.auth import create_operator
from engine.operators.exports import FORMULA_PREFIXES, neutralise, to_safe_csv
from engine.operators.permissions import Actor
from tests.factories import drafted, new_ticket
from tests.pages.conftest import open_page
from tests.pages.seed import scored
from tests.security.conftest import lines_of
from ui.tables import EXPORT_OFF

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


TABLE_CALLS = {"dataframe", "data_editor", "table"}


def dashboard_files() -> list[Path]:
    return [ROOT / "Home.py", *sorted((ROOT / "pages").rglob("*.py")), *sorted((ROOT / "ui").rglob("*.py"))]


def test_every_table_goes_through_the_table_helper() -> None:
    """`st.dataframe` / `st.data_editor` (on `st` or any container) only in ui/tables.py; `st.table` nowhere."""
    offenders = []
    for path in dashboard_files():
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and where != "ui/tables.py":
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if called in TABLE_CALLS or called == "set_option":
                    offenders.append(f"{where}:{node.lineno} {called}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("streamlit"):
                offenders += [f"{where}:{node.lineno} import {a.name}" for a in node.names if a.name in TABLE_CALLS]
    assert offenders == []


def test_the_shipped_configuration_switches_the_tables_own_export_off() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["client"]["disableDataExport"] is True


@pytest.fixture(params=[True, False], ids=["export-off", "export-switched-on"])
def table_export_off(request: pytest.FixtureRequest) -> Iterator[bool]:
    """The shipped configuration, and a deployment that switched the tables' own CSV download back on."""
    previous = streamlit.config.get_option(EXPORT_OFF)
    streamlit.config.set_option(EXPORT_OFF, request.param)
    yield request.param
    streamlit.config.set_option(EXPORT_OFF, previous)


def table_text(table: pd.DataFrame) -> list[str]:
    """Every text a table's CSV would hold: column names, index labels and cells."""
    labels = [*table.columns, *(table.index if not isinstance(table.index, pd.RangeIndex) else [])]
    return [str(label) for label in labels] + [cell for cell in table.to_numpy().ravel() if isinstance(cell, str)]


def test_the_queue_shows_subjects_as_written_unless_its_csv_download_is_on(
    app: Settings, session_factory: sessionmaker[Session], table_export_off: bool
) -> None:
    for formula in FORMULAS:
        new_ticket(session_factory, app, subject=formula)
    at = open_page("pages/1_Queue.py")
    assert not at.exception
    shown = sorted(at.dataframe[0].value["subject"])
    stored = [formula.lstrip() for formula in FORMULAS]
    assert shown == sorted(stored if table_export_off else [neutralise(subject) for subject in stored])


@pytest.mark.parametrize("table_export_off", [False], indirect=True, ids=["export-switched-on"])
def test_no_table_on_any_page_holds_a_formula_when_the_tables_csv_download_is_on(
    app: Settings, session_factory: sessionmaker[Session], table_export_off: bool
) -> None:
    """Formulas in every field a table shows (subject, source, category, team, reason, operator name)."""
    lee = Actor("lee", Role.LEAD)
    for formula in FORMULAS:
        ticket_id = new_ticket(session_factory, app, subject=formula, source=formula[:50], category=formula)
        with session_factory.begin() as session:
            override_decision(session, app, lee, ticket_id, "escalate", reason=formula, team=formula)
    with session_factory.begin() as session:
        create_operator(session, Actor("ada", Role.ADMIN), FORMULAS[0][:100], Role.LEAD, password="long enough pw")
    ticket_id, _ = drafted(session_factory, app, subject=FORMULAS[0], requester_email="-lead@customer.example")
    scored(session_factory, ticket_id)
    pages = [("Home.py", {}), ("pages/1_Queue.py", {}), ("pages/2_Ticket.py", {"id": str(ticket_id)})]
    pages += [(f"pages/{name}.py", {}) for name in ("3_Knowledge_Base", "4_Metrics", "5_Settings", "6_Audit")]
    tables = []
    for page, query in pages:
        at = open_page(page, "ada", **query)
        assert not at.exception, page
        tables += [(page, table.value) for table in at.dataframe]
    assert "'-lead@customer.example" in [
        text for page, table in tables if "Ticket" in page for text in table_text(table)
    ]
    live = [(page, text) for page, table in tables for text in table_text(table) if text.startswith(FORMULA_PREFIXES)]
    assert {page for page, _ in tables} >= {page for page, _ in pages} - {"pages/3_Knowledge_Base.py"}
    assert any(text.startswith("'=") for _, table in tables for text in table_text(table)), "formulas reached tables"
    assert live == []
