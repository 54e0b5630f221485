"""The back-off's arithmetic, its counting in the database, and which address is the client's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import SignInThrottle, utcnow
from engine.core.settings import Settings
from engine.operators.sign_in_throttle import (
    FORGET_AFTER,
    account_counter,
    clear,
    client_address,
    client_counter,
    delay_after,
    record_failure,
    seconds_to_wait,
)

NOW = utcnow().replace(microsecond=0)


def test_the_wait_doubles_from_one_second_after_the_allowed_failures_up_to_the_longest(settings: Settings) -> None:
    allowed = settings.DASHBOARD_MAX_FAILED_LOGINS
    waits = [delay_after(settings, failures, allowed) for failures in range(allowed + 12)]
    assert waits[:allowed] == [0.0] * allowed
    assert waits[allowed:] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert delay_after(settings, 10_000, allowed) == settings.DASHBOARD_SIGN_IN_MAX_DELAY_MINUTES * 60


def test_a_name_allows_more_failures_than_a_client(settings: Settings) -> None:
    assert account_counter(settings, "Ann ")[1] == 4 * client_counter(settings, "203.0.113.9")[1]
    assert account_counter(settings, "Ann ")[0] == account_counter(settings, "ann")[0]
    assert "ann" not in account_counter(settings, "ann")[0], "keys are HMACs, not names"


def test_failures_are_counted_waited_for_cleared_and_forgotten(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    counter = client_counter(settings, "203.0.113.9")
    allowed = counter[1]
    with session_factory.begin() as session:
        for _ in range(allowed - 1):
            record_failure(session, [counter], NOW)
        assert seconds_to_wait(session, settings, [counter], NOW) == 0
        record_failure(session, [counter], NOW)
        assert seconds_to_wait(session, settings, [counter], NOW) == 1
        assert seconds_to_wait(session, settings, [counter], NOW + timedelta(seconds=1)) == 0
        record_failure(session, [counter], NOW + timedelta(seconds=1))
        assert seconds_to_wait(session, settings, [counter], NOW + timedelta(seconds=1)) == 2
        clear(session, [counter])
        assert seconds_to_wait(session, settings, [counter], NOW) == 0
        for _ in range(allowed + 10):
            record_failure(session, [counter], NOW)
        assert seconds_to_wait(session, settings, [counter], NOW + FORGET_AFTER) == 0
        record_failure(session, [counter], NOW + FORGET_AFTER)
        assert session.scalar(select(SignInThrottle.failures)) == 1, "a day later the count starts again"


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        ("198.51.100.7", None, "", "198.51.100.7"),
        ("198.51.100.7", "203.0.113.9", "", "198.51.100.7"),  # an untrusted peer cannot name another client
        ("10.0.0.2", "203.0.113.9", "10.0.0.0/8", "203.0.113.9"),
        ("10.0.0.2", "6.6.6.6, 203.0.113.9", "10.0.0.0/8", "203.0.113.9"),  # the client's own claim is ignored
        ("10.0.0.2", "203.0.113.9, 10.0.0.3", "10.0.0.0/8", "203.0.113.9"),  # two proxies of ours
        (None, "203.0.113.9", "", "203.0.113.9"),  # a proxy on the loopback interface
        (None, None, "", None),  # this machine, no proxy: the browser session stands in
        ("2001:db8::1", None, "", "2001:db8::1"),
    ],
)
def test_the_client_address_is_the_last_hop_no_proxy_of_ours_vouches_for(
    peer: str | None, forwarded: str | None, trusted: str, client: str | None
) -> None:
    assert client_address(peer, forwarded, trusted) == client
