"""`python -m engine run | health | migrate | create-admin | reindex-knowledge`: the engine without the UI, for
workers and operations."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
import threading

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.redaction import redact_url_credentials
from engine.core.db import transaction
from engine.core.logs import configure_logging
from engine.core.models import utcnow
from engine.core.settings import ConfigurationError, get_settings
from engine.delivery.webhooks import start_webhook_server
from engine.health import health_report
from engine.jobs import last_errors, rebuild_knowledge
from engine.operators.auth import OperatorError, create_first_admin
from engine.ops.engine_lock import EngineAlreadyRunningError, claim_engine
from engine.ops.observability import start_metrics_server
from engine.runtime import build_runtime
from engine.scheduler import run_all_once, start_scheduler, stop_scheduler

log = logging.getLogger("engine")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the engine's jobs until stopped (SIGINT/SIGTERM)")
    run.add_argument("--once", action="store_true", help="run every job once, print the results and exit")
    run.add_argument(
        "--metrics-port",
        type=_port,
        metavar="N",
        help="serve Prometheus metrics on http://ADDRESS:N/metrics while running",
    )
    run.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="interface for the metrics endpoint (default loopback; 0.0.0.0 inside a container on a private network)",
    )
    run.add_argument(
        "--webhook-port",
        type=_port,
        metavar="N",
        help="serve http://ADDRESS:N: the connectors' webhooks at "
        + ", ".join(registry.webhook_path(entry.name) for entry in registry.connectors() if entry.webhook)
        + " (each needs its signing key) and the confirmation links (needs DESK_PUBLIC_URL)",
    )
    run.add_argument("--webhook-address", default="127.0.0.1", metavar="ADDRESS", help="interface for the webhooks")
    health = commands.add_parser(
        "health", help="print the health check as JSON, each configured connection tested; exit 1 when unhealthy"
    )
    health.add_argument(
        "--no-test", action="store_true", help="do not call the vendors: connections never used show 'not yet tested'"
    )
    commands.add_parser("migrate", help="upgrade the database schema to the newest version")
    commands.add_parser(
        "reindex-knowledge",
        help="derive the knowledge base again: every document from its bytes, then what resolved tickets teach",
    )
    admin = commands.add_parser(
        "create-admin", help="create the first dashboard admin (password read from a prompt or from stdin)"
    )
    admin.add_argument("username")
    admin.add_argument("--email", default=None, help="also lets this admin sign in through SSO with this address")
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        # A command whose result is its stdout (all but a running engine) logs to stderr, so the two never mix.
        daemon = args.command == "run" and not args.once
        configure_logging(settings, None if daemon else sys.stderr)
        runtime = build_runtime(settings)
    except ConfigurationError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except OperationalError as error:
        reason = redact_url_credentials(f"database unreachable: {type(error.orig).__name__}: {str(error.orig).strip()}")
        reason = reason[:500]
        log.error(reason)
        if args.command == "health":
            checks = {"database": {"status": "unhealthy", "error": reason}}
            print(json.dumps({"status": "unhealthy", "timestamp": utcnow().isoformat(), "checks": checks}, indent=2))
        return 1
    if args.command == "migrate":
        print(f"database schema is current ({runtime.engine.url.render_as_string(hide_password=True)})")
        return 0
    if args.command == "create-admin":
        return _create_admin(runtime.factory, args.username, args.email)
    if args.command == "reindex-knowledge":
        counts = rebuild_knowledge(runtime.factory, settings, lambda message: log.info("reindex: %s", message))
        print(json.dumps(counts))
        return 0
    if args.command == "health":
        report = health_report(runtime, test_connections=not args.no_test)
        print(json.dumps(report, indent=2, default=str))
        return 1 if report["status"] == "unhealthy" else 0
    if args.once:
        try:
            claim_engine(settings)
        except EngineAlreadyRunningError as error:
            print(f"cannot run the engine: {error}", file=sys.stderr)
            return 2
        results = run_all_once(runtime)
        failed = {name: error for name in results if (error := last_errors.get(name))}
        results.update({name: {"failed": error} for name, error in failed.items()})
        print(json.dumps(results, default=lambda value: getattr(value, "as_dict", lambda: str(value))()))
        if failed:
            print(f"{len(failed)} job(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1 if failed else 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    metrics = None
    if args.metrics_port:
        try:
            metrics = start_metrics_server(args.metrics_port, runtime.factory, address=args.metrics_address)
        except OSError as error:
            print(
                f"cannot serve metrics on {args.metrics_address}:{args.metrics_port}: {error.strerror}", file=sys.stderr
            )
            return 2
    webhooks = None
    if args.webhook_port:
        try:
            webhooks = start_webhook_server(args.webhook_port, runtime.factory, settings, address=args.webhook_address)
        except (OSError, ValueError) as error:
            print(f"cannot receive webhooks on {args.webhook_address}:{args.webhook_port}: {error}", file=sys.stderr)
            return 2
    try:
        scheduler = start_scheduler(runtime)
    except EngineAlreadyRunningError as error:
        print(f"cannot start the engine: {error}", file=sys.stderr)
        return 2
    log.info("engine running", extra={"worker": runtime.worker, "jobs": [job.id for job in scheduler.get_jobs()]})
    stop.wait()
    stop_scheduler(scheduler)
    for server in (metrics, webhooks):
        if server is not None:
            server.shutdown()
    log.info("engine stopped", extra={"worker": runtime.worker})
    return 0


def _port(value: str) -> int:
    """A TCP port number, so a typo fails at the command line rather than at bind time."""
    port = int(value)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return port


def _create_admin(factory: sessionmaker[Session], username: str, email: str | None) -> int:
    """Prompt twice on a terminal; read one line from stdin otherwise (for scripts), never from argv."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        with transaction(factory) as session:
            create_first_admin(session, username, password, email=email)
    except OperatorError as error:
        print(f"not created: {error}", file=sys.stderr)
        return 1
    print(f"admin {username} created; sign in on the dashboard")
    return 0


if __name__ == "__main__":
    sys.exit(main())
