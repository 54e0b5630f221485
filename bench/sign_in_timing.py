"""How long a failed sign-in takes on the server for a known name, an unknown name and a backed-off name: the three
must not be told apart by timing (the finding: 176 ms for a known name, 0.4 ms for an unknown one).

    .venv/bin/python bench/sign_in_timing.py [--attempts 40] [--url postgresql+psycopg://...]

Each attempt is one `authenticate` call in its own transaction, commit included (the work a sign-in form submit
makes the server do), from a client address of its own. The name's count is cleared before every "known" and
"unknown" attempt, so each is checked; the "backed-off" names are seeded with more failures than they allow.
The four cases take turns, so load from elsewhere on the machine falls on all of them alike. Prints median and
p90 and the answers seen. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from engine.core.db import make_engine, make_session_factory, transaction, upgrade_database
    from engine.core.models import Operator, utcnow
    from engine.core.settings import load_settings
    from engine.operators import sign_in_throttle
    from engine.operators.auth import SignInAttempt, authenticate, hash_password

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=40)
    parser.add_argument("--url", default="", help="a database URL (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="nts-sign-in-"))
    settings = load_settings(
        _env_file=None, DATA_DIR=folder, DATABASE_URL=args.url, ENGINE_ENABLED=False, DEMO_FEED_ENABLED=False
    )
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    run = time.time_ns()
    known, known_backed_off = f"bench-{run}", f"bench-backed-off-{run}"
    unknown, unknown_backed_off = f"nobody-{run}", f"nobody-backed-off-{run}"
    with transaction(factory) as session:
        for name in (known, known_backed_off):
            session.add(Operator(username=name, role="admin", password_hash=hash_password("the right password")))
    with transaction(factory) as session:  # many clients failed on these two names just now
        for name in (known_backed_off, unknown_backed_off):
            counter = sign_in_throttle.account_counter(settings, name)
            for _ in range(counter[1] + 12):
                sign_in_throttle.record_failure(session, [counter], utcnow())

    def timed(username: str, client: str) -> tuple[float, str]:
        started = time.perf_counter()
        with transaction(factory) as session:
            result = authenticate(session, settings, username, "a wrong password", SignInAttempt(client))
        elapsed = time.perf_counter() - started
        assert result.actor is None
        return elapsed, re.sub(r"[0-9]+", "N", result.error or "")

    def forget(username: str) -> None:
        """Clear the name's count, so that the next attempt is checked rather than held back."""
        with transaction(factory) as session:
            sign_in_throttle.clear(session, [sign_in_throttle.account_counter(settings, username)])

    cases = {
        "known name, wrong password": (known, True),
        "unknown name": (unknown, True),
        "known name, backed off": (known_backed_off, False),
        "unknown name, backed off": (unknown_backed_off, False),
    }
    timings: dict[str, list[float]] = {label: [] for label in cases}
    answers: dict[str, set[str]] = {label: set() for label in cases}
    timed(known, "10.255.255.1")  # warm-up: imports, the first connection
    forget(known)
    labels = list(cases)
    for number in range(args.attempts):  # interleaved, so a busy moment of the machine falls on every case alike
        for label in labels[number % len(labels) :] + labels[: number % len(labels)]:
            username, checked = cases[label]
            if checked:
                forget(username)
            elapsed, answer = timed(username, f"10.{number // 250}.{number % 250}.{labels.index(label) + 1}")
            timings[label].append(elapsed)
            answers[label].add(answer)
    print(f"{'failed sign-in':<30}{'n':>5}{'median ms':>12}{'p90 ms':>10}   answer")
    for label, values in timings.items():
        values.sort()
        p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
        print(
            f"{label:<30}{len(values):>5}{statistics.median(values) * 1000:>12.1f}{p90 * 1000:>10.1f}   "
            f"{' / '.join(sorted(answers[label]))}"
        )
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
