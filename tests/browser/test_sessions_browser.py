"""The session cookie in a real browser: set by the server (HttpOnly, page JavaScript cannot read it), brings a
reload back, and a copy of it in another browser dies with the sign-out."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, expect, sync_playwright

from tests.browser.conftest import CHROMIUM_ARGS
from tests.pages.conftest import PASSWORD
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def session_cookie(context: BrowserContext) -> dict | None:
    return next((cookie for cookie in context.cookies() if cookie["name"] == "nts_session"), None)


def test_the_cookie_is_http_only_survives_a_reload_and_a_copy_dies_with_the_sign_out(
    dashboard: tuple[str, int],
) -> None:
    url, _ = dashboard
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        victim = browser.new_context()
        page = victim.new_page()
        page.set_default_timeout(30_000)
        page.goto(url)
        page.get_by_label("Username").fill("ada")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Today")).to_be_visible()
        wait_until(lambda: session_cookie(victim) is not None, timeout=60, what="the session cookie")
        cookie = session_cookie(victim)
        assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert "nts_session" not in page.evaluate("document.cookie"), "page JavaScript cannot read it"
        assert cookie["value"] not in page.content(), "the token is never in the page"

        page.reload()
        expect(page.get_by_role("heading", name="Today")).to_be_visible()

        thief = browser.new_context()
        thief.add_cookies([cookie])
        stolen = thief.new_page()
        stolen.set_default_timeout(30_000)
        stolen.goto(url)
        expect(stolen.get_by_role("heading", name="Today")).to_be_visible()

        page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out", exact=True).click()
        expect(page.get_by_text("You are signed out.")).to_be_visible()
        wait_until(lambda: session_cookie(victim) is None, timeout=60, what="the browser to drop the cookie")

        stolen.reload()
        expect(stolen.get_by_role("button", name="Sign in")).to_be_visible()
        expect(stolen.get_by_role("heading", name="Today")).to_have_count(0)
        browser.close()
