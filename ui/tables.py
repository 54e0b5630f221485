"""Every table on the dashboard goes through here, so no table hands an operator a CSV with a live formula.

Streamlit's own table toolbar offers "Download as CSV" and copies cells, both writing cell values as they are
(no OWASP quote, unlike our export buttons). `.streamlit/config.toml` switches that export off
(`client.disableDataExport`: the button is not rendered, read-only cells cannot be copied), so tables show customer
text exactly as written. Should a deployment switch it back on (a flag or an environment variable), the text cells
are shown neutralised instead (engine/operators/exports.py), so the toolbar's file still carries no formula.

`st.table` has no place here: it renders every cell as Markdown, so customer text would become links.
"""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from engine.operators.exports import FORMULA_PREFIXES, neutralise_frame
from ui import glossary

EXPORT_OFF = "client.disableDataExport"


def table_export_is_off() -> bool:
    """True when Streamlit renders no CSV download and no copy for tables (the shipped configuration)."""
    return bool(st.get_option(EXPORT_OFF))


def show_table(data: Any, **kwargs: Any) -> Any:
    """`st.dataframe`, with text neutralised whenever the table's own CSV download is on."""
    return st.dataframe(data if table_export_is_off() else _neutralised(data), **kwargs)


def edit_table(data: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """`st.data_editor`; when the table's CSV download is on, text is shown neutralised and read back as typed."""
    if table_export_is_off():
        return st.data_editor(data, **kwargs)
    return _restored(st.data_editor(neutralise_frame(data), **kwargs))


def in_words(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as people read it: column names in words ("reopen_rate" reads "re-open rate"), categories, sources and
    job names in words, and an empty cell as "—" instead of `None`."""
    shown = frame.copy()
    for column, name in (
        ("category", glossary.category),
        ("source", glossary.connector),
        ("connector", glossary.connector),
    ):
        if column in shown.columns:
            shown[column] = shown[column].map(lambda value, name=name: name(value) if isinstance(value, str) else value)
    for column in shown.columns:
        if shown[column].isna().any():  # one type per column, or Arrow refuses it: the whole column as text
            shown[column] = [glossary.value(None if pd.isna(cell) else cell) for cell in shown[column]]
    return shown.rename(columns=lambda column: glossary.label(str(column)) if "_" in str(column) else column)


def short_headers(labels: dict[str, tuple[str, str]], columns: Any) -> dict[str, Any]:
    """Column settings showing each long header of `columns` as a short one with the full words in its tooltip:
    a header wider than its values is cut to "…" at 1440 px. `labels` maps a header, or the start of one whose end
    varies ("fitted 0.75 …"), to (short header, full words)."""
    shown = {}
    for column in map(str, columns):
        found = labels.get(column) or next((pair for start, pair in labels.items() if column.startswith(start)), None)
        if found:
            shown[column] = st.column_config.Column(found[0], help=found[1])
    return shown


def _neutralised(data: Any) -> Any:
    if isinstance(data, Styler):
        safe = copy.copy(data)
        safe.data = neutralise_frame(data.data)
        return safe
    return neutralise_frame(data if isinstance(data, pd.DataFrame) else pd.DataFrame(data))


def _restored(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo the quote the editor showed, so a value is saved as it was before it was neutralised."""

    def unquote(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES):
            return value[1:]
        return value

    restored = frame.rename(columns=unquote)
    for column in restored.select_dtypes(include=["object", "string", "category"]).columns:
        restored[column] = restored[column].map(unquote)
    return restored
