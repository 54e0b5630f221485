"""Streamlit's magic writes every bare expression at a page script's top level onto the page: a note meant for the
reader of the code (a string after an assignment, as modules document constants) shows up as text for operators."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = [ROOT / "Home.py", *sorted((ROOT / "pages").glob("*.py"))]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_bare_string_below_the_docstring(script: Path) -> None:
    body = ast.parse(script.read_text()).body[1:]  # the first statement is the module's docstring
    strings = [
        node.lineno
        for node in body
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    ]
    assert not strings, f"{script.name}: bare strings at lines {strings} would be written on the page"
