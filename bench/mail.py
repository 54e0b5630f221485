"""The mail paths against real Postfix and Dovecot (tests/mail_servers.py starts them on 127.0.0.1, as the tests do):

1. ingest: N customer mails handed to Postfix, then one poll of the desk's mailbox over IMAPS (messages/s);
2. end to end: the engine's jobs run back to back (poll, analyse, send) until every acknowledgement is in the
   customers' Dovecot mailbox (tickets/s), with how long each acknowledgement took from the outbox to the mailbox;
3. latency: mails submitted one at a time while the engine runs: SMTP submission to ticket, and to the
   acknowledgement in the customer's mailbox;
4. a Dovecot restart while the engine runs and mail keeps coming: how long polling takes to resume once Dovecot
   answers, and whether every mail is taken in and acknowledged once.

Needs root and Debian's postfix, dovecot-imapd and dovecot-lmtpd (`make system-packages`). Prints figures and the
machine's load beside them; asserts nothing. Run: `.venv/bin/python -m bench.mail --messages 500`.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import imaplib
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from engine.core.db import make_engine, make_session_factory, upgrade_database
from engine.core.models import EmailInteraction, OutboxMessage, Ticket
from engine.core.settings import Settings, load_settings
from engine.jobs import poll_source
from engine.runtime import build_runtime
from engine.scheduler import run_all_once
from tests.factories import customer_mail
from tests.mail_servers import CUSTOMER_DOMAIN, DESK, MailServers, running_mail_servers, unavailable_reason

CUSTOMER = f"pat@{CUSTOMER_DOMAIN}"
"""Every sender is pat+N@…: distinct addresses (the hourly cap counts per address), one Dovecot mailbox."""


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f} on {os.cpu_count()} cores"


class MailboxWatcher:
    """Notes when each message first shows in a mailbox, read over IMAPS every 0.2 s: by Message-ID, and by the
    Message-ID it answers (In-Reply-To)."""

    def __init__(self, servers: MailServers, user: str) -> None:
        self.servers, self.user = servers, user
        self.seen: dict[str, datetime] = {}
        self.answered: dict[str, datetime] = {}
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="mailbox-watcher", daemon=True)

    def __enter__(self) -> MailboxWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        """Until stopped, or until the server goes away (a Dovecot restart ends every session)."""
        try:
            client = self.servers.imap(self.user)
        except (OSError, imaplib.IMAP4.error):
            return
        last = 0
        try:
            client.select("INBOX", readonly=True)
            while not self._stop.wait(0.2):
                client.noop()
                _, found = client.uid("SEARCH", f"UID {last + 1}:*")
                uids = [int(uid) for uid in (found[0] or b"").split() if int(uid) > last]
                if not uids:
                    continue
                moment = now()
                wanted = ",".join(map(str, uids))
                _, data = client.uid("FETCH", wanted, "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID IN-REPLY-TO)])")
                for part in data:
                    if isinstance(part, tuple):
                        headers = email.message_from_bytes(part[1], policy=email.policy.default)
                        self.seen.setdefault(str(headers["Message-ID"]), moment)
                        if headers["In-Reply-To"]:
                            self.answered.setdefault(str(headers["In-Reply-To"]), moment)
                last = max(uids)
                self.count = len(self.seen)
        except (OSError, imaplib.IMAP4.error):
            return
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                client.logout()

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.count >= count


class EngineLoop:
    """The engine's jobs once after another, as fast as they go, on a thread (what `engine run` does on timers)."""

    def __init__(self, settings: Settings) -> None:
        self.runtime = build_runtime(settings)
        self.rounds = 0
        self.failed_polls: list[datetime] = []
        self.good_polls: list[datetime] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="engine-loop", daemon=True)

    def __enter__(self) -> EngineLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            results = run_all_once(self.runtime)
            polled = isinstance(results.get("poll_imap"), dict)
            (self.good_polls if polled else self.failed_polls).append(now())
            self.rounds += 1


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A time read from the database, in UTC (SQLite gives it back without its zone)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def submit(servers: MailServers, numbers: range, tag: str) -> dict[str, datetime]:
    """Hand one customer mail per number to Postfix; when each was accepted, by its Message-ID."""
    accepted = {}
    for number in numbers:
        message_id = f"<{tag}-{number}@customer.test>"
        sender = f"pat+{tag}{number}@{CUSTOMER_DOMAIN}"
        body = f"Printer {number} on floor 3 shows E42 when I print a PDF from the finance share."
        servers.deliver(customer_mail(f"Printer {number} shows E42", message_id, sender, body=body), sender, DESK)
        accepted[message_id] = now()
    return accepted


def wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return condition()


def mailbox_size(servers: MailServers, user: str) -> int:
    client = servers.imap(user)
    try:
        _, data = client.status("INBOX", "(MESSAGES)")
        return int(data[0].split()[-1].strip(b")"))
    finally:
        client.logout()


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(ordered):.2f}s, p90 {p90:.2f}s, max {ordered[-1]:.2f}s (n={len(ordered)})"


def created(settings: Settings) -> dict[str, datetime]:
    """When each customer mail became part of a ticket, by its Message-ID."""
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        rows = session.execute(
            select(EmailInteraction.message_id, Ticket.created_at)
            .join(Ticket, Ticket.id == EmailInteraction.ticket_id)
            .where(EmailInteraction.direction == "inbound")
        ).all()
    engine.dispose()
    return {message_id: aware(at) for message_id, at in rows}


def outbox_times(settings: Settings) -> dict[str, tuple[datetime, datetime | None]]:
    """When each outbox message was queued, and when Postfix accepted it, by its Message-ID."""
    engine = make_engine(settings.database_url)
    with make_session_factory(engine)() as session:
        rows = session.execute(select(OutboxMessage.message_id, OutboxMessage.created_at, OutboxMessage.sent_at)).all()
    engine.dispose()
    return {message_id: (aware(queued), aware(sent) if sent else None) for message_id, queued, sent in rows}


def ingest_and_end_to_end(servers: MailServers, settings: Settings, count: int) -> None:
    began = time.perf_counter()
    submit(servers, range(count), "bulk")
    handed = time.perf_counter() - began
    print(f"submitted {count} mails to Postfix in {handed:.1f}s ({count / handed:.0f}/s); {load()}")
    wait(lambda: mailbox_size(servers, DESK) >= count, 600)
    print(f"all {count} in the desk's Dovecot mailbox after {time.perf_counter() - began:.1f}s; {load()}")
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    runtime = build_runtime(settings)
    [source] = runtime.sources
    began = time.perf_counter()
    counts = poll_source(engine, factory, settings, source)
    polled = time.perf_counter() - began
    print(f"ingest over IMAPS: {counts} in {polled:.1f}s = {count / polled:.0f} messages/s (one poll); {load()}")
    with MailboxWatcher(servers, CUSTOMER) as watcher:
        began = time.perf_counter()
        with EngineLoop(settings) as loop:
            done = watcher.wait_for(count, 1800)
        elapsed = time.perf_counter() - began
        print(
            f"end to end: {watcher.count} of {count} acknowledgements in the customers' mailbox in {elapsed:.1f}s "
            f"= {watcher.count / elapsed:.1f} tickets/s ({loop.rounds} engine rounds){'' if done else ' (timed out)'};"
            f" {load()}"
        )
        times = outbox_times(settings)
        arrived = [(at, times[mid]) for mid, at in watcher.seen.items() if mid in times]
        waited = [(at - queued).total_seconds() for at, (queued, _) in arrived]
        print("  queued in the outbox to in the mailbox: " + spread(waited))
        print(
            "  accepted by Postfix to in the mailbox: "
            + spread([(at - sent).total_seconds() for at, (_, sent) in arrived if sent is not None])
        )
    engine.dispose()


def latency(servers: MailServers, settings: Settings, count: int) -> None:
    with MailboxWatcher(servers, CUSTOMER) as watcher, EngineLoop(settings):
        accepted = {}
        for number in range(count):
            accepted |= submit(servers, range(number, number + 1), "one")
            time.sleep(1.0)
        wait(lambda: all(mid in watcher.answered for mid in accepted), 600)
    tickets = created(settings)
    print(f"latency, {count} mails one a second with the engine running; {load()}")
    print("  SMTP submission to ticket: " + spread([(tickets[m] - at).total_seconds() for m, at in accepted.items()]))
    print(
        "  SMTP submission to acknowledgement in the mailbox: "
        + spread([(watcher.answered[m] - at).total_seconds() for m, at in accepted.items() if m in watcher.answered])
    )


def dovecot_restart(servers: MailServers, settings: Settings, count: int) -> None:
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with factory() as session:
        before = session.scalar(select(func.count()).select_from(Ticket)) or 0
    with MailboxWatcher(servers, CUSTOMER) as watcher, EngineLoop(settings) as loop:
        accepted = submit(servers, range(count), "before")
        wait(lambda: all(m in watcher.answered for m in accepted), 600)
        servers.stop_dovecot()
        stopped = now()
        accepted |= submit(servers, range(count), "during")
        wait(lambda: len(loop.failed_polls) >= 3, 120)
        servers.start_dovecot()
        back = now()
        wait(lambda: any(at > back for at in loop.good_polls), 300)
        resumed = min((at for at in loop.good_polls if at > back), default=None)
        accepted |= submit(servers, range(count), "after")
    # a new watcher: the old one's connection ended with Dovecot
    with MailboxWatcher(servers, CUSTOMER) as watcher, EngineLoop(settings):
        wait(lambda: all(m in watcher.answered for m in accepted), 600)
    with factory() as session:
        tickets = (session.scalar(select(func.count()).select_from(Ticket)) or 0) - before
        inbound = session.scalars(select(EmailInteraction.message_id).where(EmailInteraction.direction == "inbound"))
        taken = [mid for mid in inbound if mid in accepted]
    answered = [m for m in accepted if m in watcher.answered]
    print(f"Dovecot restart while the engine runs ({count} mails before, during and after); {load()}")
    print(f"  Dovecot down for {(back - stopped).total_seconds():.1f}s; {len(loop.failed_polls)} failed poll(s)")
    if resumed is not None:
        print(f"  polling resumed {(resumed - back).total_seconds():.1f}s after Dovecot answered again")
    else:
        print("  polling did not resume")
    print(
        f"  {len(set(taken))} of {len(accepted)} mails taken in ({len(taken) - len(set(taken))} twice), "
        f"{tickets} tickets; {len(answered)} of {len(accepted)} acknowledged in the mailbox"
    )
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500, help="mails for the ingest and end-to-end figures")
    parser.add_argument("--latency-messages", type=int, default=20, help="mails sent one a second for latency")
    parser.add_argument("--restart-messages", type=int, default=10, help="mails before, during and after")
    args = parser.parse_args()
    if (reason := unavailable_reason()) is not None:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nts-bench-mail-") as folder, running_mail_servers() as servers:
        settings = load_settings(
            _env_file=None,
            DATA_DIR=Path(folder) / "data",
            DATABASE_URL=f"sqlite:///{folder}/mail.db",
            DEMO_FEED_ENABLED=False,
            ENGINE_ENABLED=False,
            LOG_LEVEL="ERROR",
            CONNECTOR_READ_TIMEOUT_SECONDS=60.0,
            **servers.desk_values(),
        )
        upgrade_database(make_engine(settings.database_url))
        ingest_and_end_to_end(servers, settings, args.messages)
        latency(servers, settings, args.latency_messages)
        dovecot_restart(servers, settings, args.restart_messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
