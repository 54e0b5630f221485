"""What an operator waits for in a real browser (headless Chromium against `streamlit run app.py`), where a
fragment's rerun is the browser's to ask for (AppTest in bench/dashboard.py always reruns the whole page): the
first page after the server starts (a new server for each of the runs: the sign-in form, and at the end Home
for the signed-in browser, whose cookie resumes its session), the sign-in, the queue's keys (j / k move
the focus, a asks for the confirmation) and opening the focused ticket with Enter (the path a click on a cell
takes: the queue's part reruns and switches to the ticket; Playwright's clicks on the grid's canvas selected no
cell here, so Enter stands in).
Each figure is the wall time from the action to the moment the page shows its answer. Printed, never asserted.

    .venv/bin/python bench/queue_browser.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/nts_bench]
                                            [--tickets 100000] [--events 1000000] [--runs 15]

The database is the one bench/dashboard.py fills (made here too if missing).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import PASSWORD, bench_arguments, percentiles, prepare  # noqa: E402
from tests.app_process import streamlit_app  # noqa: E402
from tests.browser.conftest import CHROMIUM_ARGS  # noqa: E402

FOCUS = re.compile(r"▶ TCKT-\d+")
expect.set_options(timeout=60_000)


def waited(action: Callable[[], None], shown: Callable[[], None]) -> float:
    """Seconds from `action` until `shown` returns (it waits for what the page answers)."""
    started = time.perf_counter()
    action()
    shown()
    return time.perf_counter() - started


def focus(page: Page) -> str:
    return page.get_by_text(FOCUS).first.inner_text().split(" · ")[0]


def moved(page: Page, before: str) -> Callable[[], None]:
    """Waits until the focus line names another ticket than `before`."""
    return lambda: expect(page.get_by_text(FOCUS).first).not_to_have_text(re.compile(re.escape(before) + r"\b"))


def queue_shown(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Queue", exact=True).click()
    expect(page.get_by_text(FOCUS).first).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    page.get_by_role("heading", name="Queue").click()  # the keys go to the page, not to a field


def measure(url: str, runs: int) -> dict[str, list[float]]:
    env = {
        "DATABASE_URL": url,
        "DATA_DIR": tempfile.mkdtemp(prefix="nts-bench-"),
        "ENGINE_ENABLED": "false",
        "DEMO_FEED_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    waits: dict[str, list[float]] = {
        "server start to sign-in form": [],
        "sign-in to Home": [],
        "key j or k": [],
        "key a (confirmation)": [],
        "open a ticket (Enter)": [],
        "server start to Home, signed in": [],
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        for _ in range(runs):  # a new server each time; the last one stays up for the rest
            started = time.perf_counter()  # the browser is up: from here on it is the server's start and first page
            with streamlit_app(env, Path(env["DATA_DIR"]) / "streamlit.log") as app:
                page.goto(app)
                expect(page.get_by_label("Username")).to_be_visible(timeout=300_000)
                waits["server start to sign-in form"].append(time.perf_counter() - started)
        with streamlit_app(env, Path(env["DATA_DIR"]) / "streamlit.log") as app:
            page.goto(app)
            expect(page.get_by_label("Username")).to_be_visible(timeout=300_000)
            page.get_by_label("Username").fill("bench")
            page.get_by_role("textbox", name="Password").fill(PASSWORD)
            waits["sign-in to Home"].append(
                waited(
                    page.get_by_role("button", name="Sign in").click,
                    lambda: expect(page.get_by_role("heading", name="Today")).to_be_visible(timeout=120_000),
                )
            )
            queue_shown(page)
            for key in ("j", "k") * runs:
                before = focus(page)
                waits["key j or k"].append(waited(lambda key=key: page.keyboard.press(key), moved(page, before)))
            approve = page.get_by_role("button", name="Approve draft (a)")
            question = page.get_by_text("exactly as drafted")
            while len(waits["key a (confirmation)"]) < runs:
                if approve.is_enabled():
                    waits["key a (confirmation)"].append(
                        waited(lambda: page.keyboard.press("a"), lambda: expect(question).to_be_visible())
                    )
                    page.get_by_role("button", name="Cancel").click()
                    expect(question).to_have_count(0)
                before = focus(page)
                page.keyboard.press("j")
                moved(page, before)()
            ticket_heading = page.get_by_role("heading", name=re.compile(r"TCKT-\d+"))
            for _ in range(runs):
                waits["open a ticket (Enter)"].append(
                    waited(lambda: page.keyboard.press("Enter"), lambda: expect(ticket_heading).to_be_visible())
                )
                queue_shown(page)
        for _ in range(runs):  # the browser keeps its session cookie: a signed-in lead reloading after a restart
            started = time.perf_counter()
            with streamlit_app(env, Path(env["DATA_DIR"]) / "streamlit.log") as app:
                page.goto(app)
                expect(page.get_by_role("heading", name="Today")).to_be_visible(timeout=300_000)
                waits["server start to Home, signed in"].append(time.perf_counter() - started)
        browser.close()
    return waits


def main() -> int:
    args = bench_arguments(__doc__).parse_args()
    prepare(args.url, args.tickets, args.events)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    print(f"{'in the browser':<32}{'':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}", flush=True)
    for label, timings in measure(args.url, args.runs).items():
        percentiles(label, None, timings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
