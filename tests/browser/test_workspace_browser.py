"""The operator's workspace at 1440×900 in headless Chromium: every page and every tab of an open ticket, each
screenshotted, with no Streamlit exception, no internal name in the visible text, and a queue that fits the
screen; the keyboard works in the queue, and a reload keeps the operator signed in."""

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


def check(page: Page, name: str) -> None:
    """Screenshot the page, then fail on an exception box or an engine identifier anywhere a person can read."""
    shoot(page, f"workspace_{name}")
    expect(page.get_by_test_id("stException")).to_have_count(0)
    visible = page.get_by_test_id("stMain").inner_text()
    leaks = sorted({match.group(0) for match in LEAK.finditer(visible)})
    assert not leaks, f"{name} shows internal names: {leaks}"


def test_every_page_and_tab_reads_in_human_words_and_fits(dashboard: tuple[str, int]) -> None:
    url, ticket_id = dashboard
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(url)
        page.get_by_label("Username").fill("ada")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Today")).to_be_visible()
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
        check(page, "2_queue")
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
