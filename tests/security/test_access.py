"""Every write the engine offers refuses, server side, a role that may not do it, and writes nothing when it does.

The table below must name every public function of engine/operators/actions.py and engine/operators/auth.py that
takes an `Actor`:
a new write function without an entry fails `test_every_write_function_is_covered`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import engine.operators.actions
import engine.operators.auth
import engine.operators.permissions
from engine.core.desk_policy import current_policy
from engine.core.enums import Role, TicketStatus
from engine.core.models import AuditEntry, Base, KbDocument, OutboxMessage
from engine.core.settings import Settings
from engine.operators.auth import (
    OperatorError,
    SignInAttempt,
    authenticate,
    create_first_admin,
    create_operator,
)
from engine.operators.permissions import RANK, Actor, PermissionDeniedError
from tests.factories import drafted, own_transactions

CHECKS_ONLY = {"require"}
"""Public functions taking an Actor that write nothing: the role check itself."""


@dataclass(frozen=True)
class Desk:
    session: Session
    settings: Settings
    ticket_id: int
    action_id: int
    outbox_id: int
    document_id: int


Call = Callable[[Desk, Actor], object]
WRITES: dict[str, tuple[Role, Call]] = {
    "approve_draft": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.approve_draft(d.session, d.settings, a, d.action_id, 1),
    ),
    "edit_draft": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.edit_draft(d.session, a, d.action_id, 1, subject="s", body="b"),
    ),
    "reject_draft": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.reject_draft(d.session, a, d.action_id, 1, reason="no"),
    ),
    "take_over": (Role.AGENT, lambda d, a: engine.operators.actions.take_over(d.session, a, d.ticket_id)),
    "request_reanalysis": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.request_reanalysis(d.session, a, d.ticket_id),
    ),
    "send_manual_reply": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.send_manual_reply(
            d.session, d.settings, a, d.ticket_id, subject="s", body="b"
        ),
    ),
    "set_status": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.set_status(d.session, a, d.ticket_id, TicketStatus.CLOSED),
    ),
    "assign": (Role.AGENT, lambda d, a: engine.operators.actions.assign(d.session, a, d.ticket_id, team="Network")),
    "override_decision": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.override_decision(
            d.session, d.settings, a, d.ticket_id, "escalate", reason="r"
        ),
    ),
    "resolve_uncertain_message": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.resolve_uncertain_message(d.session, a, d.outbox_id, resend=True),
    ),
    "bulk_approve": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.bulk_approve(d.session, d.settings, a, {d.ticket_id: (d.action_id, 1)}),
    ),
    "bulk_assign": (
        Role.AGENT,
        lambda d, a: engine.operators.actions.bulk_assign(d.session, a, [d.ticket_id], team="Network"),
    ),
    "bulk_close": (Role.AGENT, lambda d, a: engine.operators.actions.bulk_close(d.session, a, [d.ticket_id])),
    "change_policy": (
        Role.LEAD,
        lambda d, a: engine.operators.actions.change_policy(d.session, a, current_policy(d.session, d.settings)),
    ),
    "approve_kb_chunk": (Role.LEAD, lambda d, a: engine.operators.actions.approve_kb_chunk(d.session, a, 1)),
    "add_kb_document": (
        Role.LEAD,
        lambda d, a: engine.operators.actions.add_kb_document(
            own_transactions(d.session), d.settings, a, "x.md", b"# X\nsome text"
        ),
    ),
    "reindex_kb_document": (
        Role.LEAD,
        lambda d, a: engine.operators.actions.reindex_kb_document(
            own_transactions(d.session), d.settings, a, d.document_id
        ),
    ),
    "remove_kb_document": (
        Role.LEAD,
        lambda d, a: engine.operators.actions.remove_kb_document(
            own_transactions(d.session), d.settings, a, d.document_id
        ),
    ),
    "mark_learned_answer_general": (
        Role.LEAD,
        lambda d, a: engine.operators.actions.mark_learned_answer_general(d.session, a, 1),
    ),
    "restore_answer": (Role.LEAD, lambda d, a: engine.operators.actions.restore_answer(d.session, a, "learned:1")),
    "publish_learned_article": (
        Role.LEAD,
        lambda d, a: engine.operators.actions.publish_learned_article(
            own_transactions(d.session), d.settings, a, 1, title="t", questions=["q"]
        ),
    ),
    "create_operator": (
        Role.ADMIN,
        lambda d, a: engine.operators.auth.create_operator(d.session, a, "eve", Role.ADMIN, password="a long password"),
    ),
    "update_operator": (
        Role.ADMIN,
        lambda d, a: engine.operators.auth.update_operator(d.session, a, a.username, role=Role.ADMIN),
    ),
    "lift_sign_in_delay": (
        Role.ADMIN,
        lambda d, a: engine.operators.auth.lift_sign_in_delay(d.session, d.settings, a, "agent"),
    ),
    "sign_out_everywhere": (
        Role.ADMIN,  # for someone else; anyone may for themself
        lambda d, a: engine.operators.auth.sign_out_everywhere(d.session, a, "someone-else"),
    ),
}


def takes_an_actor(module: ModuleType) -> set[str]:
    """Public functions defined in `module` with a parameter annotated `Actor`."""
    return {
        name
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if not name.startswith("_")
        and function.__module__ == module.__name__
        and any(p.annotation in ("Actor", Actor) for p in inspect.signature(function).parameters.values())
    }


def test_every_write_function_is_covered() -> None:
    modules = (engine.operators.actions, engine.operators.auth, engine.operators.permissions)
    assert set().union(*map(takes_an_actor, modules)) == set(WRITES) | CHECKS_ONLY


def row_counts(session: Session) -> dict[str, int]:
    return {
        table.name: session.scalar(select(func.count()).select_from(table)) or 0
        for table in Base.metadata.sorted_tables
    }


@pytest.fixture
def desk(session_factory: sessionmaker[Session], settings: Settings) -> Desk:
    """A ticket with a draft awaiting approval, its acknowledgement, a KB document, and an SSO-only operator."""
    ticket_id, action_id = drafted(session_factory, settings)
    with session_factory.begin() as session:
        create_operator(session, Actor("root", Role.ADMIN), "agent", Role.AGENT, email="agent@desk.example")
        document = KbDocument(filename="kept.md", size=1, status="indexed", title="kept")
        session.add(document)
        session.flush()
        outbox_id = session.scalar(select(OutboxMessage.id).where(OutboxMessage.ticket_id == ticket_id))
        document_id = document.id
    session = session_factory()
    yield Desk(session, settings, ticket_id, action_id, outbox_id, document_id)
    session.close()


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_role_below_the_minimum_is_refused_and_nothing_is_written(desk: Desk, name: str) -> None:
    minimum, call = WRITES[name]
    before = row_counts(desk.session)
    for role in [role for role in Role if RANK[role] < RANK[minimum]]:
        with pytest.raises(PermissionDeniedError, match=f"needs {minimum} or above"):
            call(desk, Actor(role.value, role))
        desk.session.flush()
        assert row_counts(desk.session) == before, role
    desk.session.rollback()


def test_the_first_admin_cannot_be_created_twice(desk: Desk) -> None:
    """The CLI bootstrap takes no Actor: it works only while no admin exists, so it is no back door."""
    create_first_admin(desk.session, "ada", "a long password")
    with pytest.raises(OperatorError, match="an admin already exists"):
        create_first_admin(desk.session, "mallory", "a long password")


def test_a_wrong_password_appears_in_no_log_line_and_no_audit_entry(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Tr0ub4dor&3-not-the-password"
    create_first_admin(desk.session, "ada", "the right password")
    with caplog.at_level(logging.DEBUG):
        for username in ("ada", "agent", "nobody", wrong):
            attempt = SignInAttempt("203.0.113.9")
            assert authenticate(desk.session, desk.settings, username, wrong, attempt).actor is None
        desk.session.commit()
    logged = [str(vars(record)) for record in caplog.records]
    assert [line for line in logged if wrong in line] == []
    audit = desk.session.scalars(select(AuditEntry)).all()
    assert [entry.action for entry in audit if entry.action.startswith("sign_in")] == ["sign_in_failed"] * 4
    assert [entry for entry in audit if wrong in f"{entry.actor} {entry.target_id} {entry.details}"] == []
