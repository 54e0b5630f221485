"""Single sign-on end to end in headless Chromium: the dashboard configured for OpenID Connect (`[auth]` in
`.streamlit/secrets.toml`) sends the browser through an OIDC provider emulator and back, and the person lands
on the home page as an operator with the configured SSO role; a deactivated account is refused."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import AuditEntry, Operator
from engine.core.settings import Settings
from engine.operators.auth import create_first_admin
from tests.app_process import ROOT, app_environment, free_port, streamlit_app
from tests.browser.conftest import CHROMIUM_ARGS
from tests.emulators.base import running
from tests.emulators.oidc import OidcProvider
from tests.pages.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def app_folder(tmp_path: Path, provider: OidcProvider, port: int) -> Path:
    """A working directory whose `.streamlit/` holds our config plus the OIDC secrets, as an operator writes them."""
    folder = tmp_path / "app"
    (folder / ".streamlit").mkdir(parents=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", folder / ".streamlit" / "config.toml")
    (folder / ".streamlit" / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        'cookie_secret = "a-long-random-cookie-secret-for-tests-only"\n'
        f'client_id = "{provider.client_id}"\n'
        f'client_secret = "{provider.client_secret}"\n'
        f'server_metadata_url = "{provider.metadata_url}"\n'
    )
    return folder


def sign_in_with_sso(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Sign in with single sign-on").click()


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    yield from running(OidcProvider())  # type: ignore[misc]


def test_sign_in_through_an_openid_connect_provider(
    settings: Settings, session_factory: sessionmaker[Session], provider: OidcProvider, tmp_path: Path
) -> None:
    with session_factory.begin() as session:
        create_first_admin(session, "ada", PASSWORD)
    port = free_port()
    env = app_environment(settings, DASHBOARD_SSO_DEFAULT_ROLE="agent")
    folder = app_folder(tmp_path, provider, port)
    with (
        streamlit_app(env, tmp_path / "streamlit.log", cwd=folder, port=port),
        sync_playwright() as playwright,
    ):
        url = f"http://localhost:{port}"
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(30_000)
        sign_in_with_sso(page, url)
        expect(page.get_by_role("heading", name="Today")).to_be_visible()
        assert any(path == "/token" for path in provider.paths("POST")), "the code was exchanged for tokens"
        with session_factory() as session:
            operator = session.scalars(select(Operator).where(Operator.email == "lee@example.com")).one()
            assert operator.role == "agent"
            methods = [e.details.get("method") for e in session.scalars(select(AuditEntry)) if e.action == "sign_in"]
            assert "sso" in methods
        with session_factory.begin() as session:
            session.scalars(select(Operator).where(Operator.email == "lee@example.com")).one().is_active = False

        refused = browser.new_page()
        refused.set_default_timeout(30_000)
        sign_in_with_sso(refused, url)
        expect(refused.get_by_text("is deactivated")).to_be_visible()
        expect(refused.get_by_role("heading", name="Today")).to_have_count(0)
        browser.close()
