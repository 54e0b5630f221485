"""Builders for test data, so tests say only what matters to them."""

from __future__ import annotations

import itertools
import random
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from connectors.base import TicketIn
from engine.core.enums import ActionKind, ActionState, OutcomeState, TicketStatus
from engine.core.models import Action, Analysis, ResolutionOutcome, Ticket, utcnow

_counter = itertools.count(1)


def ticket_in(**overrides: Any) -> TicketIn:
    """A plausible new ticket from a person; override any field."""
    number = next(_counter)
    fields: dict[str, Any] = {
        "source": "test",
        "external_id": f"EXT-{number}",
        "requester_email": f"user{number}@customer.example",
        "requester_name": f"User {number}",
        "subject": f"Cannot log in to the portal ({number})",
        "body": "Since this morning the portal says 'invalid password' although I reset it yesterday.",
    }
    fields.update(overrides)
    return TicketIn(**fields)


def email_in(**overrides: Any) -> TicketIn:
    """An e-mail message (new or reply, depending on its subject and thread)."""
    number = next(_counter)
    fields: dict[str, Any] = {
        "kind": "email",
        "external_id": f"msg-{number}",
        "message_id": f"<msg-{number}@customer.example>",
    }
    fields.update(overrides)
    return ticket_in(**fields)


ROUTING_VOCABULARY = {
    "Network": [
        "vpn tunnel drops",
        "wifi access point",
        "switch port down",
        "firewall rule blocks",
        "dns lookup fails",
    ],
    "Identity & Access": [
        "password reset",
        "account locked out",
        "mfa token lost",
        "sso login loop",
        "ad group access",
    ],
    "Messaging": [
        "outlook mailbox full",
        "shared mailbox missing",
        "distribution list",
        "calendar invite",
        "mail rule",
    ],
    "Service Desk": ["question about my laptop", "how do i order", "general request", "new starter kit", "desk phone"],
}
"""Three specialist teams and the first line (Settings.DEFAULT_TEAM), each with its own words."""


def routing_history(per_team: int, *, seed: int = 0) -> list[tuple[str, str, str]]:
    """(subject, description, team) of resolved tickets whose words tell the team apart, in a shuffled order."""
    rng = random.Random(seed)
    rows = []
    for team, phrases in ROUTING_VOCABULARY.items():
        for _ in range(per_team):
            first, second = rng.sample(phrases, 2)
            rows.append((first, f"Hello, {first} since this morning and {second}. Regards, Sam", team))
    rng.shuffle(rows)
    return rows


def resolved_ticket(session: Session, subject: str, description: str, team: str) -> Ticket:
    """A ticket a person resolved under `team`: what the routing model learns from."""
    number = next(_counter)
    ticket = Ticket(
        source="test",
        external_id=f"RES-{number}",
        email=f"user{number}@customer.example",
        subject=subject,
        description=description,
        status=TicketStatus.RESOLVED,
        team=team,
        human_touched_at=utcnow(),
        resolved_at=utcnow(),
    )
    session.add(ticket)
    return ticket


def resolution_outcome(
    session: Session, *, category: str, state: OutcomeState, automated: bool = True, confidence: float = 0.9
) -> ResolutionOutcome:
    """A resolved ticket of `category` and what became of its resolution."""
    ticket = resolved_ticket(session, f"{category} question", "How do I do it?", "Service Desk")
    ticket.category = category
    session.flush()
    outcome = ResolutionOutcome(
        ticket_id=ticket.id,
        automated=automated,
        source=ticket.source,
        category=category,
        confidence=confidence,
        state=state,
    )
    session.add(outcome)
    return outcome


def analysed_ticket(session: Session, subject: str, *, confidence: float, evidence: bool) -> int:
    """A resolved ticket whose analysis had `confidence`, with or without evidence: what knowledge gaps read."""
    ticket = resolved_ticket(session, subject, subject + ". Please help.", "Service Desk")
    session.flush()
    session.add(
        Analysis(
            ticket_id=ticket.id,
            analyser="test",
            decision="escalate",
            confidence=confidence,
            evidence=[{"title": "kb.md"}] if evidence else [],
        )
    )
    return ticket.id


def proposed_resolution(
    session: Session,
    *,
    confidence: float,
    state: ActionState | None = ActionState.EXECUTED,
    decided_by: str = "engine",
    edited: bool = False,
    outcome: OutcomeState | None = None,
    answer: str | None = None,
    guards: tuple[str, ...] = (),
    decision: str = "resolve",
    source: str = "test",
) -> Analysis:
    """A stored analysis (a resolution proposal by default) with its draft in `state` (None: no draft) and, when
    sent, what the customer made of it: the history the threshold what-if replays."""
    ticket = resolved_ticket(session, "How do I reset my password?", "Please help.", "Service Desk")
    ticket.source = source
    session.flush()
    analysis = Analysis(
        ticket_id=ticket.id,
        analyser="test",
        decision=decision,
        confidence=confidence,
        evidence=[{"title": "Resetting your password"}],
        guards=list(guards),
    )
    session.add(analysis)
    session.flush()
    if state is None:
        return analysis
    action = Action(
        ticket_id=ticket.id,
        analysis_id=analysis.id,
        kind=ActionKind.PROPOSE_RESOLUTION,
        state=state,
        version=2 if edited else 1,
        decided_by=None if state == ActionState.AWAITING_APPROVAL else decided_by,
    )
    session.add(action)
    session.flush()
    if outcome is not None:
        session.add(
            ResolutionOutcome(
                ticket_id=ticket.id,
                action_id=action.id,
                automated=decided_by == "engine",
                source=source,
                confidence=confidence,
                state=outcome,
                answer=answer,
            )
        )
    return analysis


class _AfterTheTest(sessionmaker[Session]):
    """Opens a session only once the test's own has ended its transaction (SQLite has one writer, and the new session
    must see what the test wrote); the test's objects then reload what the function writes."""

    def __init__(self, test_session: Session) -> None:
        super().__init__(bind=test_session.get_bind(), expire_on_commit=False)
        self.test_session = test_session

    def __call__(self, **options: Any) -> Session:
        self.test_session.commit()
        self.test_session.expire_all()
        return super().__call__(**options)


def own_transactions(session: Session) -> sessionmaker[Session]:
    """The factory given to a function that opens its own transactions, in a test that holds `session`."""
    return _AfterTheTest(session)
