"""The dashboard (`streamlit run app.py`) and a Chroma server as real child processes on loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from engine.core.settings import Settings
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def app_environment(settings: Settings, **more: str) -> dict[str, str]:
    """The app's environment for a test: the test's database and data folder, no engine, no demo feed, quiet logs;
    `more` adds or overrides variables."""
    return {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.DATA_DIR),
        "ENGINE_ENABLED": "false",
        "DEMO_FEED_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **more,
    }


@contextmanager
def streamlit_app(
    env: dict[str, str],
    log_path: Path,
    *,
    cwd: Path = ROOT,
    port: int | None = None,
    stop: signal.Signals = signal.SIGTERM,
) -> Iterator[str]:
    """The app with this environment (on top of ours) until the block ends; yields its URL once it is healthy.
    The block's end sends `stop` (SIGKILL: the server dies as in a crash).

    Streamlit reads `.streamlit/` (config, secrets) from `cwd`.
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true", "--browser.serverAddress", "localhost"]
    command += ["--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with log_path.open("w") as log:
        server = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: answers(f"{url}/_stcore/health"), timeout=60, what=f"the dashboard at {url}")
            yield url
        finally:
            server.send_signal(stop)
            server.wait(timeout=20)


class ChromaServer:
    """`chroma run` over one folder on a fixed loopback port; stop and start it to play an outage."""

    def __init__(self, path: Path, log_path: Path) -> None:
        self.path = path
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        executable = shutil.which("chroma", path=str(Path(sys.executable).parent)) or "chroma"
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [executable, "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: answers(f"http://127.0.0.1:{self.port}/api/v2/heartbeat"), timeout=60, what="the Chroma server"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None

    def __enter__(self) -> ChromaServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
