"""`python -m engine`: the health command's JSON and exit codes, and a malformed setting named."""

import json
from pathlib import Path

from engine.core.settings import Settings
from tests.engine_process import run_engine


def test_health_cli_reports_json_and_fails_when_the_database_is_down(settings: Settings, tmp_path: Path) -> None:
    healthy = run_engine(settings, "health", cwd=tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    report = json.loads(healthy.stdout)
    assert report["checks"]["database"]["status"] == "healthy"
    assert report["checks"]["llm"]["status"] == "disabled"
    settings.DATABASE_URL = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    down = run_engine(settings, "health", cwd=tmp_path)
    assert down.returncode == 1
    assert json.loads(down.stdout[down.stdout.index("{\n") :])["checks"]["database"]["status"] == "unhealthy"


def test_cli_names_a_malformed_setting(settings: Settings, tmp_path: Path) -> None:
    result = run_engine(settings, "health", cwd=tmp_path, POLL_INTERVAL_SECONDS="often")
    assert result.returncode == 2
    assert "POLL_INTERVAL_SECONDS" in result.stderr
