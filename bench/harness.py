"""What the engine benchmarks share: a throwaway PostgreSQL database per run, so figures never mix with other
data or other runs, and engine processes started as an operator starts them."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text


def fresh_postgres(admin_url: str) -> tuple[str, str]:
    """Create an empty database next to `admin_url`'s; returns its URL and name."""
    name = f"nts_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(admin_url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return admin_url.rsplit("/", 1)[0] + f"/{name}", name


def drop_postgres(admin_url: str, name: str) -> None:
    with create_engine(admin_url, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start_engines(count: int, env: dict[str, str], workdir: Path, prefix: str) -> list[subprocess.Popen[bytes]]:
    """`count` × `python -m engine run`, quiet, each with its own worker id."""
    return [
        subprocess.Popen(
            [sys.executable, "-m", "engine", "run"],
            env={**env, "WORKER_ID": f"{prefix}-{n}"},
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(count)
    ]
