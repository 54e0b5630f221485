"""Wait on a condition with a deadline, never for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable

SCRIPT_RUN_DEADLINE = 60
"""Seconds an AppTest script run may take before the test fails (`default_timeout`; Streamlit's own default is 3 s,
which a busy machine's first run of a page, importing pandas and the app, can pass): a hang guard, not a speed
check — speed is bench/dashboard.py's to print."""


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
