"""How long the server takes to render every page at 100,000 tickets and 1,000,000 timeline events in
PostgreSQL (goal: every page under one second), and its first (cold) render in a new browser session; then what an
operator waits for in the queue (goal: p95 under one second each): opening a ticket from a click in the queue, and
the keyboard's round trip (j / k move the focus, a asks for the confirmation); and the first page after a start
(goal: under three seconds): a new process importing the app, building its runtime and rendering Home; and the
queue's full-text search (the database's tsvector index over subjects, descriptions and 100,000 customer replies).

    .venv/bin/python bench/dashboard.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/nts_bench]
                                        [--tickets 100000] [--events 1000000] [--runs 15]

The data is generated once in SQL (generate_series) and kept, so later runs only measure. Each page is run once
in a fresh session (the cold figure), then `--runs` times through AppTest with Streamlit's data cache cleared
before each run, so the figures are the queries' and the rendering's, not a cache hit; the script prints
cold / p50 / p95 / max per page and per interaction. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PASSWORD = "bench-password-123"  # noqa: S105 (the bench operator, made by prepare())
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TICKETS_SQL = """
INSERT INTO tickets (source, external_id, email, requester_name, subject, description, status, priority, category,
    team, action_required, escalation_criteria, follow_up_count, created_at, updated_at, first_response_at,
    resolved_at, human_touched_at)
SELECT (ARRAY['servicenow','jira','outlook','demo'])[1 + i % 4], 'BENCH-' || i, 'user' || (i % 5000) || '@example.com',
    'User ' || (i % 5000), 'Cannot reach the VPN from site ' || (i % 97) || ' (case ' || i || ')',
    'Since this morning the VPN client says the gateway is unreachable. Ticket number ' || i,
    (ARRAY['New','AwaitingApproval','AwaitingCustomer','Escalated','Resolved','Resolved','Closed'])[1 + i % 7],
    (ARRAY['critical','high','medium','low'])[1 + i % 4],
    (ARRAY['network','access','email','hardware','software'])[1 + i % 5],
    (ARRAY['Service Desk','Network','Identity','Field Services'])[1 + i % 4],
    false, '{}'::jsonb, i % 3,
    now() - make_interval(mins => (i * 7) % 259200), now() - make_interval(mins => (i * 7) % 259200 - 30),
    now() - make_interval(mins => (i * 7) % 259200 - 1 - i % 90),
    CASE WHEN i % 7 IN (4, 5, 6) THEN now() - make_interval(mins => (i * 7) % 259200 - 60 - i % 2000) END,
    CASE WHEN i % 3 = 0 THEN now() - make_interval(mins => (i * 7) % 259200 - 20) END
FROM generate_series(1, :n) AS i
"""
EVENTS_SQL = """
INSERT INTO timelines (ticket_id, type, title, actor, timestamp, data)
SELECT t.first_id + (i % :n),
    (ARRAY['received','email_queued','status_changed','analysed','action_proposed'])[1 + i % 5],
    'Bench event ' || i, CASE WHEN i % 10 = 0 THEN 'operator:bench' ELSE 'engine' END,
    now() - make_interval(secs => i), '{}'::jsonb
FROM generate_series(1, :events) AS i, (SELECT min(id) AS first_id FROM tickets) AS t
"""
ANALYSES_SQL = """
INSERT INTO analyses (ticket_id, analyser, decision, confidence, summary, resolution_steps, information_gaps,
    follow_up_questions, evidence, guards, prompt_tokens, completion_tokens, cost_usd, latency_ms, created_at)
SELECT id, 'retrieval-only', 'resolve', (id % 100) / 100.0, 'VPN gateway unreachable', '["Restart the client"]',
    '[]', '[]', '[{"source_kind": "kb", "source_id": 1, "title": "vpn-setup.md", "location": "section Gateway",
    "text": "Restart the VPN client.", "fused_score": 0.03, "vector_rank": 1, "bm25_rank": 2, "chunk_id": 1}]',
    '[]', 0, 0, 0, 120, created_at
FROM tickets
"""
ACTIONS_SQL = """
INSERT INTO actions (ticket_id, analysis_id, kind, state, version, subject, body, team, reason, policy, created_by,
    decided_by, decided_at, created_at, updated_at)
SELECT a.ticket_id, a.id, 'propose_resolution',
    (ARRAY['awaiting_approval','executed','executed','rejected','voided'])[1 + a.ticket_id % 5], 1 + a.ticket_id % 2,
    'Resolution Proposed', 'Restart the VPN client.', 'Network', 'bench', '{}'::jsonb, 'engine',
    CASE WHEN a.ticket_id % 4 = 0 THEN 'engine' ELSE 'operator:bench' END, a.created_at, a.created_at, a.created_at
FROM analyses a
"""
REPLIES_SQL = """
INSERT INTO email_interactions (ticket_id, direction, email_type, source, external_id, from_address, subject, body,
    headers, received_at)
SELECT id, 'inbound', 'reply', source, 'BENCH-REPLY-' || id, email, 'Re: ' || subject,
    CASE WHEN id % 100 = 0 THEN 'Please also check the signed contracts in the shared folder, reference ' || id
    ELSE 'Still broken after a restart of the laptop, reference ' || id END, '{}'::jsonb, updated_at
FROM tickets
"""
SEARCHES = ("contracts", "gateway unreachable", "laptop restart", "TCKT-42", "nothingmatcheszz")
"""A rare word (1 % of replies), words in every description, words in every reply, a ticket id, no match."""
ESCALATIONS_SQL = """
INSERT INTO escalations (ticket_id, analysis_id, criteria, components, weighted_score, threshold, escalate, reasons,
    team, created_at)
SELECT ticket_id, id, '{}'::jsonb,
    '{"system_impact": {"score": 40, "weight": 0.15, "weighted": 6}, "estimated_hours": {"score": 50, "weight": 0.2,
    "weighted": 10}}'::jsonb, 16, 70, false, '["bench"]'::jsonb, 'Network', created_at
FROM analyses WHERE ticket_id % 3 = 0
"""


def prepare(url: str, tickets: int, events: int) -> int:
    """Create and fill the database unless it already holds the data; returns a ticket id to open."""
    from engine.core.db import make_engine, make_session_factory, upgrade_database
    from engine.operators.auth import create_first_admin

    parsed = make_url(url)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": parsed.database}):
            connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    engine = make_engine(url)
    upgrade_database(engine)
    with engine.begin() as connection:
        have = connection.scalar(text("SELECT count(*) FROM tickets"))
        if have < tickets:
            started = time.perf_counter()
            print(f"generating {tickets:,} tickets and {events:,} timeline events…", flush=True)
            connection.execute(
                text("TRUNCATE tickets, timelines, analyses, actions, escalations, operators, audit_log CASCADE")
            )
            connection.execute(text(TICKETS_SQL), {"n": tickets})
            connection.execute(text(EVENTS_SQL), {"n": tickets, "events": events})
            for statement in (ANALYSES_SQL, ACTIONS_SQL, ESCALATIONS_SQL):
                connection.execute(text(statement))
            print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
        if connection.scalar(text("SELECT count(*) FROM email_interactions")) < tickets:
            connection.execute(text("TRUNCATE email_interactions CASCADE"))
            connection.execute(text(REPLIES_SQL))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    factory = make_session_factory(engine)
    with factory.begin() as session:
        if not session.scalar(text("SELECT count(*) FROM operators WHERE username = 'bench'")):
            create_first_admin(session, "bench", PASSWORD)
        ticket_id = session.scalar(text("SELECT max(id) FROM tickets WHERE status = 'AwaitingApproval'"))
    engine.dispose()
    return int(ticket_id)


def signed_in_session(username: str) -> int:
    """A server-side session for `username`, as a sign-in starts it (pages refuse a browser session without one)."""
    from engine.core.db import make_engine, make_session_factory, transaction
    from engine.core.settings import get_settings
    from engine.operators.sessions import start_session

    settings = get_settings()
    engine = make_engine(settings.database_url)
    with transaction(make_session_factory(engine)) as session:
        session_id = start_session(session, settings, username, "password", client_hint="bench").id
    engine.dispose()
    return session_id


def signed_in_app(page: str, **query: str) -> Any:
    """An AppTest of `page` signed in as the bench operator, not yet run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120)
    if page != "Home.py":
        at.switch_page(page)
    at.session_state["auth_user"] = {
        "username": "bench",
        "role": "admin",
        "method": "password",
        "session_id": signed_in_session("bench"),
    }
    for key, value in query.items():
        at.query_params[key] = value
    return at


def measure(page: str, runs: int, **query: str) -> tuple[float, list[float]]:
    """Server time of the first render of `page` in a new signed-in session, then of `runs` renders more."""
    import streamlit as st

    at = signed_in_app(page, **query)
    st.cache_data.clear()
    started = time.perf_counter()
    at.run()
    cold = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{page} failed: {at.exception[0].message}")
    timings = []
    for _ in range(runs):
        at.session_state["queue_refreshes"] = len(timings) + 1
        st.cache_data.clear()
        started = time.perf_counter()
        at.run()
        timings.append(time.perf_counter() - started)
    return cold, timings


STATEMENTS = [0]
"""SQL statements sent by this process so far (every engine's), so each interaction's figure comes with a count
that the machine's load cannot change."""


def count_statements() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "before_cursor_execute", lambda *_: STATEMENTS.__setitem__(0, STATEMENTS[0] + 1))


def timed(action: Any, statements: list[int] | None = None) -> float:
    """Wall time of `action`; the SQL statements it sent are appended to `statements`."""
    before = STATEMENTS[0]
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    if statements is not None:
        statements.append(STATEMENTS[0] - before)
    return elapsed


def queue_interactions(runs: int) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """What an operator waits for in the queue, each `runs` times: a click on a row opening its ticket (the queue's
    run that switches page and the ticket page's render), j / k moving the focus, and a asking for the confirmation
    (cancelled again, untimed); with the SQL statements each sent."""
    at = signed_in_app("pages/1_Queue.py")
    at.run()
    rows = len(at.dataframe[0].value)
    waits: dict[str, list[float]] = {"open a ticket from the queue": [], "key j or k": [], "key a (confirmation)": []}
    sent: dict[str, list[int]] = {label: [] for label in waits}
    for _ in range(runs):
        for key in ("queue_down", "queue_up"):
            waits["key j or k"].append(timed(lambda key=key: at.button(key=key).click().run(), sent["key j or k"]))
    for _ in range(rows):
        if len(waits["key a (confirmation)"]) >= runs:
            break
        if not at.button(key="queue_approve").disabled:
            waits["key a (confirmation)"].append(
                timed(lambda: at.button(key="queue_approve").click().run(), sent["key a (confirmation)"])
            )
            at.button(key="queue_confirm_no").click().run()
        if at.button(key="queue_down").disabled:  # the page's last row
            break
        at.button(key="queue_down").click().run()
    for run in range(runs):
        at.session_state["queue_table"] = {"selection": {"rows": [], "columns": [], "cells": [[run % rows, "subject"]]}}
        waits["open a ticket from the queue"].append(timed(at.run, sent["open a ticket from the queue"]))
        if at.exception:
            raise RuntimeError(f"opening a ticket failed: {at.exception[0].message}")
        at.switch_page("pages/1_Queue.py")
        at.session_state["queue_table"] = {"selection": {"rows": [], "columns": [], "cells": []}}
        at.run()
    return waits, sent


def first_page_after_start() -> float:
    """Wall time of a new process that imports the app, builds its runtime and renders Home once: what the first
    page after a server start waits for (the server's own few hundred milliseconds of start-up aside)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--first-page-only"]
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - started


def percentiles(label: str, cold: float | None, timings: list[float]) -> None:
    timings = sorted(timings)
    p95 = timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))]
    figures = [statistics.median(timings), p95, timings[-1]]
    shown = "" if cold is None else f"{cold * 1000:.0f}"
    print(f"{label:<32}{shown:>10}" + "".join(f"{value * 1000:>10.0f}" for value in figures), flush=True)


def time_searches(url: str, runs: int) -> None:
    """The queue's search as the page runs it (a count and one page of rows), per typed text."""
    from engine.core.db import make_engine, make_session_factory
    from engine.operators.queries import QueueFilter, queue_page

    engine = make_engine(url)
    factory = make_session_factory(engine)
    print(f"{'full-text search (matches)':<32}{'':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for typed in SEARCHES:
        timings, total = [], 0
        for _ in range(runs):
            with factory() as session:
                started = time.perf_counter()
                _, total = queue_page(session, QueueFilter(search=typed), limit=50)
                timings.append(time.perf_counter() - started)
        percentiles(f"{typed!r} ({total:,})", None, timings)
    engine.dispose()


def bench_arguments(description: str | None) -> argparse.ArgumentParser:
    """The database and how many runs, alike for this bench and bench/queue_browser.py (they share the data)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/nts_bench")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    return parser


def main() -> int:
    parser = bench_arguments(__doc__)
    parser.add_argument("--first-page-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_page_only:  # the child of first_page_after_start(): the environment is already set
        at = signed_in_app("Home.py")
        at.run()
        print(f"modules imported by the first page: {len(sys.modules):,}", flush=True)
        return 1 if at.exception else 0
    ticket_id = prepare(args.url, args.tickets, args.events)
    os.environ.update(
        DATABASE_URL=args.url,
        DATA_DIR=tempfile.mkdtemp(prefix="nts-bench-"),
        ENGINE_ENABLED="false",
        DEMO_FEED_ENABLED="false",
        LOG_LEVEL="WARNING",
    )
    time_searches(args.url, args.runs)
    print(f"first page after start (new process, Home): {first_page_after_start():.2f} s", flush=True)
    print(f"{'page':<32}{'cold ms':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for label, page, query in (
        ("queue (page 1 of 2,000)", "pages/1_Queue.py", {}),
        (f"ticket TCKT-{ticket_id}", "pages/2_Ticket.py", {"id": str(ticket_id)}),
        ("metrics (last 30 days)", "pages/4_Metrics.py", {}),
        ("home", "Home.py", {}),
        ("knowledge base", "pages/3_Knowledge_Base.py", {}),
        ("settings", "pages/5_Settings.py", {}),
        ("audit", "pages/6_Audit.py", {}),
    ):
        cold, timings = measure(page, args.runs, **query)
        percentiles(label, cold, timings)
    count_statements()
    waits, sent = queue_interactions(args.runs)
    for label, timings in waits.items():
        if timings:
            percentiles(label, None, timings)
    print("SQL statements per interaction: " + "; ".join(f"{label} {sorted(set(n))}" for label, n in sent.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
