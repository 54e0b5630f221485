"""Who works a ticket: assignment to a person, and the team each operator belongs to.

A team is the name tickets already carry (`Ticket.team`, set by routing or by hand); an operator in that team sees
its tickets under "My team's" and is told when their customers reply.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.core.enums import Role
from engine.core.models import Operator, Ticket, utcnow
from engine.core.timeline import record_audit, record_event
from engine.operators.permissions import RANK, Actor, require


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise LookupError(f"TCKT-{ticket_id} does not exist")
    return ticket


def _operator(session: Session, username: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.username == username))
    if operator is None or not operator.is_active:
        raise LookupError(f"there is no active operator called {username}")
    return operator


def assign_to_person(session: Session, actor: Actor, ticket_id: int, username: str | None) -> Ticket:
    """Give the ticket to one operator (an agent or above), or to nobody with None.

    Assignment says who answers; it does not stop automation (taking over does).
    """
    require(actor, Role.AGENT)
    ticket = _ticket(session, ticket_id)
    if username is not None:
        operator = _operator(session, username)
        if RANK[Role(operator.role)] < RANK[Role.AGENT]:
            raise ValueError(f"{username} is a viewer and cannot work tickets")
    if ticket.assignee == username:
        return ticket
    before, ticket.assignee = ticket.assignee, username
    ticket.human_touched_at = ticket.human_touched_at or utcnow()
    title = f"{actor.username} assigned the ticket to {username}" if username else f"{actor.username} unassigned it"
    record_event(session, ticket, "assigned_to_person", title, actor=actor.label, assignee=username)
    record_audit(session, actor.username, "assign_person", "ticket", ticket.id, before=before, after=username)
    return ticket


def set_operator_team(session: Session, actor: Actor, username: str, team: str | None) -> Operator:
    """Put an operator in a team (or in none): leads and admins only."""
    require(actor, Role.LEAD)
    operator = _operator(session, username)
    team = (team or "").strip() or None
    if operator.team != team:
        before, operator.team = operator.team, team
        record_audit(session, actor.username, "set_operator_team", "operator", username, before=before, after=team)
    return operator


def operator_team(session: Session, username: str) -> str | None:
    return session.scalar(select(Operator.team).where(Operator.username == username))


def assignable_operators(session: Session) -> list[str]:
    """Usernames of the active operators who may work tickets, for the assignment picker."""
    workers = (role.value for role in Role if RANK[role] >= RANK[Role.AGENT])
    return list(
        session.scalars(
            select(Operator.username)
            .where(Operator.is_active.is_(True), Operator.role.in_(tuple(workers)))
            .order_by(Operator.username)
        )
    )


def operator_teams(session: Session) -> list[tuple[str, str, str | None]]:
    """Every active operator as (username, role, team), for the Team page."""
    rows = session.execute(
        select(Operator.username, Operator.role, Operator.team)
        .where(Operator.is_active.is_(True))
        .order_by(Operator.username)
    ).all()
    return [(row.username, row.role, row.team) for row in rows]
