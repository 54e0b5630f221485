"""Configured secrets, and credentials written into connector URLs, never reach a log line, stdout, stderr, the
job status or the health report, even at DEBUG with every connector failing (unreachable hosts), the analyser
failing and mail delivery failing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import JobStatus
from engine.core.settings import Settings
from engine.operators.queries import job_statuses
from tests.conftest import POSTGRES_ADMIN_URL
from tests.engine_process import run_engine
from tests.factories import new_ticket

DEAD = "http://127.0.0.1:9"
SECRETS = {
    "SNOW_AUTH_PASSWORD": "snow-S3cret-41d7",
    "JIRA_API_TOKEN": "jira-T0ken-88c2",
    "MS_GRAPH_CLIENT_SECRET": "graph-S3cret-5a90",
    "MAILGUN_API_KEY": "key-mailgun-77e1",
    "SMTP_PASSWORD": "smtp-Pa55-0b3f",
    "AZURE_OPENAI_API_KEY": "azure-K3y-c4d5",
    "OPENAI_API_KEY": "sk-openai-K3y-e6f7",
}
FAILING_EVERYWHERE = {
    "SNOW_API_URL": DEAD + "/api/now/table/incident",
    "SNOW_AUTH_USERNAME": "svc-desk",
    "JIRA_SERVER": DEAD,
    "JIRA_USERNAME": "svc-desk",
    "JIRA_PROJECTS": "IT",
    "MS_GRAPH_CLIENT_ID": "client",
    "MS_GRAPH_TENANT_ID": "tenant",
    "MS_GRAPH_MAILBOX": "support@desk.example",
    "MS_GRAPH_AUTHORITY_HOST": "https://127.0.0.1:9",
    "MS_GRAPH_BASE_URL": DEAD,
    "OUTBOX_TRANSPORT": "mailgun",
    "MAILGUN_DOMAIN": "desk.example",
    "MAILGUN_FROM_EMAIL": "support@desk.example",
    "MAILGUN_API_BASE_URL": DEAD,
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "9",
    "LLM_PROVIDER": "openai",
    "OPENAI_BASE_URL": DEAD + "/v1",
    "EMBEDDINGS_PROVIDER": "openai",
    "AZURE_OPENAI_ENDPOINT": DEAD,
    "LLM_MAX_RETRIES": "0",
    "CONNECTOR_RETRY_ATTEMPTS": "1",
    "CONNECTOR_BACKOFF_SECONDS": "0",
    "LOG_LEVEL": "DEBUG",
}


@pytest.fixture
def database_password(settings: Settings) -> Iterator[str | None]:
    """On PostgreSQL, the engine signs in as a role with a password for this run; None on SQLite."""
    if not settings.database_url.startswith("postgresql"):
        yield None
        return
    role, password = f"nts_{uuid.uuid4().hex[:8]}", f"db-Pa55-{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'"))
    settings.DATABASE_URL = (
        make_url(settings.database_url).set(username=role, password=password).render_as_string(hide_password=False)
    )
    yield password
    with admin.connect() as connection:
        connection.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def test_no_secret_in_logs_output_or_health(
    session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path, database_password: str | None
) -> None:
    new_ticket(session_factory, settings, subject="VPN drops", body="The VPN drops every hour since Monday.")
    secrets = [*SECRETS.values(), *([database_password] if database_password else [])]
    log_file = tmp_path / "engine.log"
    environment = {**SECRETS, **FAILING_EVERYWHERE, "LOG_FILE": log_file}
    once = run_engine(settings, "run", "--once", cwd=tmp_path, timeout=120, **environment)
    health = run_engine(settings, "health", cwd=tmp_path, timeout=60, **environment)
    assert once.returncode == 1, once.stderr[-2000:]  # every connector fails here: `run --once` says so
    results = json.loads(once.stdout.strip().splitlines()[-1])
    assert {"poll_servicenow", "poll_jira", "poll_outlook", "process_pending", "deliver_outbox"} <= set(results)
    report = json.loads(health.stdout[health.stdout.index("{\n") :])
    assert report["checks"]["database"]["status"] == "healthy"
    logged = log_file.read_text(encoding="utf-8")
    assert '"level": "DEBUG"' in logged and '"level": "ERROR"' in logged, "the run logged its failures"
    outputs = {"log": logged, "run stdout": once.stdout, "run stderr": once.stderr}
    outputs |= {"health stdout": health.stdout, "health stderr": health.stderr}
    leaks = [(where, secret) for where, output in outputs.items() for secret in secrets if secret in output]
    assert leaks == []


URL_CREDENTIALS = {  # user-info in every URL setting a connector calls, each to a dead port
    "SNOW_API_URL": "http://snow-url-user:snow-url-S3cret@127.0.0.1:9/api/now/table/incident",
    "JIRA_SERVER": "http://jira-url-user:jira-url-S3cret@127.0.0.1:9",
    "MAILGUN_API_BASE_URL": "http://mg-url-user:mailgun-url-S3cret@127.0.0.1:9",
    "OPENAI_BASE_URL": "http://openai-url-user:openai-url-S3cret@127.0.0.1:9/v1",
}


def test_credentials_in_connector_urls_never_shown(
    session_factory: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    new_ticket(session_factory, settings, subject="VPN drops", body="The VPN drops every hour since Monday.")
    log_file = tmp_path / "engine.log"
    environment = {**SECRETS, **FAILING_EVERYWHERE, **URL_CREDENTIALS, "LOG_FILE": log_file}
    once = run_engine(settings, "run", "--once", cwd=tmp_path, timeout=120, **environment)
    health = run_engine(settings, "health", cwd=tmp_path, timeout=60, **environment)
    assert once.returncode == 1, once.stderr[-2000:]  # every connector fails here: `run --once` says so
    with session_factory() as session:
        servicenow = session.scalars(select(JobStatus).where(JobStatus.job == "poll_servicenow")).one()
        statuses = json.dumps(job_statuses(session), default=str)
    assert not servicenow.last_ok and "127.0.0.1:9/api/now/table/incident" in (servicenow.last_error or "")
    report = json.loads(health.stdout[health.stdout.index("{\n") :])
    connectors = {entry["name"]: entry for entry in report["checks"]["connectors"]["connectors"]}
    assert "127.0.0.1:9" in connectors["servicenow"]["last_error"], "the failing URL is shown, without credentials"
    outputs = {"log": log_file.read_text(encoding="utf-8"), "run stdout": once.stdout, "run stderr": once.stderr}
    outputs |= {"health stdout": health.stdout, "health stderr": health.stderr, "job status": statuses}
    credentials = [part for url in URL_CREDENTIALS.values() for part in url.split("//")[1].split("@")[0].split(":")]
    leaks = [
        (where, credential) for where, output in outputs.items() for credential in credentials if credential in output
    ]
    assert leaks == []
