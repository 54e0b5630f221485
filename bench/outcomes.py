"""A simulated month of outcomes: tickets through the real pipeline, customers clicking the real links.

Each simulated day, a share of the demo tickets arrives and is analysed by a fixed-rate analyser double (no
model: this measures the outcome machinery, not answer quality); the resolution e-mails go out with their
yes/no links, and customers confirm (link or "thanks" reply), go silent, or come back (link "no" or a reply
that it still fails) at the given rates. One category (`--weak-category`) is re-opened far more often, with a
durable floor of `--floor`, so the autopilot switch-off shows. The outcome job runs each day on a moved clock.
After the month, the clock moves on a durable window so every resolution settles. Prints the funnel, the
per-category table, the floor's switch-offs, and the link endpoint's latency under 50 concurrent clicks.
It never asserts.

    .venv/bin/python bench/outcomes.py --tickets 10000
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import requests
from sqlalchemy import select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import drop_postgres, fresh_postgres  # noqa: E402
from connectors.base import TicketIn  # noqa: E402
from connectors.demo import load_sample, to_ticket_in  # noqa: E402
from engine.core.analysis import AnalysisResult, TicketSnapshot  # noqa: E402
from engine.core.db import make_engine, make_session_factory, transaction, upgrade_database  # noqa: E402
from engine.core.desk_policy import DeskPolicy, save_policy  # noqa: E402
from engine.core.models import OutboxMessage, ResolutionOutcome, Ticket, utcnow  # noqa: E402
from engine.core.settings import load_settings  # noqa: E402
from engine.delivery.webhooks import start_webhook_server  # noqa: E402
from engine.intake.ingest import ingest  # noqa: E402
from engine.outcomes.outcomes import advance_outcomes, autopilot_switch_offs, outcome_breakdown, outcome_funnel  # noqa: E402
from engine.pipeline import process_pending  # noqa: E402
from tests.app_process import free_port  # noqa: E402

PUBLIC_URL = "http://desk.bench.example"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/r/(\S+)")
CLIENTS = 50


class FixedRateAnalyser:
    """Resolves `share` of tickets with a confident canned answer, escalates the rest; decided by the reference."""

    name = "bench"

    def __init__(self, share: float) -> None:
        self.share = share

    def analyse(self, ticket: TicketSnapshot) -> AnalysisResult:
        draw = int(hashlib.sha256(ticket.reference.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if draw >= self.share:
            return AnalysisResult(analyser=self.name, decision="escalate", reason="bench: for a person")
        return AnalysisResult(
            analyser=self.name,
            decision="resolve",
            reason="bench",
            confidence=0.9,
            draft_subject=f"Re: your request [{ticket.reference}]",
            draft_body="1. Open Settings > Account.\n2. Choose Reset and follow the steps.",
            evidence=[{"source_kind": "kb", "title": "account.md"}],
        )


def month_of_tickets(count: int) -> list[TicketIn]:
    sample = [record for record in load_sample() if record["kind"] == "ticket" and not record.get("headers")]
    return [to_ticket_in(sample[n % len(sample)], cycle=n // len(sample) + 1) for n in range(count)]


def click(url: str, data: dict[str, str]) -> float:
    began = time.perf_counter()
    requests.post(url, data=data, timeout=30).raise_for_status()
    return time.perf_counter() - began


def simulate(url: str, args: argparse.Namespace, workdir: Path) -> None:
    settings = load_settings(
        _env_file=None,
        DATA_DIR=workdir,
        DATABASE_URL=url,
        DEMO_FEED_ENABLED=False,
        ENGINE_ENABLED=False,
        DESK_PUBLIC_URL=PUBLIC_URL,
        MAX_AUTOMATED_EMAILS_PER_HOUR=1_000_000,
        LOG_LEVEL="WARNING",
    )
    engine = make_engine(url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        policy = DeskPolicy(autopilot={"*:*": True}, auto_send_min_confidence=0.85, durable_floor={"*": args.floor})
        save_policy(session, policy, actor="bench")
    server = start_webhook_server(free_port(), factory, settings)
    endpoint = f"http://127.0.0.1:{server.server_port}/r/"
    analyser = FixedRateAnalyser(args.answered)
    chance = random.Random(args.seed)
    tickets = month_of_tickets(args.tickets)
    start = utcnow() - timedelta(days=args.days)  # the simulated month ends now: only new rows are >= today
    latencies: list[float] = []
    pipeline_seconds = 0.0
    per_day = -(-len(tickets) // args.days)
    with ThreadPoolExecutor(max_workers=CLIENTS) as clients:
        for day in range(args.days):
            clock = start + timedelta(days=day)
            today = utcnow()
            began = time.perf_counter()
            with transaction(factory) as session:
                for item in tickets[day * per_day : (day + 1) * per_day]:
                    ingest(session, item, settings)
            while process_pending(factory, settings, analyser, worker="bench").claimed:
                pass
            pipeline_seconds += time.perf_counter() - began
            with transaction(factory) as session:  # today's tickets and resolutions happened on the simulated day
                session.execute(update(Ticket).where(Ticket.created_at >= today).values(created_at=clock))
                session.execute(
                    update(ResolutionOutcome).where(ResolutionOutcome.resolved_at >= today).values(resolved_at=clock)
                )
                mails = session.execute(
                    select(OutboxMessage.ticket_id, OutboxMessage.body_text).where(
                        OutboxMessage.kind == "resolution", OutboxMessage.sent_at.is_(None)
                    )
                ).all()
                session.execute(update(OutboxMessage).where(OutboxMessage.sent_at.is_(None)).values(sent_at=clock))
                categories = dict(session.execute(select(Ticket.id, Ticket.category)).all())
            clicks, replies = [], []
            for ticket_id, body in mails:
                yes, no = LINK.findall(body)
                reopen = args.weak_reopen if categories.get(ticket_id) == args.weak_category else args.reopen
                draw = chance.random()
                if draw < args.confirm:
                    if chance.random() < 0.8:
                        clicks.append((endpoint + yes, {"rating": str(chance.choice([4, 5, 5, 5, 3]))}))
                    else:
                        replies.append((ticket_id, "Thanks, that fixed it!"))
                elif draw < args.confirm + reopen:
                    if chance.random() < 0.5:
                        clicks.append((endpoint + no, {"comment": "Still failing.", "rating": "2"}))
                    else:
                        replies.append((ticket_id, "Thanks, but it still does not work."))
            latencies += clients.map(lambda pair: click(*pair), clicks)
            with transaction(factory) as session:
                for ticket_id, body in replies:
                    ticket = session.get(Ticket, ticket_id)
                    reply = TicketIn(
                        source="email",
                        kind="email",
                        external_id=f"reply-{ticket_id}-{day}",
                        requester_email=ticket.email,
                        subject=f"Re: your request [{ticket.reference}]",
                        body=body,
                    )
                    ingest(session, reply, settings)
            advance_outcomes(factory, settings, now=clock + timedelta(days=1, minutes=1))
        advance_outcomes(factory, settings, now=start + timedelta(days=args.days + settings.OUTCOME_DURABLE_DAYS))
        opened = [url for url, _ in clicks][:CLIENTS]
        burst = list(clients.map(_timed_get, opened))
    server.shutdown()
    with factory() as session:
        funnel = outcome_funnel(session, start - timedelta(days=1))
        table = outcome_breakdown(session, start - timedelta(days=1), "category")
        weeks = [
            row
            for row in outcome_breakdown(session, start - timedelta(days=1), "week")
            if row["resolved by"] == "automatic"
        ]
        switched = autopilot_switch_offs(session, start - timedelta(days=1))
    engine.dispose()
    report(funnel, table, weeks, switched, latencies, burst, pipeline_seconds, len(tickets))


def _timed_get(url: str) -> float:
    began = time.perf_counter()
    requests.get(url, timeout=30)
    return time.perf_counter() - began


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100)[int(share * 100) - 1] if len(values) > 1 else sum(values)


def report(
    funnel: dict,
    table: list[dict],
    weeks: list[dict],
    switched: list,
    latencies: list[float],
    burst: list[float],
    seconds: float,
    n: int,
) -> None:
    automatic, human = funnel["automatic"], funnel["human"]
    print(f"pipeline: {n:,} tickets ingested and analysed in {seconds:.1f} s ({n / seconds * 3600:,.0f} tickets/hour)")
    print(
        f"funnel: received {funnel['received']:,} → answered automatically {automatic['resolved']:,} → "
        f"confirmed {automatic['confirmed']:,} + assumed {automatic['assumed']:,} → durable {automatic['durable']:,}"
        f" (re-opened {automatic['reopened']:,}, reopen rate {automatic['reopen_rate']:.1%})"
    )
    for name, part in (("automatic", automatic), ("human", human)):
        csat = "—" if part["csat"] is None else f"{part['csat']:.2f} from {part['ratings']:,} ratings"
        print(f"  {name:<10} resolved {part['resolved']:>6,}  reopen rate {part['reopen_rate']:>6.1%}  CSAT {csat}")
    print(f"{'category':<16}{'by':<11}{'resolved':>9}{'confirmed':>10}{'durable':>9}{'reopened':>9}{'CSAT':>7}")
    for row in table:
        print(
            f"{row['category']:<16}{row['resolved by']:<11}{row['resolutions']:>9,}{row['confirmed']:>10,}"
            f"{row['durable']:>9,}{row['reopened']:>9,}{row['CSAT'] or '—':>7}"
        )
    print("automatic resolutions per week: " + ", ".join(f"{row['week']} {row['resolutions']:,}" for row in weeks))
    for entry in switched:
        details = entry.details
        print(
            f"autopilot off for {entry.target_id}: {details['durable_rate']:.0%} durable "
            f"({details['durable']} durable / {details['reopened']} re-opened) < floor {details['floor']:.0%}"
        )
    if latencies:
        print(
            f"link endpoint, {len(latencies):,} answers by {CLIENTS} concurrent clients: "
            f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
        )
    if burst:
        print(f"link endpoint, {len(burst)} concurrent page opens (GET): p95 {percentile(burst, 0.95) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--answered", type=float, default=0.7, help="share the analyser resolves")
    parser.add_argument("--confirm", type=float, default=0.35, help="share of customers who confirm")
    parser.add_argument("--reopen", type=float, default=0.1, help="share who come back (others stay silent)")
    parser.add_argument("--weak-category", default="billing")
    parser.add_argument("--weak-reopen", type=float, default=0.45, help="reopen share in the weak category")
    parser.add_argument("--floor", type=float, default=0.7, help="the durable floor a lead set for every category")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres", default="", help="admin URL of a PostgreSQL server (default: SQLite)")
    args = parser.parse_args()
    print(
        f"{args.tickets:,} tickets over {args.days} days; {args.answered:.0%} answered automatically; customers "
        f"confirm {args.confirm:.0%}, re-open {args.reopen:.0%} ({args.weak_category}: {args.weak_reopen:.0%}); "
        f"durable floor {args.floor:.0%}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        if not args.postgres:
            simulate(f"sqlite:///{Path(scratch) / 'bench.db'}", args, Path(scratch))
            return
        url, name = fresh_postgres(args.postgres)
        try:
            simulate(url, args, Path(scratch))
        finally:
            drop_postgres(args.postgres, name)


if __name__ == "__main__":
    main()
