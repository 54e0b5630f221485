"""Browser tests: the app in a child process against this test's database, and the helpers every test shares.

Every expectation waits for what the page shows with a generous deadline: a busy machine renders slowly, and
Playwright's default of 5 s for `expect` made the journey fail beside other work while it passed alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from engine.operators.auth import create_first_admin
from tests.app_process import app_environment, streamlit_app
from tests.factories import drafted
from tests.kb.embeddings_emulator import EmbeddingsEmulator
from tests.pages.conftest import PASSWORD
from tests.pages.seed import escalated, scored

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

expect.set_options(timeout=60_000)


@pytest.fixture
def dashboard(settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The app serving this test's database; yields its URL and the drafted ticket's id."""
    with session_factory.begin() as session:
        create_first_admin(session, "ada", PASSWORD)
    ticket_id, _ = drafted(session_factory, settings, subject="VPN drops every hour on hotel wifi")
    scored(session_factory, ticket_id)
    escalated(session_factory, settings, subject="Printer on floor 3 shows E42")
    with EmbeddingsEmulator() as embeddings:
        env = app_environment(
            settings, EMBEDDINGS_PROVIDER="openai", OPENAI_BASE_URL=embeddings.url + "/v1", OPENAI_API_KEY="sk-test"
        )
        with streamlit_app(env, tmp_path / "streamlit.log") as url:
            yield url, ticket_id


def shoot(page: Page, name: str) -> None:
    """Screenshot once Streamlit has finished running the page (not on network idle: live parts refresh)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0, timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def go(page: Page, name: str, heading: str) -> None:
    """Follow the sidebar link (same browser session, so the sign-in holds)."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=heading, exact=False).first).to_be_visible(timeout=30_000)
