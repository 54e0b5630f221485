"""ui/tables.py: tables show text as written while their own CSV download is off, neutralised while it is on, and an
editor reads back what the operator saw before it was neutralised."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from tests.waiting import SCRIPT_RUN_WAIT
from ui.tables import EXPORT_OFF, short_headers

FRAME = pd.DataFrame({"category": ["=1+1", "-vpn", "@team", "billing"], "floor": [0.5, -0.25, 0.7, 0.8]})


def tables_script() -> None:
    import pandas as pd
    import streamlit as st

    from ui.tables import edit_table, show_table

    frame = pd.DataFrame({"category": ["=1+1", "-vpn", "@team", "billing"], "floor": [0.5, -0.25, 0.7, 0.8]})
    show_table(frame, hide_index=True, key="plain")
    show_table(frame.style.highlight_max(subset=["floor"]), hide_index=True, key="styled")
    st.session_state["read_back"] = edit_table(frame, hide_index=True, key="editor")


@pytest.fixture(params=[True, False], ids=["export-off", "export-switched-on"])
def table_export_off(request: pytest.FixtureRequest) -> Iterator[bool]:
    previous = streamlit.config.get_option(EXPORT_OFF)
    streamlit.config.set_option(EXPORT_OFF, request.param)
    yield request.param
    streamlit.config.set_option(EXPORT_OFF, previous)


def test_tables_neutralise_text_only_while_their_csv_download_is_on(table_export_off: bool) -> None:
    at = AppTest.from_function(tables_script, default_timeout=SCRIPT_RUN_WAIT).run()
    assert not at.exception
    expected = list(FRAME["category"]) if table_export_off else ["'=1+1", "'-vpn", "'@team", "billing"]
    for table in at.dataframe:
        assert list(table.value["category"]) == expected
        assert list(table.value["floor"]) == list(FRAME["floor"]), "numbers keep their value and type"
    assert len(at.dataframe) == 3
    pd.testing.assert_frame_equal(at.session_state["read_back"], FRAME)


def test_short_headers_name_columns_by_their_whole_header_or_its_start() -> None:
    labels = {"mean confidence": ("confidence", "mean AI confidence"), "fitted ": ("becomes", "minimum after it")}
    shown = short_headers(labels, ["category", "mean confidence", "fitted 0.75 (auto-send minimum) becomes"])
    assert set(shown) == {"mean confidence", "fitted 0.75 (auto-send minimum) becomes"}
    assert (shown["mean confidence"]["label"], shown["mean confidence"]["help"]) == ("confidence", "mean AI confidence")
    assert shown["fitted 0.75 (auto-send minimum) becomes"]["label"] == "becomes"
