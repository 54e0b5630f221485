"""URL credentials are removed by shape from any text, and URL settings' passwords join the redacted secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.http import ConnectorError, describe_url
from connectors.redaction import redact_url_credentials
from engine.core.settings import ConfigurationError, load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "SNOW_API_URL=https://integration:s3cret@acme.service-now.com/api/now/table/incident",
            "SNOW_API_URL=https://***@acme.service-now.com/api/now/table/incident",
        ),
        ("postgresql+psycopg://desk:p@ss@db:5432/tickets failed", "postgresql+psycopg://***@db:5432/tickets failed"),
        ("connect to http://svc@chroma:8000 refused", "connect to http://***@chroma:8000 refused"),
        ('{"url": "https://u:pw@h/x", "to": "a@b.example"}', '{"url": "https://***@h/x", "to": "a@b.example"}'),
        (
            "GET https://serpapi.com/search?q=vpn&api_key=abc123&engine=google",
            "GET https://serpapi.com/search?q=vpn&api_key=***&engine=google",
        ),
        (
            "/cb?access_token=t0k&apikey=k&key=k2&token=t&password=p&secret=s&signature=5f&sig=9&page=2",
            "/cb?access_token=***&apikey=***&key=***&token=***&password=***&secret=***&signature=***&sig=***&page=2",
        ),
        ("SNOW_AUTH_PASSWORD=hunter2 CLIENT_SECRET=x", "SNOW_AUTH_PASSWORD=*** CLIENT_SECRET=***"),
    ],
)
def test_credentials_in_urls_are_masked(text: str, expected: str) -> None:
    assert redact_url_credentials(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "https://kb.example/users/a@b.example/profile",
        "https://host/search?email=a@b.example&page=2",
        "mail from jo@customer.example about monkey=3, sorted by name",
        "https://***@host/x?token=***",
        "",
    ],
)
def test_text_without_url_credentials_is_unchanged(text: str) -> None:
    assert redact_url_credentials(text) == text


def test_connector_errors_never_quote_url_credentials() -> None:
    url = "https://integration:s3cret@acme.service-now.com/api/now/table/incident?sysparm_limit=1"
    assert describe_url(url) == "acme.service-now.com/api/now/table/incident"
    error = ConnectorError("servicenow", f"GET {url} failed")
    assert "s3cret" not in str(error) and "integration" not in str(error)


def test_url_setting_passwords_are_secrets(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        DATA_DIR=tmp_path,
        SNOW_API_URL="https://integration:snow%2Fpass@acme.service-now.com/api/now/table/incident",
        JIRA_SERVER="https://jira.example",
        DATABASE_URL="postgresql://desk:db-pass-1@db:5432/tickets",
        CHROMA_HOST="http://chroma-user@chroma",
    )
    assert set(settings.secret_values()) == {"snow%2Fpass", "snow/pass", "db-pass-1"}


def test_validation_errors_do_not_echo_a_url_with_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://desk:my-db-pass@db/tickets")
    with pytest.raises(ConfigurationError) as error:
        load_settings(_env_file=None)
    assert "DATABASE_URL" in str(error.value) and "my-db-pass" not in str(error.value)
