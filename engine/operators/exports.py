"""CSV downloads that a spreadsheet opens as data: no cell from a ticket, a source or an operator runs as a formula.

OWASP "CSV injection": a cell starting with =, +, -, @, a tab or a carriage return is prefixed with a single
quote, so Excel, LibreOffice and Google Sheets show the text instead of evaluating it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """`value` as a spreadsheet shows it literally; numbers, dates and empty cells stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with every text cell, column name and index label neutralised; numbers keep their type."""
    safe = frame.rename(columns=neutralise)
    if not pd.api.types.is_numeric_dtype(safe.index):
        safe.index = safe.index.map(
            lambda label: tuple(map(neutralise, label)) if isinstance(label, tuple) else neutralise(label)
        )
    for column in safe.select_dtypes(include=["object", "string", "category"]).columns:
        safe[column] = safe[column].map(neutralise)
    return safe


def to_safe_csv(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV bytes, every text cell and column name neutralised; what every export uses."""
    return neutralise_frame(frame.rename(columns=str)).to_csv(index=False).encode()
