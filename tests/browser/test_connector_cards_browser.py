"""The connector cards do not fade while their live part refreshes (ui/connectors.NO_FADE), in headless Chromium.

Streamlit fades what a running script has not redrawn yet. A one-fragment app shows it: after its first drawing, the
fragment's refresh holds before it draws (as Home's live part queries the database) until the test releases it, with
a card in the cards' container and one outside it; while the refresh is held, both are marked stale, and only the one
outside fades. The test samples during the hold and releases it; nothing depends on how fast either side runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.app_process import ROOT, answers, free_port
from tests.browser.conftest import CHROMIUM_ARGS
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]
APP = """
from datetime import timedelta
from pathlib import Path
import streamlit as st
from tests.waiting import wait_until
from ui.connectors import CARDS_KEY, NO_FADE

RELEASE = Path(__file__).with_name("release")

@st.fragment(run_every=timedelta(seconds=1))
def live() -> None:
    if st.session_state.setdefault("drawn", False):  # a refresh: held until the test has seen the stale elements
        wait_until(RELEASE.exists, timeout=300, interval=0.05, what="the test's release")
    st.session_state.drawn = True
    st.html(NO_FADE)
    st.container(key=CARDS_KEY).markdown("connector card")
    st.container(key="elsewhere").markdown("other element")

live()
"""
STATE = """key => {
  const element = document.querySelector(`.st-key-${key} [data-testid='stElementContainer']`);
  return element && {opacity: Number(getComputedStyle(element).opacity), stale: element.dataset.stale === "true"};
}"""


@pytest.fixture
def refreshing_app(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    script = tmp_path / "cards.py"
    script.write_text(APP)
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    with (tmp_path / "streamlit.log").open("w") as log:
        server = subprocess.Popen(
            command, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: answers(f"{url}/_stcore/health"), timeout=60, what="the cards app")
            yield url, tmp_path / "release"
        finally:
            server.terminate()
            server.wait(timeout=20)


def test_the_cards_keep_full_opacity_while_the_live_part_refreshes(refreshing_app: tuple[str, Path]) -> None:
    url, release = refreshing_app
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.get_by_text("other element").wait_for(timeout=60_000)
        cards, elsewhere = [], []

        def sample() -> bool:
            """Samples until the element outside the cards has faded in the held refresh (the fade is Streamlit's)."""
            cards.append(page.evaluate(STATE, "connector_cards"))
            elsewhere.append(page.evaluate(STATE, "elsewhere"))
            return any(state and state["stale"] and state["opacity"] < 0.9 for state in elsewhere)

        wait_until(sample, timeout=90, what="a refresh that fades what is outside the cards")
        release.touch()
        browser.close()
    stale_cards = [state for state in cards if state and state["stale"]]
    assert stale_cards, "the cards were redrawn in every refresh"
    assert min(state["opacity"] for state in stale_cards) == 1
