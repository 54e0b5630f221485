"""Wait on a condition with a deadline, never for a fixed time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

SCRIPT_RUN_WAIT = math.inf
"""How long AppTest waits for a script run (`default_timeout`; Streamlit's own default fails a run slower than 3 s):
until it finishes. A test asserts what a page shows, never how fast; a hung run is stopped by the test's hang guard
(pytest-timeout, pyproject.toml) and speed is bench/dashboard.py's to print."""


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
