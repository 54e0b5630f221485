"""The dashboard as served (`streamlit run app.py`) answers every HTTP request with the headers that keep it out
of other sites' frames; checked with real requests to the app on a loopback port."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from tests.app_process import app_environment, streamlit_app
from ui.security_headers import SECURITY_HEADERS

pytestmark = [pytest.mark.slow]
EXPECTED = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@pytest.fixture
def dashboard_url(settings: Settings, session_factory: sessionmaker[Session], tmp_path: Path) -> Iterator[str]:
    env = app_environment(settings)
    with streamlit_app(env, tmp_path / "streamlit.log") as url:
        yield url


def test_every_response_carries_the_frame_and_content_headers(dashboard_url: str) -> None:
    assert SECURITY_HEADERS == EXPECTED
    page = requests.get(dashboard_url + "/", timeout=10)
    assert page.ok and "<html" in page.text.lower()
    script = re.search(r'src="\.?/?(static/js/[^"]+\.js)"', page.text)
    assert script, "the page links Streamlit's script"
    paths = ["/", "/_stcore/health", "/_stcore/host-config", "/" + script.group(1), "/no-such-page/at-all"]
    for path in paths:
        response = requests.get(dashboard_url + path, timeout=10)
        assert response.status_code in (200, 404), path
        assert {name: response.headers.get(name) for name in EXPECTED} == EXPECTED, path
