from pathlib import Path

import pytest

from engine.core.settings import ConfigurationError, load_settings


def test_defaults_are_the_embedded_keyless_mode(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, DATA_DIR=tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'no_touch.db'}"
    assert settings.LLM_PROVIDER == "none"
    assert settings.EMBEDDINGS_PROVIDER == "local"
    assert settings.OUTBOX_TRANSPORT == "database"
    assert settings.secret_values() == []


def test_plain_postgresql_url_uses_psycopg3() -> None:
    settings = load_settings(_env_file=None, DATABASE_URL="postgresql://u@db:5432/tickets")
    assert settings.database_url == "postgresql+psycopg://u@db:5432/tickets"


def test_malformed_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLL_INTERVAL_SECONDS", "soon")
    monkeypatch.setenv("DATABASE_URL", "mysql://nope")
    with pytest.raises(ConfigurationError) as error:
        load_settings(_env_file=None)
    assert "POLL_INTERVAL_SECONDS" in str(error.value)
    assert "DATABASE_URL" in str(error.value)


def test_secret_values_never_print_but_can_be_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNOW_AUTH_PASSWORD", "hunter2-very-secret")
    monkeypatch.setenv("SMTP_PORT", "not-a-port")
    with pytest.raises(ConfigurationError) as error:
        load_settings(_env_file=None)
    assert "hunter2" not in str(error.value)
    monkeypatch.setenv("SMTP_PORT", "25")
    settings = load_settings(_env_file=None)
    assert "hunter2" not in repr(settings)
    assert settings.secret_values() == ["hunter2-very-secret"]
