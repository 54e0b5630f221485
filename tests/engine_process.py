"""Run `python -m engine` as a real child process, as an operator would, for crash and concurrency tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def engine_env(settings: Settings, **extra: object) -> dict[str, str]:
    """The child's environment: the test's database and data folder, nothing from the developer's `.env`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("NTS_", "SMTP_", "OUTBOX_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=settings.database_url,
        DATA_DIR=str(settings.DATA_DIR),
        DEMO_FEED_ENABLED="false",
        OUTBOX_TRANSPORT=settings.OUTBOX_TRANSPORT,
        SMTP_HOST=settings.SMTP_HOST,
        SMTP_PORT=str(settings.SMTP_PORT),
        SMTP_SECURITY=settings.SMTP_SECURITY,
        LOG_LEVEL="WARNING",
        KB_READY_WAIT_SECONDS=str(settings.KB_READY_WAIT_SECONDS),
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run_engine(
    settings: Settings, *args: str, cwd: Path, timeout: float = 120, **extra: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        env=engine_env(settings, **extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_engine(settings: Settings, *args: str, cwd: Path, **extra: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        env=engine_env(settings, **extra),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
