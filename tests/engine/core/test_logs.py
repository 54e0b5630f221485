"""JSON log lines that carry the ticket and never a secret or a URL's credentials."""

import json
import logging
from pathlib import Path

import pytest

from engine.core.logs import configure_logging
from engine.core.settings import load_settings


@pytest.fixture
def restore_logging() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_are_json_with_the_ticket_and_never_a_secret(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None, LOG_FILE=tmp_path / "app.log", SNOW_AUTH_PASSWORD="pa55-w0rd-snow", DATA_DIR=tmp_path
    )
    configure_logging(settings)
    log = logging.getLogger("test")
    log.info("polled", extra={"ticket": "TCKT-7"})
    log.warning("login failed with pa55-w0rd-snow for %s", "svc")
    try:
        raise RuntimeError("auth=pa55-w0rd-snow rejected")
    except RuntimeError:
        log.exception("connector crashed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = [json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines()]
    assert lines[0]["ticket"] == "TCKT-7"
    assert lines[0]["level"] == "INFO"
    assert "pa55-w0rd-snow" not in (tmp_path / "app.log").read_text()
    assert lines[1]["msg"] == "login failed with *** for svc"
    assert "auth=*** rejected" in lines[2]["msg"]


@pytest.mark.usefixtures("restore_logging")
def test_url_credentials_are_redacted_from_every_log_line_without_configured_secrets(tmp_path: Path) -> None:
    configure_logging(load_settings(_env_file=None, LOG_FILE=tmp_path / "app.log", DATA_DIR=tmp_path))
    url = "https://integration:s3cret-url@acme.service-now.com/api?api_key=k3y-in-query"
    log = logging.getLogger("test")
    log.warning("polling %s", url, extra={"endpoint": url})
    try:
        raise ConnectionError(f"cannot reach {url}")
    except ConnectionError:
        log.exception("poll failed")
    for handler in logging.getLogger().handlers:
        handler.flush()
    logged = (tmp_path / "app.log").read_text()
    assert "s3cret-url" not in logged and "k3y-in-query" not in logged and "integration" not in logged
    assert json.loads(logged.splitlines()[0])["endpoint"] == "https://***@acme.service-now.com/api?api_key=***"
