"""The operator's workspace at 1440×900 in headless Chromium: every page and every tab of an open ticket, each
screenshotted, with no Streamlit exception, no internal name or Python value in the visible text or in any table's
headers and cells, and a queue that fits the screen; the keyboard works in the queue after moving between pages in
the app (sidebar and Back, no reload), a tab keeps its place after an action, and a reload keeps the operator
signed in."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS, go, shoot
from tests.pages.conftest import PASSWORD
from tests.waiting import wait_until
from ui.glossary import INTERNAL_IDENTIFIERS, TELLTALES

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LEAK = re.compile(
    "|".join([*(rf"\b{re.escape(name)}\b" for name in INTERNAL_IDENTIFIERS), *(re.escape(t) for t in TELLTALES)])
)
TICKET_TABS = ["Conversation", "Timeline", "Evidence", "Escalation score", "Attachments", "Outgoing mail"]


SNAKE_HEADER = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)+$")
TABLE_TEXT = """main => Array.from(main.querySelectorAll("[data-testid='stDataFrame']"))
  .filter(frame => frame.getClientRects().length > 0)
  .map(frame => {
    const table = frame.querySelector("table");
    return table && {
      headers: Array.from(table.querySelectorAll("th")).map(cell => cell.textContent.trim()),
      cells: Array.from(table.querySelectorAll("td")).map(cell => cell.textContent.trim()),
    };
  })"""
"""Each shown table's own accessible copy of what its canvas draws: every header and the cells in view (a table
in a tab not selected is not drawn, and has none)."""


def check(page: Page, name: str) -> int:
    """Screenshot the page, then fail on an exception box, an engine identifier or a Python value anywhere a person
    can read, tables included: a `None` cell, a snake_case header. Returns how many tables it read (a table the
    browser has not drawn, in a closed expander or a tab not selected, has no accessible copy yet)."""
    shoot(page, f"workspace_{name}")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    main = page.get_by_test_id("stMain")
    visible = main.inner_text()
    leaks = sorted({match.group(0) for match in LEAK.finditer(visible)})
    assert not leaks, f"{name} shows internal names: {leaks}"
    tables = [table for table in main.evaluate(TABLE_TEXT) if table and table["headers"]]
    for table in tables:
        snake = [header for header in table["headers"] if SNAKE_HEADER.match(header)]
        assert not snake, f"{name} has snake_case headers: {snake}"
        raw = sorted({cell for cell in table["cells"] if cell == "None" or LEAK.search(cell)})
        assert not raw, f"{name} has raw cells: {raw}"
    return len(tables)


def sign_in(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill("ada")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Today")).to_be_visible()


def selected_tab(page: Page) -> str:
    return page.get_by_role("tab", selected=True).first.inner_text().strip()


def test_every_page_and_tab_reads_in_human_words_and_fits(dashboard: tuple[str, int]) -> None:
    url, ticket_id = dashboard
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        sign_in(page, url)
        wait_until(  # HttpOnly: set by the server, invisible to document.cookie
            lambda: any(cookie["name"] == "nts_session" for cookie in page.context.cookies()),
            timeout=60,
            what="the session cookie",
        )
        page.reload()
        expect(page.get_by_role("heading", name="Today")).to_be_visible()
        expect(page.get_by_role("button", name="Sign in")).to_have_count(0)
        page.get_by_text("Full health check").click()
        page.get_by_role("button", name="Run health check").click()
        expect(page.get_by_text("Details (the full report)")).to_be_visible()
        check(page, "1_home")

        go(page, "Queue", "Queue")
        grid = page.get_by_test_id("stDataFrame").first
        expect(grid).to_be_visible()
        overflow = grid.evaluate(
            "element => { const s = element.querySelector('.dvn-scroller');"
            " return s ? s.scrollWidth - s.clientWidth : -1; }"
        )
        assert 0 <= overflow <= 1, f"the queue scrolls sideways by {overflow} px at 1440 px"
        expect(grid.locator("table th").first).to_be_attached()  # its accessible copy is drawn after the canvas
        assert check(page, "2_queue") == 1, "the queue's table is read cell by cell"
        expect(page.get_by_text("▶ TCKT-2")).to_be_visible()
        page.get_by_role("heading", name="Queue").click()
        page.keyboard.press("j")
        expect(page.get_by_text("▶ TCKT-1")).to_be_visible()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="TCKT-1")).to_be_visible()

        go(page, "Ticket", "Ticket")
        page.get_by_label("Open ticket").fill(f"TCKT-{ticket_id}")
        page.get_by_label("Open ticket").press("Enter")
        expect(page.get_by_role("heading", name=f"TCKT-{ticket_id}")).to_be_visible()
        for number, tab in enumerate(TICKET_TABS):
            page.get_by_role("tab", name=tab).click()
            check(page, f"3_ticket_{number}_{tab.lower().replace(' ', '_')}")

        for name, heading in (
            ("Knowledge Base", "Knowledge base"),
            ("Metrics", "Metrics"),
            ("Settings", "Settings"),
            ("Audit", "Audit log"),
        ):
            go(page, name, heading)
            check(page, f"4_{name.lower().replace(' ', '_')}")
            if name == "Settings":
                page.get_by_role("tab", name="Connectors & engine").click()
                expect(page.get_by_text("Engine jobs")).to_be_visible()
                check(page, "4_settings_connectors")

        browser.close()


def test_keys_work_after_moving_between_pages_and_tabs_keep_their_place(dashboard: tuple[str, int]) -> None:
    url, ticket_id = dashboard
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        sign_in(page, url)

        go(page, "Queue", "Queue")  # in the app: no reload from here on
        expect(page.get_by_text("▶ TCKT-2")).to_be_visible()
        go(page, "Metrics", "Metrics")
        page.go_back()
        expect(page.get_by_role("heading", name="Queue")).to_be_visible()
        expect(page.get_by_text("▶ TCKT-2")).to_be_visible()
        page.get_by_role("heading", name="Queue").click()
        page.keyboard.press("j")
        expect(page.get_by_text(f"▶ TCKT-{ticket_id}")).to_be_visible()
        go(page, "Home", "Today")
        go(page, "Queue", "Queue")
        expect(page.get_by_text(f"▶ TCKT-{ticket_id}")).to_be_visible()  # as a person would: the row, then the key
        page.get_by_role("heading", name="Queue").click()
        page.keyboard.press("k")
        expect(page.get_by_text("▶ TCKT-2")).to_be_visible()
        page.keyboard.press("j")
        expect(page.get_by_text(f"▶ TCKT-{ticket_id}")).to_be_visible()
        page.keyboard.press("a")
        question = page.get_by_text(f"Send the draft on TCKT-{ticket_id} exactly as drafted to its customer?")
        expect(question).to_be_in_viewport()
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
        check(page, "5_queue_confirmation")
        page.get_by_role("button", name="Cancel").click()
        expect(question).to_have_count(0)

        go(page, "Settings", "Settings")
        page.get_by_role("tab", name="E-mail templates").click()
        page.get_by_role("button", name="Save template").click()
        expect(page.get_by_text("saved as policy version 1")).to_be_visible()
        assert selected_tab(page) == "E-mail templates"
        page.get_by_role("tab", name="Connectors & engine").click()
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_text("Demo feed runs inside the desk: there is nothing to connect to.")).to_be_visible()
        assert selected_tab(page) == "Connectors & engine"
        check(page, "5_settings_connection_tested")

        go(page, "Knowledge Base", "Knowledge base")
        page.get_by_role("tab", name="Try a search").click()
        page.get_by_label("Question").fill("How do I reset my VPN token?")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("No evidence found")).to_be_visible()
        assert selected_tab(page) == "Try a search"
        check(page, "5_knowledge_base_searched")

        go(page, "Audit", "Audit log")
        check(page, "5_audit_after_actions")
        browser.close()
