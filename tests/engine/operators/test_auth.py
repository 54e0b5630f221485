"""The first admin is created once, even by two submissions at once; a wrong setup code, non-ASCII included, is
refused without an error."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

import engine.operators.auth as auth
from engine.core.db import transaction
from engine.core.models import Operator
from engine.core.settings import Settings
from engine.operators.auth import (
    OperatorError,
    create_first_admin,
    create_first_admin_with_code,
    pending_setup_code,
    setup_code_path,
)
from tests.waiting import wait_until

PASSWORD = "a long password"


def test_a_non_ascii_setup_code_is_refused_without_an_error(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        code = pending_setup_code(session, settings)
    assert code is not None and oct(setup_code_path(settings).stat().st_mode & 0o777) == "0o600"
    for wrong in ("ĉodé", "😀" * 12, code + "é", ""):
        with transaction(session_factory) as session, pytest.raises(OperatorError, match="setup code is not right"):
            create_first_admin_with_code(session, settings, wrong, "root", PASSWORD)
    with transaction(session_factory) as session:
        create_first_admin_with_code(session, settings, f" {code} ", "root", PASSWORD)
    assert not setup_code_path(settings).exists()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_two_first_admins_at_once_make_exactly_one_admin(
    session_factory: sessionmaker[Session], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finding: two simultaneous first-admin submissions on PostgreSQL created two admins.

    The first submission holds after its "no admin yet" check until the second has either passed the same check
    (the race) or is seen waiting for the first's lock; only then does the first go on and commit.
    """
    real_check = auth._active_admins
    second_checked = threading.Event()
    first = threading.Lock()

    def someone_waits_for_a_lock() -> bool:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar()
            )

    def check_then_hold(session: Session) -> int:
        admins = real_check(session)
        if first.acquire(blocking=False):
            wait_until(lambda: second_checked.is_set() or someone_waits_for_a_lock(), timeout=60, what="the second")
        else:
            second_checked.set()
        return admins

    monkeypatch.setattr(auth, "_active_admins", check_then_hold)
    outcomes: dict[str, str] = {}

    def submit(username: str) -> None:
        try:
            with transaction(session_factory) as session:
                create_first_admin(session, username, PASSWORD, by="browser")
            outcomes[username] = "created"
        except OperatorError as error:
            outcomes[username] = str(error)

    threads = [threading.Thread(target=submit, args=(name,)) for name in ("root-one", "root-two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes.values()) == [
        "an admin already exists; sign in as that admin and add operators on the Settings page",
        "created",
    ]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Operator).where(Operator.role == "admin")) == 1
