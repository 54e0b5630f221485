"""Poll 10,000 incidents from the ServiceNow emulator and 10,000 messages from the Graph emulator.

Prints items/s and peak Python memory (tracemalloc) for each; run with `.venv/bin/python -m bench.connectors`.
The emulators run in this process on 127.0.0.1, so the figures include their share of the two cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import SecretStr

from connectors.graph_mail import GraphMailSource
from connectors.servicenow import ServiceNowSource
from engine.settings import Settings, load_settings
from tests.emulators.graph import GraphEmulator, IdentityEmulator, graph_values
from tests.emulators.servicenow import ServiceNowEmulator
from tests.emulators.tls import make_certificate


def measure(name: str, count: int, poll: Callable[[], Iterable[object]]) -> None:
    tracemalloc.start()
    began = time.perf_counter()
    seen = sum(len(page.items) for page in poll())  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert seen == count, f"{name}: polled {seen} of {count}"
    rate = seen / elapsed
    print(f"{name:<11} {seen:>6} items in {elapsed:6.2f}s = {rate:8.0f} items/s, peak {peak / 2**20:6.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args()
    base: Settings = load_settings(_env_file=None, DEMO_FEED_ENABLED=False, ENGINE_ENABLED=False)
    base = base.model_copy(update={"CONNECTOR_PAGE_SIZE": args.page_size})

    snow = ServiceNowEmulator().start()
    caller = snow.add_user("caller@example.com", "Casey")
    for n in range(args.count):
        snow.add_incident(f"Incident {n}", caller=caller, description=f"Something broke, case {n}. " * 5)
    settings = base.model_copy(
        update={
            "SNOW_API_URL": f"{snow.url}/api/now/table/incident",
            "SNOW_AUTH_USERNAME": snow.username,
            "SNOW_AUTH_PASSWORD": SecretStr(snow.password),
        }
    )
    measure("servicenow", args.count, lambda: ServiceNowSource(settings).poll(None))
    snow.stop()

    ca, cert, key = make_certificate(Path(tempfile.mkdtemp()))
    identity = IdentityEmulator(certificate=(cert, key)).start()
    graph = GraphEmulator(identity=identity).start()
    for n in range(args.count):
        graph.deliver(f"user{n}@example.com", f"Question {n}", f"Body of question {n}. " * 5)
    settings = base.model_copy(update=graph_values(identity, graph, ca))
    measure("outlook", args.count, lambda: GraphMailSource(settings).poll(None))
    graph.stop()
    identity.stop()


if __name__ == "__main__":
    main()
