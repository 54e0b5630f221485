"""Clickjacking in headless Chromium: a page of another origin that frames the dashboard gets an error page, not the
dashboard (the headers of ui/security_headers.py, served by app.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from tests.app_process import app_environment, streamlit_app
from tests.browser.conftest import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_another_site_cannot_frame_the_dashboard(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    env = app_environment(settings)
    with streamlit_app(env, tmp_path / "streamlit.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        with page.expect_console_message(lambda message: "frame-ancestors" in message.text, timeout=30_000):
            page.set_content(f'<iframe src="{url}/" width="800" height="600"></iframe>')
        assert [frame.url for frame in page.frames[1:]] == ["chrome-error://chromewebdata/"]
        browser.close()
