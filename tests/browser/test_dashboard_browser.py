"""End to end in headless Chromium: sign in, open a ticket, edit and approve its draft, see it in the outbox and
the timeline, upload a PDF to the knowledge base and find it, and screenshot every page.

The app runs as `streamlit run` in a child process on a free loopback port, against this test's database.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import OutboxMessage
from tests.browser.conftest import CHROMIUM_ARGS, SCREENSHOTS, go, shoot
from tests.kb.files import make_pdf
from tests.pages.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_operator_journey(dashboard: tuple[str, int], session_factory: sessionmaker[Session]) -> None:
    url, ticket_id = dashboard
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(url)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        expect(page.get_by_text("VPN drops")).to_have_count(0)
        shoot(page, "0_sign_in")
        page.get_by_label("Username").fill("ada")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Today")).to_be_visible()
        expect(page.get_by_text("Drafts to approve", exact=True)).to_be_visible()
        shoot(page, "1_home")

        go(page, "Queue", "Queue")
        expect(page.get_by_text("2 tickets · page 1 of 1")).to_be_visible()
        expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
        shoot(page, "2_queue")

        go(page, "Ticket", "Ticket")
        page.get_by_label("Open ticket").fill(f"TCKT-{ticket_id}")
        page.get_by_label("Open ticket").press("Enter")
        expect(page.get_by_role("heading", name=f"TCKT-{ticket_id}")).to_be_visible()
        page.get_by_role("tab", name="Escalation score").click()
        expect(page.get_by_text("against threshold")).to_be_visible()
        shoot(page, "3_ticket")
        draft = page.locator("textarea[aria-label='Message']").first
        draft.fill("1. Switch the VPN client to TCP 443.\n2. Reconnect.")
        draft.press("Control+Enter")
        page.get_by_role("button", name="Send edited").click()
        page.get_by_role("button", name="Confirm and send").click()
        expect(page.get_by_text("Sent: done. It is in the timeline and the audit log.")).to_be_visible()
        page.get_by_role("tab", name="Outgoing mail").click()
        expect(page.get_by_text("Switch the VPN client to TCP 443").first).to_be_attached()
        page.get_by_role("tab", name="Timeline").click()
        shoot(page, "4_ticket_after_approval")
        with session_factory() as session:
            sent = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "resolution"))
            assert sent is not None and sent.body_text.startswith("1. Switch the VPN client to TCP 443.")

        go(page, "Knowledge Base", "Knowledge base")
        pdf = SCREENSHOTS.parent / "printer-guide.pdf"
        pdf.write_bytes(make_pdf(["Printer guide", "Toner error E42 means reseat the cartridge"]))
        page.locator("input[type='file']").set_input_files(str(pdf))
        expect(page.get_by_text("printer-guide.pdf")).to_be_visible()
        page.get_by_role("button", name="Add to the knowledge base").click()
        expect(page.get_by_text("1 of 1 file indexed.")).to_be_visible(timeout=60_000)
        shoot(page, "5_knowledge_base_upload")
        page.get_by_role("tab", name="Try a search").click()
        page.get_by_label("Question").fill("toner error E42")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("Toner error E42 means reseat the cartridge")).to_be_visible()
        shoot(page, "6_knowledge_base_search")

        go(page, "Metrics", "Metrics")
        expect(page.get_by_text("Tickets in and out per day")).to_be_visible()
        expect(page.get_by_test_id("stPlotlyChart").first).to_be_visible()
        shoot(page, "7_metrics")
        go(page, "Settings", "Settings")
        shoot(page, "8_settings")
        go(page, "Audit", "Audit log")
        expect(page.get_by_text("approved a draft").first).to_be_attached()
        shoot(page, "9_audit")
        browser.close()
